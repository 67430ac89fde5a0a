//! visiond's pre-processing and inference against Python onnxruntime's, on
//! the same pixels (reference data from scripts/assets/ref_outputs.py, made
//! by scripts/setup-assets.sh). Needs the test build's raw tensors
//! (`--features test-support`, as scripts/test.sh runs it).
#![cfg(feature = "test-support")]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use visiond::config;
use visiond::frame::{Image, Output};
use visiond::inference::Model;

/// Largest |a - b| allowed per model kind: uint8 outputs are compared as
/// their integer values, float ones as probabilities or scores.
const TOLERANCE_SSD: f32 = 1e-4;
const TOLERANCE_U8: f32 = 1.0;
const TOLERANCE_FLOAT: f32 = 1e-5;

fn reference_dir() -> PathBuf {
    let dir = cache().join("reference");
    asset(dir.join("manifest.json"));
    dir
}

fn floats(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The model as a user would configure it for this kind of case.
fn model_for(path: &str, kind: &str) -> Model {
    let extra = match kind {
        "f32-nchw" => {
            "\n    labels: imagenet_labels.txt\n    input: {mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375]}"
        }
        _ => "",
    };
    let text = format!("mqtt: {{}}\nmodels:\n  - name: m\n    path: {path}{extra}\n");
    let loaded = config::parse(&repo().join("models/ref.yaml"), &text, |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    visiond::inference::runtime::init(None).expect("ONNX Runtime");
    Model::load(&loaded.config.models[0].spec(), 1).unwrap_or_else(|e| panic!("{e}"))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tensors_and_outputs_equal_python_onnxruntime() {
    let dir = reference_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    let cases = manifest["cases"].as_array().expect("cases");
    assert_eq!(
        cases.len(),
        9,
        "ssd, effnet and float cases for three photographs"
    );
    for case in cases {
        let name = case["case"].as_str().expect("case");
        let kind = case["kind"].as_str().expect("kind");
        let size = case["size"].as_u64().expect("size") as u32;
        let mut m = model_for(case["model"].as_str().expect("model"), kind);
        let rgb = std::fs::read(dir.join(case["rgb"].as_str().expect("rgb"))).expect("rgb");
        let image = Image::from_vec(size, size, size as usize * 3, rgb);

        // Pre-processing: numpy's tensor and ours.
        let want = floats(&dir.join(case["input"].as_str().expect("input")));
        let got = m.input_tensor(&image).expect("tensor");
        let d = max_diff(&got, &want);
        assert!(d <= 1e-5, "{name}: input tensor differs by {d}");

        // Inference: every output, by name.
        let outputs = m.raw_outputs(&image).expect("run");
        for o in case["outputs"].as_array().expect("outputs") {
            let oname = o["name"].as_str().expect("name");
            let want = floats(&dir.join(o["file"].as_str().expect("file")));
            let got = &outputs
                .iter()
                .find(|(n, _)| n == oname)
                .unwrap_or_else(|| panic!("{name}: no output {oname}"))
                .1;
            let tolerance = match kind {
                "f32-nchw" => TOLERANCE_FLOAT,
                _ if name.starts_with("ssd") => TOLERANCE_SSD,
                _ => TOLERANCE_U8,
            };
            let d = max_diff(got, &want);
            eprintln!("{name}/{oname}: max |rust - python| = {d}");
            assert!(
                d <= tolerance,
                "{name}/{oname}: differs by {d} (tolerance {tolerance})"
            );
        }
    }
}

#[test]
fn the_float_nchw_model_agrees_with_the_uint8_one_end_to_end() {
    let dir = reference_dir();
    let float_model = cache().join("models/effnet_float_nchw.onnx");
    let mut f = model_for(&float_model.display().to_string(), "f32-nchw");
    assert_eq!(f.input.layout, visiond::inference::Layout::Nchw);
    assert_eq!(f.input.dtype, visiond::inference::DType::F32);
    let mut q = model_for(
        &repo()
            .join("models/efficientnet_lite0.onnx")
            .display()
            .to_string(),
        "u8-nhwc",
    );
    for photo in ["chelsea", "coffee", "astronaut"] {
        let rgb = std::fs::read(dir.join(format!("float-{photo}.rgb"))).expect("rgb");
        let image = Image::from_vec(224, 224, 224 * 3, rgb);
        let (Output::Classes(a), Output::Classes(b)) = (
            f.infer(&image, 0.0).expect("float"),
            q.infer(&image, 0.0).expect("uint8"),
        ) else {
            panic!("classes")
        };
        assert_eq!(a[0].label_id, b[0].label_id, "{photo}: {a:?} vs {b:?}");
        // Rounding the normalised pixels back may move a few by one level.
        assert!(
            (a[0].score - b[0].score).abs() <= 0.03,
            "{photo}: {a:?} vs {b:?}"
        );
    }
}
