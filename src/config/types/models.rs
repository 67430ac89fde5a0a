//! The models: files, what they take and return, variants.

use super::*;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

/// One model streams can name.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name streams use in `model`; unique.
    pub name: String,
    /// The `.onnx` file; relative to the config file's folder.
    pub path: PathBuf,
    /// Inferred from the model's outputs when absent.
    #[serde(default)]
    pub task: Option<Task>,
    /// One label per line, line N for output index N.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// Inference workers, each with its own session; default: one per core.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Intra-op threads of each session; default: 1.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Frames per run at most, when the model's batch dimension is
    /// dynamic (default 1: measure first); frames waiting from several
    /// streams then share a run.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Classification: how many classes to publish per frame (default 5).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Detection: IoU above which overlapping boxes of a class are merged
    /// (default 0.5, 0 to 1).
    #[serde(default)]
    pub iou: Option<f32>,
    /// A YAML file describing the model (task, labels, input, output); this
    /// entry's own keys override it. Relative to the config file's folder.
    #[serde(default)]
    pub description: Option<PathBuf>,
    /// What the model expects; read from the model where it says.
    #[serde(default)]
    pub input: InputConfig,
    /// How to read the outputs; inferred from their names and shapes.
    #[serde(default)]
    pub output: OutputConfig,
    /// Execution providers, tried in order (default: cpu).
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Cheaper stand-ins for this model (int8, a smaller width multiplier),
    /// with the same labels and outputs; `visiond bench --pick` measures
    /// them, and `pick: auto` lets the daemon choose.
    #[serde(default)]
    pub variants: Vec<VariantConfig>,
    /// fixed (default): run `path`; auto: at start, measure `path` and its
    /// variants on this device and run the most accurate one that sustains
    /// the streams' load.
    #[serde(default)]
    pub pick: Pick,
}

/// A stand-in for a model: another file with the same inputs and outputs.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct VariantConfig {
    /// The `.onnx` file; relative to the config file's folder.
    pub path: PathBuf,
    /// Recall (or the lower of recall and precision) against the model,
    /// as `visiond eval` measured it on your footage, 0 to 1. Variants
    /// without one rank after those with one, in the order listed.
    #[serde(default)]
    pub agreement: Option<f64>,
}

/// Which of a model and its variants runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    #[default]
    Fixed,
    Auto,
}

/// The input side of a model description. Fields the model declares
/// (shape, type) are checked against it; the rest is applied.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields, transform = colour_alias)]
pub struct InputConfig {
    /// Input width in pixels, for models whose spatial size is dynamic.
    #[serde(default)]
    pub width: Option<u32>,
    /// Input height in pixels, for models whose spatial size is dynamic.
    #[serde(default)]
    pub height: Option<u32>,
    /// nhwc or nchw.
    #[serde(default)]
    pub layout: Option<Layout>,
    /// uint8 or float32.
    #[serde(default)]
    pub dtype: Option<DType>,
    /// rgb (default) or bgr; `color` is taken too.
    #[serde(default, alias = "color")]
    pub colour: Option<Colour>,
    /// float inputs: value = (pixel - mean) / std per channel, pixel in 0..255.
    #[serde(default)]
    pub mean: Option<[f32; 3]>,
    /// float inputs: the divisor per channel; not 0.
    #[serde(default)]
    pub std: Option<[f32; 3]>,
    /// stretch (default), letterbox or centre-crop.
    #[serde(default)]
    pub resize: Option<ResizeMode>,
}

/// schemars knows no serde aliases: `color` is accepted as `colour` is.
fn colour_alias(schema: &mut schemars::Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut())
        && let Some(colour) = props.get("colour").cloned()
    {
        props.insert("color".into(), colour);
    }
}

impl InputConfig {
    pub(crate) fn or(self, base: InputConfig) -> InputConfig {
        InputConfig {
            width: self.width.or(base.width),
            height: self.height.or(base.height),
            layout: self.layout.or(base.layout),
            dtype: self.dtype.or(base.dtype),
            colour: self.colour.or(base.colour),
            mean: self.mean.or(base.mean),
            std: self.std.or(base.std),
            resize: self.resize.or(base.resize),
        }
    }
}

/// The output side of a model description.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct OutputConfig {
    /// ssd, ssd-postprocessed or classification; inferred when absent.
    #[serde(default)]
    pub decoder: Option<DecoderKind>,
    /// Name of the scores output; inferred when absent.
    #[serde(default)]
    pub scores: Option<String>,
    /// Name of the boxes output; inferred when absent.
    #[serde(default)]
    pub boxes: Option<String>,
    /// ssd-postprocessed: name of the classes output.
    #[serde(default)]
    pub classes: Option<String>,
    /// ssd-postprocessed: name of the detection count output.
    #[serde(default)]
    pub count: Option<String>,
    /// Classification: the output holds logits (softmax is applied).
    #[serde(default)]
    pub logits: Option<bool>,
    /// Quantised (uint8) outputs: probability = value * scale (default 1/256).
    #[serde(default)]
    pub scale: Option<f32>,
    /// ssd-postprocessed: label line = class id - class_offset (default 1,
    /// for 1-based COCO ids).
    #[serde(default)]
    pub class_offset: Option<i64>,
}

impl OutputConfig {
    pub(crate) fn or(self, base: OutputConfig) -> OutputConfig {
        OutputConfig {
            decoder: self.decoder.or(base.decoder),
            scores: self.scores.or(base.scores),
            boxes: self.boxes.or(base.boxes),
            classes: self.classes.or(base.classes),
            count: self.count.or(base.count),
            logits: self.logits.or(base.logits),
            scale: self.scale.or(base.scale),
            class_offset: self.class_offset.or(base.class_offset),
        }
    }
}

/// A model description file (`description:`): a model entry without
/// `name` and `path`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ModelDescription {
    /// detection or classification.
    #[serde(default)]
    pub task: Option<Task>,
    /// The labels file, relative to the description file's folder.
    #[serde(default)]
    pub labels: Option<PathBuf>,
    /// Classification: how many classes to publish per frame.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Detection: IoU above which overlapping boxes of a class are merged.
    #[serde(default)]
    pub iou: Option<f32>,
    /// What the model expects.
    #[serde(default)]
    pub input: InputConfig,
    /// How to read the outputs.
    #[serde(default)]
    pub output: OutputConfig,
}
