"""Python onnxruntime sessions set up as visiond sets up its own on this CPU.

x86 without VNNI sums u8 x s8 products in pairs into 16 bits that saturate
(VPMADDUBSW): a model quantised with full 8-bit weights answers wrongly there.
visiond then runs quantised nodes as float (src/inference/runtime.rs,
`int8_saturates`); so do the set-up's checks and the reference outputs, so
that they measure what the daemon runs. Read from /proc/cpuinfo (under
qemu-user that is the host's: pass fused=True to force the integer kernels).
"""
import platform

import onnxruntime as ort


def int8_saturates():
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return True
    return not ({"avx512_vnni", "avx_vnni"} & set(flags))


def session(path, threads=2, fused=False):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    if not fused and int8_saturates():
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
