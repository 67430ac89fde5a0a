//! What a model expects and returns: read from the model's own
//! description, completed and checked against the config.

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::error::ModelError;
use super::spec::{DType, Declared, Decoder, DecoderKind, InputSpec, Layout, ModelSpec};
use super::spec::{ModelSettings, Task};

/// Size used for dynamic spatial dimensions (SSD-MobileNet resizes to 300x300 inside the graph).
const DYNAMIC_DETECTION_SIZE: u32 = 300;
const DYNAMIC_CLASSIFICATION_SIZE: u32 = 224;

fn tensor_info(v: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match v {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

/// Reads the model's input and outputs, applies the config's description,
/// and reports every contradiction between the two.
pub(super) fn describe(
    spec: &ModelSpec,
    session: &Session,
) -> Result<(InputSpec, Decoder, Task, usize), ModelError> {
    let c = Checks {
        name: &spec.name,
        want: &spec.declared,
        settings: &spec.settings,
    };
    let input = c.input(session)?;
    let outputs: Vec<OutputInfo> = session
        .outputs()
        .iter()
        .filter_map(|o| tensor_info(o.dtype()).map(|(t, s)| (o.name().to_string(), t, s)))
        .collect();
    let kind = c.decoder_kind(&outputs)?;
    let task = match kind {
        DecoderKind::Classification => Task::Classification,
        _ => Task::Detection,
    };
    if let Some(t) = spec.declared.task
        && t != task
    {
        return Err(c.mismatch(format!(
            "task {t} contradicts the model's outputs ({}), which read as {task}",
            names(&outputs)
        )));
    }
    let decoder = c.decoder(kind, &outputs)?;
    let (spec, max_batch) = c.input_spec(input, task)?;
    Ok((spec, decoder, task, max_batch))
}

/// The model's input as it declares it.
struct ModelInput {
    name: String,
    shape: Vec<i64>,
    dtype: DType,
    layout: Layout,
    /// Height and width as declared (not positive: dynamic).
    h: i64,
    w: i64,
}

/// What the user declared about a model, and its settings, checked
/// against the model.
struct Checks<'a> {
    name: &'a str,
    want: &'a Declared,
    settings: &'a ModelSettings,
}

impl Checks<'_> {
    fn bad(&self, message: String) -> ModelError {
        ModelError::Unsupported {
            model: self.name.to_string(),
            message,
        }
    }

    fn mismatch(&self, message: String) -> ModelError {
        ModelError::Mismatch {
            model: self.name.to_string(),
            message,
        }
    }

    /// The one input: an image batch, its type and layout, checked against
    /// `input:`.
    fn input(&self, session: &Session) -> Result<ModelInput, ModelError> {
        let inputs = session.inputs();
        if inputs.len() != 1 {
            return Err(self.bad(format!(
                "expected one input, the model has {}",
                inputs.len()
            )));
        }
        let (ty, shape) = tensor_info(inputs[0].dtype())
            .ok_or_else(|| self.bad("the input is not a tensor".into()))?;
        let dtype = match ty {
            TensorElementType::Uint8 => DType::U8,
            TensorElementType::Float32 => DType::F32,
            other => {
                return Err(self.bad(format!("input type {other:?} is not uint8 or float32")));
            }
        };
        let want = self.want;
        if let Some(d) = want.dtype
            && d != dtype
        {
            return Err(self.mismatch(format!(
                "input.dtype {d:?} contradicts the model's input type {dtype:?}"
            )));
        }
        if shape.len() != 4 {
            return Err(self.bad(format!("input shape {shape:?} is not a 4-D image batch")));
        }
        let model_layout = match (shape[3], shape[1]) {
            (3, c) if c != 3 => Some(Layout::Nhwc),
            (c, 3) if c != 3 => Some(Layout::Nchw),
            _ => None,
        };
        let layout = match (want.layout, model_layout) {
            (Some(w), Some(m)) if w != m => {
                return Err(self.mismatch(format!(
                    "input.layout {w:?} contradicts the model's input shape {shape:?}"
                )));
            }
            (Some(l), _) | (None, Some(l)) => l,
            (None, None) => {
                return Err(self.bad(format!(
                    "input shape {shape:?} does not tell NHWC from NCHW; set input.layout"
                )));
            }
        };
        let (h, w) = match layout {
            Layout::Nhwc => (shape[1], shape[2]),
            Layout::Nchw => (shape[2], shape[3]),
        };
        if dtype == DType::U8 && want.normalised {
            return Err(self
                .mismatch("input.mean/std apply to float32 inputs; the model takes uint8".into()));
        }
        if self
            .settings
            .std
            .iter()
            .any(|s| *s == 0.0 || !s.is_finite())
        {
            return Err(self.bad("input.std must be non-zero".into()));
        }
        Ok(ModelInput {
            name: inputs[0].name().to_string(),
            shape,
            dtype,
            layout,
            h,
            w,
        })
    }

    /// How the outputs read: as `output.decoder` says, or as their shapes tell.
    fn decoder_kind(&self, outputs: &[OutputInfo]) -> Result<DecoderKind, ModelError> {
        Ok(match self.want.decoder {
            Some(k) => k,
            None if postprocessed_outputs(outputs).is_some() => DecoderKind::SsdPostprocessed,
            None if ssd_outputs(outputs).is_some() => DecoderKind::Ssd,
            None if outputs.len() == 1 && outputs[0].2.len() == 2 => DecoderKind::Classification,
            None => {
                return Err(self.bad(format!(
                    "cannot tell how to read the outputs ({}); set output.decoder",
                    names(outputs)
                )));
            }
        })
    }

    /// The output named `name` in the config, if it names one.
    fn find<'o>(
        &self,
        outputs: &'o [OutputInfo],
        name: &Option<String>,
    ) -> Result<Option<&'o OutputInfo>, ModelError> {
        match name {
            None => Ok(None),
            Some(n) => outputs.iter().find(|o| &o.0 == n).map(Some).ok_or_else(|| {
                self.mismatch(format!(
                    "the model has no output {n:?}; it has {}",
                    names(outputs)
                ))
            }),
        }
    }

    /// The decoder of `kind` over the named or inferred outputs.
    fn decoder(&self, kind: DecoderKind, outputs: &[OutputInfo]) -> Result<Decoder, ModelError> {
        let (oc, settings) = (self.want, self.settings);
        match kind {
            DecoderKind::Ssd => {
                let inferred = ssd_outputs(outputs);
                let scores = self.find(outputs, &oc.scores)?.or(inferred.map(|p| p.0));
                let boxes = self.find(outputs, &oc.boxes)?.or(inferred.map(|p| p.1));
                let (Some(s), Some(b)) = (scores, boxes) else {
                    return Err(self.mismatch(format!(
                        "decoder ssd needs scores [1,A,C] and boxes [1,A,(1,)4]; the model has {}",
                        names(outputs)
                    )));
                };
                Ok(Decoder::SsdRaw {
                    scores: s.0.clone(),
                    boxes: b.0.clone(),
                    iou: settings.iou,
                })
            }
            DecoderKind::SsdPostprocessed => {
                let inferred = postprocessed_outputs(outputs);
                let pick =
                    |name: &Option<String>, i: usize| -> Result<Option<String>, ModelError> {
                        Ok(self
                            .find(outputs, name)?
                            .map(|o| o.0.clone())
                            .or_else(|| inferred.as_ref().map(|p| p[i].0.clone())))
                    };
                let (Some(boxes), Some(classes), Some(scores)) = (
                    pick(&oc.boxes, 0)?,
                    pick(&oc.classes, 1)?,
                    pick(&oc.scores, 2)?,
                ) else {
                    return Err(self.mismatch(format!(
                        "decoder ssd-postprocessed needs boxes, classes, scores (and count) outputs; the model has {}",
                        names(outputs)
                    )));
                };
                Ok(Decoder::SsdPostprocessed {
                    boxes,
                    classes,
                    scores,
                    count: pick(&oc.count, 3)?,
                    class_offset: settings.class_offset,
                })
            }
            DecoderKind::Classification => {
                let o = match self.find(outputs, &oc.scores)? {
                    Some(o) => o,
                    None if outputs.len() == 1 => &outputs[0],
                    None => {
                        return Err(self.mismatch(format!(
                            "classification reads one output; the model has {}: set output.scores",
                            names(outputs)
                        )));
                    }
                };
                let odt = match o.1 {
                    TensorElementType::Uint8 => DType::U8,
                    TensorElementType::Float32 => DType::F32,
                    other => {
                        return Err(
                            self.bad(format!("output type {other:?} is not uint8 or float32"))
                        );
                    }
                };
                Ok(Decoder::Classify {
                    output: o.0.clone(),
                    dtype: odt,
                    scale: settings.output_scale(odt),
                    logits: settings.logits,
                    top_k: settings.top_k,
                })
            }
        }
    }

    /// The input frames are scaled to: the model's size, or the config's
    /// where the model's is dynamic; and the largest batch a run takes.
    fn input_spec(&self, input: ModelInput, task: Task) -> Result<(InputSpec, usize), ModelError> {
        let (want, settings, shape) = (self.want, self.settings, &input.shape);
        let dynamic = match task {
            Task::Detection => DYNAMIC_DETECTION_SIZE,
            Task::Classification => DYNAMIC_CLASSIFICATION_SIZE,
        };
        let dim = |name: &str, model: i64, wanted: Option<u32>| -> Result<u32, ModelError> {
            match (model, wanted) {
                (m, Some(w)) if m > 0 && m != i64::from(w) => Err(self.mismatch(format!(
                    "input.{name} {w} contradicts the model's input shape {shape:?}"
                ))),
                (m, _) if m > 0 => u32::try_from(m).map_err(|_| {
                    self.bad(format!(
                        "input shape {shape:?}: {name} {m} is not a frame size"
                    ))
                }),
                (_, Some(w)) => Ok(w),
                _ => Ok(dynamic),
            }
        };
        // A dynamic batch dimension lets one run take frames of several streams.
        let max_batch = match (shape[0], want.batch) {
            (b, Some(want)) if b > 0 && i64::try_from(want).ok() != Some(b) => {
                return Err(self.mismatch(format!(
                    "batch {want} contradicts the model's fixed batch of {b}"
                )));
            }
            (b, _) if b > 0 => 1,
            _ => settings.batch,
        };
        let spec = InputSpec {
            width: dim("width", input.w, want.width)?,
            height: dim("height", input.h, want.height)?,
            name: input.name,
            layout: input.layout,
            dtype: input.dtype,
            colour: settings.colour,
            resize: settings.resize,
            mean: settings.mean,
            std: settings.std,
        };
        Ok((spec, max_batch))
    }
}

/// The outputs by name and shape, for messages.
fn names(outputs: &[OutputInfo]) -> String {
    outputs
        .iter()
        .map(|o| format!("{} {:?}", o.0, o.2))
        .collect::<Vec<_>>()
        .join(", ")
}

type OutputInfo = (String, TensorElementType, Vec<i64>);

/// The TensorFlow Object Detection API outputs, by name:
/// [boxes, classes, scores, count].
fn postprocessed_outputs(outputs: &[OutputInfo]) -> Option<[&OutputInfo; 4]> {
    let by = |needle: &str| outputs.iter().find(|o| o.0.contains(needle));
    Some([
        by("detection_boxes")?,
        by("detection_classes")?,
        by("detection_scores")?,
        by("num_detections")?,
    ])
}

/// The (scores, boxes) pair of a raw SSD head. Converted models often leave
/// every dimension dynamic, so the boxes are told by rank 4 (`[1, A, 1, 4]`),
/// a last dimension of 4, or their name.
fn ssd_outputs(outputs: &[OutputInfo]) -> Option<(&OutputInfo, &OutputInfo)> {
    if outputs.len() != 2 || outputs.iter().any(|o| o.1 != TensorElementType::Float32) {
        return None;
    }
    let is_boxes = |o: &OutputInfo| {
        o.2.len() == 4
            || (o.2.len() == 3 && o.2[2] == 4)
            || o.0.to_ascii_lowercase().contains("box")
    };
    let (a, b) = (&outputs[0], &outputs[1]);
    match (is_boxes(a), is_boxes(b)) {
        (false, true) if a.2.len() == 3 => Some((a, b)),
        (true, false) if b.2.len() == 3 => Some((b, a)),
        _ => None,
    }
}
