//! The inference stage with the real models, fed by the real source
//! pipeline (PNG photographs decoded and scaled by GStreamer).

mod common;

use std::sync::Arc;
use std::time::Duration;

use visiond::clock::SystemClock;

use common::*;
use visiond::config::{self, ModelConfig};
use visiond::frame::{Image, Output};
use visiond::inference::{Model, ResizeMode};
use visiond::source::{Pipeline, PipelineSettings, SourceSpec};

/// One photograph as the pipeline hands it to the model.
fn photo(name: &str, width: u32, height: u32, resize: ResizeMode) -> (Image, (u32, u32)) {
    let path = media(name);
    gstreamer::init().expect("gstreamer");
    let spec = SourceSpec::parse(&format!(
        "gst:filesrc location=\"{}\" ! pngdec ! imagefreeze num-buffers=1",
        path.display()
    ))
    .expect("spec");
    let settings = PipelineSettings {
        spec,
        width,
        height,
        fps: None,
        fps_phase: 0.0,
        realtime: false,
        resize,
        options: Default::default(),
        keep_full: false,
        motion: None,
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let p = Pipeline::start(
        &settings,
        Arc::default(),
        Arc::new(SystemClock),
        Arc::default(),
        Box::new(move |f| tx.send(f).is_ok()),
    )
    .expect("pipeline");
    let f = rx.recv_timeout(Duration::from_secs(10)).expect("a frame");
    drop(p);
    (f.image, (f.source_width, f.source_height))
}

/// A model entry as a user would write it, resolved like the daemon does.
fn entry(yaml_models: &str) -> Vec<ModelConfig> {
    let dir = repo().join("models");
    let text = format!("mqtt: {{}}\nmodels:\n{yaml_models}\n");
    let loaded = config::parse(&dir.join("test.yaml"), &text, |_| None)
        .unwrap_or_else(|e| panic!("config: {e}"));
    loaded.config.models
}

fn load(cfg: &ModelConfig) -> Model {
    visiond::inference::runtime::init(None).expect("ONNX Runtime (scripts/setup-assets.sh)");
    Model::load(&cfg.spec(), 1).unwrap_or_else(|e| panic!("{e}"))
}

fn ssd() -> Model {
    model("ssd_mobilenet_v2_coco.onnx");
    load(
        &entry("  - name: coco\n    path: ssd_mobilenet_v2_coco.onnx\n    labels: coco_labels.txt")
            [0],
    )
}

fn effnet() -> Model {
    model("efficientnet_lite0.onnx");
    load(
        &entry(
            "  - name: imagenet\n    path: efficientnet_lite0.onnx\n    labels: imagenet_labels.txt",
        )[0],
    )
}

fn detections(m: &mut Model, name: &str) -> Vec<visiond::frame::Detection> {
    let (image, _) = photo(name, m.input.width, m.input.height, ResizeMode::Stretch);
    match m.infer(&image, 0.5).expect("infer") {
        Output::Detections(d) => d,
        other => panic!("not detections: {other:?}"),
    }
}

fn classes(m: &mut Model, name: &str) -> Vec<String> {
    let (image, _) = photo(name, m.input.width, m.input.height, ResizeMode::Stretch);
    match m.infer(&image, 0.0).expect("infer") {
        Output::Classes(c) => c.iter().map(|c| c.label.to_string()).collect(),
        other => panic!("not classes: {other:?}"),
    }
}

#[test]
fn an_entry_with_only_name_path_labels_works_for_both_shipped_models() {
    let m = ssd();
    assert_eq!(m.task, config::Task::Detection);
    assert_eq!((m.input.width, m.input.height), (300, 300));
    let m = effnet();
    assert_eq!(m.task, config::Task::Classification);
    assert_eq!((m.input.width, m.input.height), (224, 224));
}

#[test]
fn ssd_finds_the_cat_the_cup_and_the_astronaut_where_they_are() {
    let mut m = ssd();
    let cat = detections(&mut m, "chelsea.png");
    let c = cat
        .iter()
        .find(|d| &*d.label == "cat")
        .unwrap_or_else(|| panic!("{cat:?}"));
    assert!(c.score > 0.8, "{c:?}");
    // The cat fills most of chelsea.png, its head left of centre.
    assert!(c.bbox.w * c.bbox.h > 0.4 && c.bbox.x < 0.2, "{c:?}");

    let coffee = detections(&mut m, "coffee.png");
    let cup = coffee
        .iter()
        .find(|d| &*d.label == "cup")
        .unwrap_or_else(|| panic!("{coffee:?}"));
    assert!(cup.score > 0.8, "{cup:?}");
    let (cx, cy) = (cup.bbox.x + cup.bbox.w / 2.0, cup.bbox.y + cup.bbox.h / 2.0);
    assert!((0.3..0.7).contains(&cx) && cy < 0.6, "{cup:?}");

    let astronaut = detections(&mut m, "astronaut.png");
    let p = astronaut
        .iter()
        .find(|d| &*d.label == "person")
        .unwrap_or_else(|| panic!("{astronaut:?}"));
    assert!(p.score > 0.5 && p.bbox.h > 0.5, "{p:?}");
}

#[test]
fn efficientnet_names_the_cat_and_the_espresso() {
    let mut m = effnet();
    let cat = classes(&mut m, "chelsea.png");
    assert!(
        cat[..3]
            .iter()
            .any(|l| ["tabby", "tiger cat", "Egyptian cat"].contains(&l.as_str())),
        "{cat:?}"
    );
    let coffee = classes(&mut m, "coffee.png");
    assert_eq!(coffee[0], "espresso", "{coffee:?}");
}

#[test]
fn the_shipped_descriptions_match_their_models() {
    let models = entry(
        "  - name: coco\n    path: ssd_mobilenet_v2_coco.onnx\n    description: ssd_mobilenet_v2_coco.yaml\n  - name: imagenet\n    path: efficientnet_lite0.onnx\n    description: efficientnet_lite0.yaml",
    );
    assert_eq!(
        models[0].labels.as_deref(),
        Some(repo().join("models/coco_labels.txt").as_path())
    );
    let mut m = load(&models[0]);
    assert!(
        detections(&mut m, "chelsea.png")
            .iter()
            .any(|d| &*d.label == "cat")
    );
    let mut m = load(&models[1]);
    assert_eq!(classes(&mut m, "coffee.png")[0], "espresso");
}

#[test]
fn letterbox_pads_and_maps_boxes_back_to_the_source() {
    let mut m = ssd();
    let (image, source) = photo("coffee.png", 300, 300, ResizeMode::Letterbox);
    assert_eq!(source, (600, 400));
    // 600x400 into 300x300: content 300x200, 50 rows of black above and below.
    let dark = |y: usize| {
        image
            .row(y)
            .expect("a row of the frame")
            .iter()
            .all(|&v| v < 8)
    };
    assert!(dark(0) && dark(48) && dark(251) && dark(299));
    assert!(!dark(52) && !dark(150) && !dark(247));
    let mut out = m.infer(&image, 0.5).expect("infer");
    visiond::inference::output_to_source(&mut out, ResizeMode::Letterbox, source, (300, 300));
    let Output::Detections(d) = out else {
        panic!("detections")
    };
    let (_, stretched_source) = photo("coffee.png", 300, 300, ResizeMode::Stretch);
    let stretched = detections(&mut m, "coffee.png");
    let a = d
        .iter()
        .find(|x| &*x.label == "cup")
        .expect("cup, letterboxed");
    let b = stretched
        .iter()
        .find(|x| &*x.label == "cup")
        .expect("cup, stretched");
    assert_eq!(stretched_source, source);
    // The same cup, wherever the pixels went on the way in.
    for (p, q) in [
        (a.bbox.x, b.bbox.x),
        (a.bbox.y, b.bbox.y),
        (a.bbox.w, b.bbox.w),
        (a.bbox.h, b.bbox.h),
    ] {
        assert!(
            (p - q).abs() < 0.05,
            "letterboxed {:?} vs stretched {:?}",
            a.bbox,
            b.bbox
        );
    }
}

fn check(config_text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, config_text).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_visiond"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("visiond check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_names_the_stream_the_model_and_the_mismatch() {
    let models = repo().join("models");
    let text = |input: &str| {
        format!(
            "mqtt: {{}}\nmodels:\n  - name: coco\n    path: {}\n    input: {{{input}}}\nstreams:\n  - name: door\n    source: test://\n    model: coco\n",
            models.join("ssd_mobilenet_v2_coco.onnx").display()
        )
    };
    for (input, needle) in [
        (
            "layout: nchw",
            "input.layout Nchw contradicts the model's input shape",
        ),
        (
            "dtype: float32",
            "input.dtype F32 contradicts the model's input type U8",
        ),
        ("mean: [1, 2, 3]", "mean/std apply to float32 inputs"),
    ] {
        let (code, out) = check(&text(input));
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("bad.yaml: stream \"door\": model \"coco\""),
            "{out}"
        );
        assert!(out.contains(needle), "{input}: {out}");
    }
    let bad_output = format!(
        "mqtt: {{}}\nmodels:\n  - name: coco\n    path: {}\n    output: {{decoder: ssd, scores: nope}}\nstreams:\n  - name: door\n    source: test://\n    model: coco\n",
        models.join("ssd_mobilenet_v2_coco.onnx").display()
    );
    let (code, out) = check(&bad_output);
    assert_eq!(code, 1);
    assert!(
        out.contains("no output \"nope\"") && out.contains("Postprocessor/Slice:0"),
        "{out}"
    );
}

#[test]
fn providers_fall_back_in_order_and_say_which_runs() {
    let base =
        "  - name: coco\n    path: ssd_mobilenet_v2_coco.onnx\n    labels: coco_labels.txt\n";
    let m = load(&entry(&format!("{base}    providers: [tensorrt, cuda, cpu]"))[0]);
    assert_eq!(m.provider, config::Provider::Cpu);
    visiond::inference::runtime::init(None).expect("runtime");
    let err =
        Model::load(&entry(&format!("{base}    providers: [cuda]"))[0].spec(), 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("none of the execution providers [cuda]"),
        "{err}"
    );
}

/// Needs the test build's `Model::input_tensor` (`--features test-support`).
#[cfg(feature = "test-support")]
#[test]
fn stride_padded_rows_reach_the_tensor_unpadded() {
    // A 225-pixel-wide frame has 675 bytes of pixels and 676 per row.
    let mut m = load(
        &entry(
            "  - name: coco\n    path: ssd_mobilenet_v2_coco.onnx\n    input: {width: 225, height: 150}",
        )[0],
    );
    let (image, _) = photo("chelsea.png", 225, 150, ResizeMode::Stretch);
    assert_eq!(image.stride, 676);
    let tensor = m.input_tensor(&image).expect("tensor");
    assert_eq!(tensor.len(), 225 * 150 * 3);
    for y in [0usize, 1, 77, 149] {
        let row: Vec<f32> = image
            .row(y)
            .expect("a row of the frame")
            .iter()
            .map(|&v| f32::from(v))
            .collect();
        assert_eq!(&tensor[y * 675..(y + 1) * 675], &row[..], "row {y}");
    }
}

#[test]
fn frames_of_several_streams_share_a_run_with_the_same_results() {
    assert_eq!(ssd().max_batch, 1, "batching is opt-in");
    let mut m = load(
        &entry(
            "  - name: coco\n    path: ssd_mobilenet_v2_coco.onnx\n    labels: coco_labels.txt\n    batch: 4",
        )[0],
    );
    assert_eq!(
        m.max_batch, 4,
        "SSD-MobileNetV2's batch dimension is dynamic"
    );
    let (cat, _) = photo("chelsea.png", 300, 300, ResizeMode::Stretch);
    let (cup, _) = photo("coffee.png", 300, 300, ResizeMode::Stretch);
    let alone = [
        m.infer(&cat, 0.5).expect("cat"),
        m.infer(&cup, 0.5).expect("cup"),
    ];
    let together = m.infer_batch(&[&cat, &cup], &[0.5, 0.5]).expect("batch");
    assert_eq!(together.len(), 2);
    for (a, b) in alone.iter().zip(&together) {
        let (Output::Detections(a), Output::Detections(b)) = (a, b) else {
            panic!("detections")
        };
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.label, y.label);
            assert!((x.score - y.score).abs() < 1e-4, "{x:?} vs {y:?}");
            assert!((x.bbox.x - y.bbox.x).abs() < 1e-4 && (x.bbox.w - y.bbox.w).abs() < 1e-4);
        }
    }
    // A fixed batch of 1 stays 1, and asking for more is a mismatch.
    assert_eq!(effnet().max_batch, 1);
    visiond::inference::runtime::init(None).expect("runtime");
    let err = Model::load(
        &entry("  - name: e\n    path: efficientnet_lite0.onnx\n    batch: 8")[0].spec(),
        1,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("batch 8 contradicts the model's fixed batch of 1"),
        "{err}"
    );
}
