"""Writes the frames of walk.mp4 as raw RGB to stdout: the person of
scikit-image's astronaut photograph, cut out, crossing a plain wall from
left to right and leaving. 1280x720, 30 fps, 10 s: 1 s empty, 7 s
crossing (entering and leaving at the edges), 2 s empty.

    walk_clip.py ASTRONAUT_PNG | gst-launch-1.0 fdsrc ! rawvideoparse ...
"""
import sys

import numpy as np
from PIL import Image

W, H, FPS = 1280, 720, 30
EMPTY_BEFORE, CROSSING, EMPTY_AFTER = 1, 7, 2


def main() -> None:
    photo = Image.open(sys.argv[1]).convert("RGB")
    # The figure in her orange suit, without the flag and the helmet.
    person = photo.crop((20, 0, 365, 512))
    ph = 480
    pw = round(person.width * ph / person.height)
    person = person.resize((pw, ph), Image.LANCZOS)
    # A wall and a floor: plain enough that the person is the only object.
    wall = np.zeros((H, W, 3), np.uint8)
    wall[:] = (120, 125, 130)
    wall[H - 60 :] = (95, 90, 85)
    out = sys.stdout.buffer
    steps = CROSSING * FPS
    for i in range((EMPTY_BEFORE + CROSSING + EMPTY_AFTER) * FPS):
        frame = Image.fromarray(wall)
        k = i - EMPTY_BEFORE * FPS
        if 0 <= k < steps:
            x = round(-pw + (W + pw) * k / (steps - 1))
            frame.paste(person, (x, H - 40 - ph))
        out.write(frame.tobytes())


if __name__ == "__main__":
    main()
