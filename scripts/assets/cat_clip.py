"""Writes the frames of cat.mp4 as raw RGB to stdout: two cats cut from
scikit-image's chelsea photograph (the second one mirrored) coming closer
across a plain wall from either side, then sitting still. 1280x720, 30
fps, 20 s: 1 s empty, 6 s approaching (the first from 150 to 450 px tall
into the left half, the second from 100 to 300 px into the right third),
13 s still (past the tracker's stationary_s of 10). They never overlap.

For the classify tests: each detected `cat` grows, so the cascade sees
better views while they come, and none once they sit still.

    cat_clip.py CHELSEA_PNG | gst-launch-1.0 fdsrc ! rawvideoparse ...
"""
import sys

import numpy as np
from PIL import Image

W, H, FPS = 1280, 720, 30
EMPTY, APPROACH, STILL = 1, 6, 13
SMALL, LARGE = 150, 450
SMALL2, LARGE2 = 100, 300


def main() -> None:
    photo = Image.open(sys.argv[1]).convert("RGB")
    cat = photo.crop((60, 0, photo.width, photo.height))
    mirrored = cat.transpose(Image.FLIP_LEFT_RIGHT)
    wall = np.zeros((H, W, 3), np.uint8)
    wall[:] = (120, 125, 130)
    wall[H - 60 :] = (95, 90, 85)
    out = sys.stdout.buffer
    steps = APPROACH * FPS
    for i in range((EMPTY + APPROACH + STILL) * FPS):
        frame = Image.fromarray(wall)
        k = min(i - EMPTY * FPS, steps - 1)
        if k >= 0:
            t = k / (steps - 1)
            h = round(SMALL + (LARGE - SMALL) * t)
            w = round(cat.width * h / cat.height)
            x = round(40 + 40 * t)
            frame.paste(cat.resize((w, h), Image.BILINEAR), (x, H - 40 - h))
            h2 = round(SMALL2 + (LARGE2 - SMALL2) * t)
            w2 = round(mirrored.width * h2 / mirrored.height)
            x2 = round(W - 40 - w2)
            frame.paste(mirrored.resize((w2, h2), Image.BILINEAR), (x2, H - 40 - h2))
        out.write(frame.tobytes())


if __name__ == "__main__":
    main()
