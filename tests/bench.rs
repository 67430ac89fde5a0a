//! `visiond bench` as the benchmark scripts call it: the real binary, the
//! shipped models, one chosen thread layout and batch.

mod common;

use std::process::{Command, Output};

use common::*;

fn bench(args: &[&str]) -> Output {
    // The shipped models must be there: a clear failure names the set-up.
    model("ssd_mobilenet_v2_coco.onnx");
    Command::new(env!("CARGO_BIN_EXE_visiond"))
        .args(["bench", "-c"])
        .arg(repo().join("pipelines/bench.yaml"))
        .args(args)
        .env("VISIOND_MEDIA", cache().join("media"))
        .output()
        .expect("visiond bench")
}

#[test]
fn one_layout_and_batch_measure_one_row() {
    let out = bench(&[
        "--model", "coco", "--layout", "1x1", "--batch", "2", "--frames", "8",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| coco "))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 1, "{stdout}");
    let row = &rows[0];
    assert_eq!((row[2], row[3]), ("1 x 1", "2"), "{stdout}");
    let fps: f64 = row[4].parse().expect("frames/s");
    let cpu: f64 = row[7].parse().expect("CPU ms/frame");
    assert!(fps > 0.0 && cpu > 0.0, "{stdout}");
}

#[test]
fn a_bad_layout_is_a_clear_error() {
    for layout in ["0x1", "2", "twoxone"] {
        let out = bench(&["--layout", layout]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{layout}");
        assert!(
            stderr.contains("WORKERSxTHREADS") && stderr.contains(layout),
            "{layout}: {stderr}"
        );
    }
}
