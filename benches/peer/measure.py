#!/usr/bin/env python3
"""Measures a running analyser from outside, the same way for visiond and the
peer: messages/s on its MQTT topic, CPU per message from /proc/PID/stat, RSS.

  measure.py PID PORT TOPIC WARMUP_S WINDOW_S   -> one JSON line
"""
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

pid, port, topic, warmup, window = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
TICK = os.sysconf("SC_CLK_TCK")
count = 0
lock = threading.Lock()


def on_message(_c, _u, _m):
    global count
    with lock:
        count += 1


def cpu_s():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def mem_mib(name):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(name):
            return int(line.split()[1]) / 1024
    return 0.0


c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
c.on_message = on_message
c.connect("127.0.0.1", port)
c.subscribe(topic, qos=0)
c.loop_start()
time.sleep(warmup)
with lock:
    n0 = count
cpu0, t0 = cpu_s(), time.perf_counter()
time.sleep(window)
with lock:
    n1 = count
cpu1, t1 = cpu_s(), time.perf_counter()
n = n1 - n0
print(json.dumps({
    "fps": n / (t1 - t0),
    "cpu_ms_per_frame": (cpu1 - cpu0) * 1e3 / max(n, 1),
    "rss_mib": mem_mib("VmRSS:"),
    "peak_rss_mib": mem_mib("VmHWM:"),
}))
