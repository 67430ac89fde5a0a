//! What the inference stage is given for a model, and the types that say
//! what a model takes and returns. The config builds a [`ModelSpec`] from
//! the user's entry; nothing here reads the config file. (The enums derive
//! `Deserialize` because the config file names them as they are.)

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::geometry::ResizeMode;

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Boxes with labels and scores.
    Detection,
    /// Labels with scores for the whole frame.
    Classification,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Detection => "detection",
            Task::Classification => "classification",
        })
    }
}

/// How a model's outputs are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    /// Raw SSD head: per-class scores and decoded boxes; NMS in visiond.
    Ssd,
    /// TensorFlow Object Detection API layout: boxes, classes, scores, count.
    SsdPostprocessed,
    /// Probabilities or logits per class.
    Classification,
}

/// An ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cpu,
    Cuda,
    Tensorrt,
    Openvino,
    Xnnpack,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::Tensorrt => "tensorrt",
            Provider::Openvino => "openvino",
            Provider::Xnnpack => "xnnpack",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nhwc,
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
pub enum DType {
    #[serde(rename = "uint8")]
    U8,
    #[serde(rename = "float32")]
    F32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    #[default]
    Rgb,
    Bgr,
}

/// What the model's input tensor looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub dtype: DType,
    pub colour: Colour,
    pub resize: ResizeMode,
    /// For float inputs: value = (pixel - mean) / std, per RGB channel.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How to read the outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoder {
    /// Raw SSD head: scores `[1, A, C]` and boxes `[1, A, 1, 4]` or `[1, A, 4]`.
    SsdRaw {
        scores: String,
        boxes: String,
        iou: f32,
    },
    /// NMS done in the graph: boxes `[1, N, 4]`, class ids `[1, N]`,
    /// scores `[1, N]`, count `[1]`.
    SsdPostprocessed {
        boxes: String,
        classes: String,
        scores: String,
        count: Option<String>,
        class_offset: i64,
    },
    /// Classifier: one `[1, N]` output of probabilities (float, or uint8
    /// quantised with `scale`) or logits.
    Classify {
        output: String,
        dtype: DType,
        scale: f32,
        logits: bool,
        top_k: usize,
    },
}

/// The cores this process may use (1 when the system will not say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A model entry with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// Inference workers, each with its own session.
    pub workers: usize,
    /// Intra-op threads per session.
    pub threads: usize,
    /// Frames per run when the model's batch dimension is dynamic (a fixed
    /// one wins; `Declared::batch` says whether the user asked).
    pub batch: usize,
    /// Classification: classes published per frame.
    pub top_k: usize,
    /// Detection: IoU above which boxes of a class are merged.
    pub iou: f32,
    /// ssd-postprocessed: label line = class id - class_offset.
    pub class_offset: i64,
    /// Classification: the output holds logits.
    pub logits: bool,
    /// Quantised outputs: probability = value * scale; `None`: by the
    /// output's type, see [`ModelSettings::output_scale`].
    pub scale: Option<f32>,
    pub colour: Colour,
    pub resize: ResizeMode,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            // Single-thread sessions side by side get the most frames
            // through: intra-op threads wait on each other whenever
            // GStreamer takes a core.
            workers: cores(),
            threads: 1,
            // On CPU, SSD-MobileNetV2 runs a batch of 4 slower than 4
            // single runs (docs/BENCHMARKS.md), so batching is opt-in.
            batch: 1,
            top_k: 5,
            iou: 0.5,
            // 1-based COCO ids.
            class_offset: 1,
            logits: false,
            scale: None,
            colour: Colour::default(),
            resize: ResizeMode::default(),
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
}

impl ModelSettings {
    /// Quantised softmax outputs use scale 1/256, zero point 0.
    pub fn output_scale(&self, dtype: DType) -> f32 {
        self.scale.unwrap_or(match dtype {
            DType::U8 => 1.0 / 256.0,
            DType::F32 => 1.0,
        })
    }
}

/// What the user declared about a model, checked against what the model
/// itself says (`None`: not declared).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Declared {
    pub task: Option<Task>,
    /// Frames per run the user asked for.
    pub batch: Option<usize>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub layout: Option<Layout>,
    pub dtype: Option<DType>,
    /// Whether `mean` or `std` were given (they apply to float inputs only).
    pub normalised: bool,
    pub decoder: Option<DecoderKind>,
    /// Output names.
    pub scores: Option<String>,
    pub boxes: Option<String>,
    pub classes: Option<String>,
    pub count: Option<String>,
}

/// One model to load: its files, its declarations and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    /// The `.onnx` file.
    pub path: PathBuf,
    /// One label per line.
    pub labels: Option<PathBuf>,
    /// Execution providers, tried in order (empty: cpu).
    pub providers: Vec<Provider>,
    pub declared: Declared,
    pub settings: ModelSettings,
}
