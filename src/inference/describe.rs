//! What a model expects and returns: read from the model's own
//! description, completed and checked against the config.

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::ModelError;
use super::model::{DType, Decoder, InputSpec, Layout};
use crate::config::{DecoderKind, ModelConfig, ModelSettings, Task};

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
    cfg: &ModelConfig,
    session: &Session,
) -> Result<(InputSpec, Decoder, Task, usize), ModelError> {
    // Values from here; `cfg` only to check what the user wrote against the model.
    let settings = ModelSettings::resolve(cfg);
    let bad = |message: String| ModelError::Unsupported {
        model: cfg.name.clone(),
        message,
    };
    let mismatch = |message: String| ModelError::Mismatch {
        model: cfg.name.clone(),
        message,
    };
    let inputs = session.inputs();
    if inputs.len() != 1 {
        return Err(bad(format!(
            "expected one input, the model has {}",
            inputs.len()
        )));
    }
    let (ty, shape) =
        tensor_info(inputs[0].dtype()).ok_or_else(|| bad("the input is not a tensor".into()))?;
    let dtype = match ty {
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Float32 => DType::F32,
        other => return Err(bad(format!("input type {other:?} is not uint8 or float32"))),
    };
    let want = &cfg.input;
    if let Some(d) = want.dtype
        && d != dtype
    {
        return Err(mismatch(format!(
            "input.dtype {d:?} contradicts the model's input type {dtype:?}"
        )));
    }
    if shape.len() != 4 {
        return Err(bad(format!(
            "input shape {shape:?} is not a 4-D image batch"
        )));
    }
    let model_layout = match (shape[3], shape[1]) {
        (3, c) if c != 3 => Some(Layout::Nhwc),
        (c, 3) if c != 3 => Some(Layout::Nchw),
        _ => None,
    };
    let layout = match (want.layout, model_layout) {
        (Some(w), Some(m)) if w != m => {
            return Err(mismatch(format!(
                "input.layout {w:?} contradicts the model's input shape {shape:?}"
            )));
        }
        (Some(l), _) | (None, Some(l)) => l,
        (None, None) => {
            return Err(bad(format!(
                "input shape {shape:?} does not tell NHWC from NCHW; set input.layout"
            )));
        }
    };
    let (h, w) = match layout {
        Layout::Nhwc => (shape[1], shape[2]),
        Layout::Nchw => (shape[2], shape[3]),
    };
    if (dtype == DType::U8) && (want.mean.is_some() || want.std.is_some()) {
        return Err(mismatch(
            "input.mean/std apply to float32 inputs; the model takes uint8".into(),
        ));
    }
    if let Some(std) = want.std
        && std.iter().any(|s| *s == 0.0 || !s.is_finite())
    {
        return Err(bad("input.std must be non-zero".into()));
    }

    let outputs: Vec<OutputInfo> = session
        .outputs()
        .iter()
        .filter_map(|o| tensor_info(o.dtype()).map(|(t, s)| (o.name().to_string(), t, s)))
        .collect();
    let names = || {
        outputs
            .iter()
            .map(|o| format!("{} {:?}", o.0, o.2))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let find = |name: &Option<String>| -> Result<Option<&OutputInfo>, ModelError> {
        match name {
            None => Ok(None),
            Some(n) => outputs.iter().find(|o| &o.0 == n).map(Some).ok_or_else(|| {
                mismatch(format!("the model has no output {n:?}; it has {}", names()))
            }),
        }
    };
    let oc = &cfg.output;
    let kind = match oc.decoder {
        Some(k) => k,
        None if postprocessed_outputs(&outputs).is_some() => DecoderKind::SsdPostprocessed,
        None if ssd_outputs(&outputs).is_some() => DecoderKind::Ssd,
        None if outputs.len() == 1 && outputs[0].2.len() == 2 => DecoderKind::Classification,
        None => {
            return Err(bad(format!(
                "cannot tell how to read the outputs ({}); set output.decoder",
                names()
            )));
        }
    };
    let task = match kind {
        DecoderKind::Classification => Task::Classification,
        _ => Task::Detection,
    };
    if let Some(t) = cfg.task
        && t != task
    {
        return Err(mismatch(format!(
            "task {t} contradicts the model's outputs ({}), which read as {task}",
            names()
        )));
    }
    let decoder = match kind {
        DecoderKind::Ssd => {
            let inferred = ssd_outputs(&outputs);
            let scores = find(&oc.scores)?.or(inferred.map(|p| p.0));
            let boxes = find(&oc.boxes)?.or(inferred.map(|p| p.1));
            let (Some(s), Some(b)) = (scores, boxes) else {
                return Err(mismatch(format!(
                    "decoder ssd needs scores [1,A,C] and boxes [1,A,(1,)4]; the model has {}",
                    names()
                )));
            };
            Decoder::SsdRaw {
                scores: s.0.clone(),
                boxes: b.0.clone(),
                iou: settings.iou,
            }
        }
        DecoderKind::SsdPostprocessed => {
            let inferred = postprocessed_outputs(&outputs);
            let pick = |name: &Option<String>, i: usize| -> Result<Option<String>, ModelError> {
                Ok(find(name)?
                    .map(|o| o.0.clone())
                    .or_else(|| inferred.as_ref().map(|p| p[i].0.clone())))
            };
            let (Some(boxes), Some(classes), Some(scores)) = (
                pick(&oc.boxes, 0)?,
                pick(&oc.classes, 1)?,
                pick(&oc.scores, 2)?,
            ) else {
                return Err(mismatch(format!(
                    "decoder ssd-postprocessed needs boxes, classes, scores (and count) outputs; the model has {}",
                    names()
                )));
            };
            Decoder::SsdPostprocessed {
                boxes,
                classes,
                scores,
                count: pick(&oc.count, 3)?,
                class_offset: settings.class_offset,
            }
        }
        DecoderKind::Classification => {
            let o = match find(&oc.scores)? {
                Some(o) => o,
                None if outputs.len() == 1 => &outputs[0],
                None => {
                    return Err(mismatch(format!(
                        "classification reads one output; the model has {}: set output.scores",
                        names()
                    )));
                }
            };
            let odt = match o.1 {
                TensorElementType::Uint8 => DType::U8,
                TensorElementType::Float32 => DType::F32,
                other => {
                    return Err(bad(format!(
                        "output type {other:?} is not uint8 or float32"
                    )));
                }
            };
            Decoder::Classify {
                output: o.0.clone(),
                dtype: odt,
                scale: settings.output_scale(odt),
                logits: settings.logits,
                top_k: settings.top_k,
            }
        }
    };

    let dynamic = match task {
        Task::Detection => DYNAMIC_DETECTION_SIZE,
        Task::Classification => DYNAMIC_CLASSIFICATION_SIZE,
    };
    let dim = |name: &str, model: i64, wanted: Option<u32>| -> Result<u32, ModelError> {
        match (model, wanted) {
            (m, Some(w)) if m > 0 && m != i64::from(w) => Err(mismatch(format!(
                "input.{name} {w} contradicts the model's input shape {shape:?}"
            ))),
            (m, _) if m > 0 => u32::try_from(m).map_err(|_| {
                bad(format!(
                    "input shape {shape:?}: {name} {m} is not a frame size"
                ))
            }),
            (_, Some(w)) => Ok(w),
            _ => Ok(dynamic),
        }
    };
    // A dynamic batch dimension lets one run take frames of several streams.
    let max_batch = match (shape[0], cfg.batch) {
        (b, Some(want)) if b > 0 && i64::try_from(want).ok() != Some(b) => {
            return Err(mismatch(format!(
                "batch {want} contradicts the model's fixed batch of {b}"
            )));
        }
        (b, _) if b > 0 => 1,
        _ => settings.batch,
    };
    Ok((
        InputSpec {
            name: inputs[0].name().to_string(),
            width: dim("width", w, want.width)?,
            height: dim("height", h, want.height)?,
            layout,
            dtype,
            colour: settings.colour,
            resize: settings.resize,
            mean: settings.mean,
            std: settings.std,
        },
        decoder,
        task,
        max_batch,
    ))
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
