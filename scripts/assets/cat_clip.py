"""Writes the frames of cat.mp4 as raw RGB to stdout: the cat of
scikit-image's chelsea photograph, cut out, coming closer across a plain
wall, then sitting still. 1280x720, 30 fps, 20 s: 1 s empty, 6 s
approaching (from 150 to 450 px tall, left to centre), 13 s still (past
the tracker's stationary_s of 10).

For the classify tests: the detector's `cat` grows, so the cascade sees
better views while it comes, and none once it sits still.

    cat_clip.py CHELSEA_PNG | gst-launch-1.0 fdsrc ! rawvideoparse ...
"""
import sys

import numpy as np
from PIL import Image

W, H, FPS = 1280, 720, 30
EMPTY, APPROACH, STILL = 1, 6, 13
SMALL, LARGE = 150, 450


def main() -> None:
    photo = Image.open(sys.argv[1]).convert("RGB")
    cat = photo.crop((60, 0, photo.width, photo.height))
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
            x = round(40 + (W / 2 - w / 2 - 40) * t)
            frame.paste(cat.resize((w, h), Image.BILINEAR), (x, H - 40 - h))
        out.write(frame.tobytes())


if __name__ == "__main__":
    main()
