#!/usr/bin/env python3
"""Validates visiond's discovery payloads with Home Assistant's own schemas.

Device-based discovery needs Home Assistant 2024.11, and PyPI has at most
2024.3 for Python 3.11, so each component is checked the way 2024.3 checks
a single-component config (the same platform schemas), with the device and
the origin. Keys 2024.3 does not know are listed, not failed: they are newer.

    python3 -m venv /tmp/ha && /tmp/ha/bin/pip install homeassistant==2024.3.3 paho-mqtt
    /tmp/ha/bin/python scripts/ha-validate.py src/homeassistant/golden/discovery.json
"""
import importlib
import json
import sys

import voluptuous as vol

def main(path):
    golden = json.load(open(path))
    origin_schema = None
    for mod in ("homeassistant.components.mqtt.schemas", "homeassistant.components.mqtt.mixins"):
        try:
            origin_schema = getattr(importlib.import_module(mod), "MQTT_ORIGIN_INFO_SCHEMA")
            break
        except (ImportError, AttributeError):
            pass
    problems, unknown, checked = [], set(), 0
    for entry in golden:
        cfg = entry["payload"]
        if origin_schema is not None:
            try:
                origin_schema(cfg["o"])
            except vol.Invalid as e:
                problems.append(f"{entry['topic']} origin: {e}")
        for key, comp in cfg["cmps"].items():
            platform = comp["p"]
            schema = importlib.import_module(f"homeassistant.components.mqtt.{platform}").DISCOVERY_SCHEMA
            single = {k: v for k, v in comp.items() if k != "p"}
            single["device"] = cfg["dev"]
            single["qos"] = cfg["qos"]
            try:
                out = schema(single)
            except vol.Invalid as e:
                problems.append(f"{entry['topic']} {key} ({platform}): {e}")
                continue
            checked += 1
            unknown |= {k for k in single if k not in out}
    print(f"{checked} components valid; keys Home Assistant 2024.3 does not know: {sorted(unknown)}")
    for p in problems:
        print("INVALID", p)
    return 1 if problems else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
