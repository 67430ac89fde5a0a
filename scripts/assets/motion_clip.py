"""Writes the frames of the motion tests' clips as raw RGB to stdout, and
their ground truth as JSON to a file.

    motion_clip.py small BACKGROUND PERSON_PNG TRUTH_JSON   (1920x1080, 20 s)
    motion_clip.py still BACKGROUND PERSON_PNG TRUTH_JSON   (1280x720, 60 s)

small: five small people (the astronaut photograph's figure, 40 to 120 px
tall) cross a still real background (OpenCV's building photograph) at
different heights and times; the truth holds each frame's boxes.
still: the same background with one person standing (200 px tall), all
60 s; at 30 s the whole scene gets 30 % brighter (lights switched).
Both carry camera-like noise (a fresh Gaussian field every frame, sigma 3
levels), so that nothing is ever perfectly still. 30 fps.
"""
import json
import sys

import numpy as np
from PIL import Image

FPS = 30
SIGMA = 3.0


def background(path: str, w: int, h: int) -> np.ndarray:
    photo = Image.open(path).convert("RGB")
    # Cropped to the frame's aspect, then scaled.
    aspect = w / h
    pw, ph = photo.size
    if pw / ph > aspect:
        cw = round(ph * aspect)
        photo = photo.crop(((pw - cw) // 2, 0, (pw - cw) // 2 + cw, ph))
    else:
        ch = round(pw / aspect)
        photo = photo.crop((0, (ph - ch) // 2, pw, (ph - ch) // 2 + ch))
    return np.asarray(photo.resize((w, h), Image.LANCZOS), np.float32)


def figure(path: str, height: int) -> Image.Image:
    # The figure in her orange suit, without the flag and the helmet.
    person = Image.open(path).convert("RGB").crop((20, 0, 365, 512))
    width = round(person.width * height / person.height)
    return person.resize((width, height), Image.LANCZOS)


def noisy(frame: np.ndarray, rng: np.random.Generator, bank: list) -> bytes:
    # A bank of noise fields, drawn in turn at random offsets: fresh noise
    # every frame without drawing millions of samples each time.
    n = bank[rng.integers(len(bank))]
    shift = int(rng.integers(n.shape[0]))
    out = frame + np.roll(n, shift, axis=0)
    return np.clip(out, 0, 255).astype(np.uint8).tobytes()


def small(bg_path: str, person_path: str, truth_path: str) -> None:
    w, h, secs = 1920, 1080, 20
    bg = background(bg_path, w, h)
    rng = np.random.default_rng(7)
    bank = [rng.normal(0, SIGMA, (h, w, 3)).astype(np.float32) for _ in range(4)]
    # (height, bottom row, start s, crossing s, left to right)
    walkers = [
        (40, 330, 1.0, 8.0, True),
        (60, 520, 3.0, 8.0, False),
        (80, 700, 5.0, 9.0, True),
        (100, 860, 7.0, 9.0, False),
        (120, 1040, 9.0, 10.0, True),
    ]
    figures = [figure(person_path, fh) for fh, *_ in walkers]
    truth = []
    out = sys.stdout.buffer
    for i in range(secs * FPS):
        t = i / FPS
        frame = Image.fromarray(bg.astype(np.uint8))
        boxes = []
        for (fh, bottom, start, cross, right), fig in zip(walkers, figures):
            k = (t - start) / cross
            if not 0 <= k <= 1:
                continue
            span = w + fig.width
            x = round(-fig.width + span * k) if right else round(w - span * k)
            y = bottom - fh
            frame.paste(fig, (x, y))
            x0, x1 = max(x, 0), min(x + fig.width, w)
            # Only whole figures are truth: one cut by the frame's edge is
            # a different question.
            if x0 == x and x1 == x + fig.width:
                boxes.append([x, y, fig.width, fh])
        truth.append(boxes)
        out.write(noisy(np.asarray(frame, np.float32), rng, bank))
    with open(truth_path, "w") as f:
        json.dump({"fps": FPS, "width": w, "height": h, "frames": truth}, f)


def still(bg_path: str, person_path: str, truth_path: str) -> None:
    w, h, secs = 1280, 720, 60
    bg = background(bg_path, w, h)
    fig = figure(person_path, 200)
    x, y = 520, 480
    scene = Image.fromarray(bg.astype(np.uint8))
    scene.paste(fig, (x, y))
    base = np.asarray(scene, np.float32)
    rng = np.random.default_rng(11)
    bank = [rng.normal(0, SIGMA, (h, w, 3)).astype(np.float32) for _ in range(4)]
    out = sys.stdout.buffer
    for i in range(secs * FPS):
        lit = base * 1.3 if i >= 30 * FPS else base
        out.write(noisy(lit, rng, bank))
    box = [x, y, fig.width, 200]
    with open(truth_path, "w") as f:
        json.dump({"fps": FPS, "width": w, "height": h, "person": box, "step_s": 30}, f)


if __name__ == "__main__":
    mode, bg_path, person_path, truth_path = sys.argv[1:5]
    {"small": small, "still": still}[mode](bg_path, person_path, truth_path)
