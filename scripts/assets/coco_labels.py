#!/usr/bin/env python3
"""Writes coco_labels.txt from @tensorflow-models/coco-ssd's dist/classes.js.

classes.js is what the tfjs coco-ssd runtime itself uses to name the model's
output: column j of the scores is CLASSES[j + 1] (index.js,
buildDetectedObjects). The output has 90 lines, line j = the name of COCO
category id j + 1, and `n/a` for the ten ids COCO leaves unused.

usage: coco_labels.py CLASSES_JS OUT
"""
import re
import sys

UNUSED = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def main() -> int:
    src, out = sys.argv[1], sys.argv[2]
    text = open(src, encoding="utf-8").read()
    entries = re.findall(
        r"(\d+):\s*\{\s*name:\s*'[^']*',\s*id:\s*(\d+),\s*displayName:\s*'([^']*)'", text
    )
    names = {}
    for key, ident, name in entries:
        if key != ident:
            sys.exit(f"{src}: entry {key} has id {ident}")
        names[int(ident)] = name
    missing = set(range(1, 91)) - set(names)
    if len(names) != 80 or missing != UNUSED:
        sys.exit(f"{src}: expected the 80 COCO categories, found {len(names)} (missing {sorted(missing)})")
    with open(out, "w", encoding="utf-8") as f:
        for ident in range(1, 91):
            f.write(names.get(ident, "n/a") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
