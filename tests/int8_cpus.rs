//! The int8 models on every CPU they may run on. x86 without VNNI (AVX2 or
//! AVX-512 alone) multiplies u8 x s8 with VPMADDUBSW, whose 16-bit pair
//! sums saturate: a model with full 8-bit weights finds next to nothing
//! there. ONNX Runtime has no switch for its integer kernels, so that CPU is
//! emulated: qemu-user with a Haswell CPU (AVX2 and FMA, no AVX-512, no
//! VNNI; the cpuid the library reads is qemu's). ARM without dot product is
//! `scripts/test-deb-arm64.sh`'s. Also the set-up's gate, which decides
//! whether the int8 SSD is installed at all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The held-out footage as the set-up's gate reads it: vtest.avi at 2
/// frames/s, 300x300 RGB.
fn heldout(dir: &Path) -> PathBuf {
    let frames = dir.join("heldout.rgb");
    let decoded = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", media("opencv/vtest.avi").display()))
        .args(["!", "decodebin", "!", "videorate", "drop-only=true", "!"])
        .args([
            "video/x-raw,framerate=2/1",
            "!",
            "videoscale",
            "!",
            "videoconvert",
            "!",
        ])
        .args([
            "video/x-raw,format=RGB,width=300,height=300",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", frames.display()))
        .status()
        .expect("gst-launch-1.0");
    assert!(decoded.success());
    frames
}

/// `scripts/assets/agreement.py` (Python onnxruntime, the daemon's
/// decoding) of `variant` against the float SSD, run by `emulator` when it
/// is not empty: whether it passed, and what it printed.
fn agreement(emulator: &[&str], variant: &Path, frames: &Path, extra: &[&str]) -> (bool, String) {
    let python = asset(cache().join("venv-ref/bin/python"));
    let mut cmd = match emulator.split_first() {
        Some((qemu, opts)) => {
            let mut c = Command::new(qemu);
            c.args(opts).arg(&python);
            c
        }
        None => Command::new(&python),
    };
    let out = cmd
        .arg(repo().join("scripts/assets/agreement.py"))
        .arg(model("ssd_mobilenet_v2_coco.onnx"))
        .arg(variant)
        .arg(frames)
        .args(extra)
        .output()
        .expect("agreement.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The counts line agreement.py prints: "N frames, ... recall R, precision P".
fn counts(text: &str) -> &str {
    let line = text
        .lines()
        .find(|l| l.starts_with("agreement: ") && l.contains(" matched: "))
        .unwrap_or_else(|| panic!("no counts: {text}"));
    line.split(" (least accepted").next().unwrap_or(line)
}

const HASWELL: [&str; 3] = ["qemu-x86_64-static", "-cpu", "Haswell"];

fn control() -> PathBuf {
    asset(cache().join("models/ssd_mobilenet_v2_coco_int8_8bit_weights.onnx"))
}

/// The shipped int8 SSD (7-bit weights) on the integer kernels of x86
/// without VNNI: the very same detections as on this machine's own, and
/// they agree with the float model. The control (8-bit weights) proves the
/// emulated CPU takes the saturating path: with it, nothing is found.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_int8_ssd_finds_the_same_objects_on_the_integer_path_without_vnni() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = heldout(dir.path());

    let (ok, text) = agreement(&HASWELL, &control(), &frames, &["--frames", "3", "--fused"]);
    assert!(
        !ok && text.contains("recall 0.000"),
        "8-bit weights under -cpu Haswell should find nothing: {text}"
    );

    let int8 = model("ssd_mobilenet_v2_coco_int8.onnx");
    let few = ["--frames", "15", "--objects", "80", "--fused"];
    let (ok, emulated) = agreement(&HASWELL, &int8, &frames, &few);
    assert!(ok, "{emulated}");
    let (ok, native) = agreement(&[], &int8, &frames, &few);
    assert!(ok, "{native}");
    assert_eq!(counts(&native), counts(&emulated));
}

/// What visiond itself does on such a CPU: it sees there is no VNNI and
/// runs quantised nodes as float, so even a model with full 8-bit weights
/// (the control here; the set-up's EfficientNet-Lite0 is one) answers right.
#[cfg(target_arch = "x86_64")]
#[test]
fn visiond_runs_quantised_models_exactly_on_x86_without_vnni() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vnni.yaml");
    let m = repo().join("models");
    std::fs::write(
        &config,
        format!(
            "mqtt: {{url: \"mqtt://127.0.0.1:1\"}}\nmodels:\n  \
             - {{name: coco, path: {m}/ssd_mobilenet_v2_coco.onnx, labels: {m}/coco_labels.txt}}\n  \
             - {{name: control, path: {c}, labels: {m}/coco_labels.txt}}\nstreams: []\n",
            m = m.display(),
            c = control().display()
        ),
    )
    .expect("config");
    let out = Command::new(HASWELL[0])
        .args(&HASWELL[1..])
        .arg(env!("CARGO_BIN_EXE_visiond"))
        .arg("eval")
        .arg("-c")
        .arg(&config)
        .args(["--reference", "coco", "--variant", "control"])
        .args(["--every", "26", "--frames", "5", "--speed-frames", "0"])
        .arg(media("opencv/vtest.avi"))
        .output()
        .expect("qemu-x86_64-static (scripts/apt-deps.sh installs qemu-user-static)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("this CPU has no VNNI: quantised models run their integer nodes as float"),
        "{stderr}"
    );
    let all: Vec<&str> = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("all"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .split_whitespace()
        .collect();
    let objects: u64 = all[1].parse().expect("objects");
    let recall: f64 = all[all.len() - 2].parse().expect("recall");
    assert!(objects >= 20 && recall >= 0.9, "{stdout}");
}

/// The set-up's gate (`scripts/assets/agreement.py`) passes the model at
/// its bar, and refuses with what it measured when the bar is above it or
/// the footage too thin.
#[test]
fn the_setup_gate_refuses_below_its_bar_and_says_what_it_measured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = heldout(dir.path());
    let int8 = model("ssd_mobilenet_v2_coco_int8.onnx");
    let gate = |extra: &[&str]| {
        let mut args = vec!["--frames", "20"];
        args.extend_from_slice(extra);
        agreement(&[], &int8, &frames, &args)
    };
    let (ok, text) = gate(&["--objects", "100"]);
    assert!(ok && text.contains("(least accepted 0.93)"), "{text}");
    let (ok, text) = gate(&["--objects", "100", "--min", "0.999"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("below 0.999: this compressed model would miss or invent objects"),
        "{text}"
    );
    assert!(
        text.contains(" recall 0.") && text.contains(" precision 0."),
        "{text}"
    );
    let (ok, text) = gate(&["--objects", "100000"]);
    assert!(
        !ok && text.contains("fewer than the 100000 needed"),
        "{text}"
    );
}
