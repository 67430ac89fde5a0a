//! One loaded model: what it expects (read from the model itself), how to
//! fill its input from a frame, and how to decode its outputs.

use std::sync::Arc;
use std::time::Instant;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Tensor, TensorElementType, ValueType};

use super::ModelError;
use super::decode::{self, Labels};
use crate::config::{ModelConfig, Task};
use crate::frame::{Image, Output};

/// Size used for dynamic spatial dimensions (SSD-MobileNet resizes to 300x300 inside the graph).
const DYNAMIC_DETECTION_SIZE: u32 = 300;
const DYNAMIC_CLASSIFICATION_SIZE: u32 = 224;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Nhwc,
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    U8,
    F32,
}

/// What the model's input tensor looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub dtype: DType,
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

enum InputTensor {
    U8(Tensor<u8>),
    F32(Tensor<f32>),
}

pub struct Model {
    pub name: Arc<str>,
    pub task: Task,
    pub input: InputSpec,
    pub decoder: Decoder,
    pub labels: Labels,
    session: Session,
    tensor: InputTensor,
    probs: Vec<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("task", &self.task)
            .field("input", &self.input)
            .field("decoder", &self.decoder)
            .finish()
    }
}

fn tensor_info(v: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match v {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

impl Model {
    /// Loads the model's session with `threads` intra-op threads and reads
    /// its input and output description.
    pub fn load(cfg: &ModelConfig, threads: usize) -> Result<Self, ModelError> {
        let err = |e: ort::Error| ModelError::Load {
            model: cfg.name.clone(),
            message: e.to_string(),
        };
        let session = Session::builder(super::runtime::environment()?)
            .map_err(err)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| err(e.into()))?
            .with_intra_threads(threads)
            .map_err(|e| err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.into()))?
            // Spinning threads steal the cores GStreamer decodes on.
            .with_intra_op_spinning(false)
            .map_err(|e| err(e.into()))?
            .with_inter_op_spinning(false)
            .map_err(|e| err(e.into()))?
            .commit_from_file(&cfg.path)
            .map_err(|e| ModelError::Load {
                model: cfg.name.clone(),
                message: format!("{}: {e}", cfg.path.display()),
            })?;
        let labels = match &cfg.labels {
            Some(p) => {
                Labels::parse(&std::fs::read_to_string(p).map_err(|e| ModelError::Load {
                    model: cfg.name.clone(),
                    message: format!("labels {}: {e}", p.display()),
                })?)
            }
            None => Labels::default(),
        };
        let (input, decoder, task) = describe(cfg, &session)?;
        let n = (input.width * input.height * 3) as usize;
        let shape = match input.layout {
            Layout::Nhwc => [1, input.height as i64, input.width as i64, 3],
            Layout::Nchw => [1, 3, input.height as i64, input.width as i64],
        };
        let tensor = match input.dtype {
            DType::U8 => InputTensor::U8(Tensor::from_array((shape, vec![0u8; n])).map_err(err)?),
            DType::F32 => {
                InputTensor::F32(Tensor::from_array((shape, vec![0f32; n])).map_err(err)?)
            }
        };
        Ok(Self {
            name: cfg.name.as_str().into(),
            task,
            input,
            decoder,
            labels,
            session,
            tensor,
            probs: Vec::new(),
        })
    }

    /// Analyses one RGB frame at the input size; `min_score` cuts weak
    /// results before the more costly steps (NMS).
    pub fn infer(&mut self, image: &Image, min_score: f32) -> Result<Output, ModelError> {
        let err = |e: ort::Error| ModelError::Run {
            model: self.name.to_string(),
            message: e.to_string(),
        };
        if image.width != self.input.width || image.height != self.input.height {
            return Err(ModelError::Run {
                model: self.name.to_string(),
                message: format!(
                    "frame is {}x{}, the model takes {}x{}",
                    image.width, image.height, self.input.width, self.input.height
                ),
            });
        }
        match &mut self.tensor {
            InputTensor::U8(t) => fill_u8(image, self.input.layout, t.extract_tensor_mut().1),
            InputTensor::F32(t) => fill_f32(image, &self.input, t.extract_tensor_mut().1),
        }
        let input_name = self.input.name.as_str();
        let outputs = match &self.tensor {
            InputTensor::U8(t) => self.session.run(ort::inputs![input_name => t]),
            InputTensor::F32(t) => self.session.run(ort::inputs![input_name => t]),
        }
        .map_err(err)?;
        let missing = |name: &str| ModelError::Run {
            model: self.name.to_string(),
            message: format!("output {name:?} missing"),
        };
        match &self.decoder {
            Decoder::SsdRaw { scores, boxes, iou } => {
                let s = outputs
                    .get(scores.as_str())
                    .ok_or_else(|| missing(scores))?;
                let b = outputs.get(boxes.as_str()).ok_or_else(|| missing(boxes))?;
                let (shape, s) = s.try_extract_tensor::<f32>().map_err(err)?;
                let classes = shape.last().copied().unwrap_or(0).max(0) as usize;
                let (_, b) = b.try_extract_tensor::<f32>().map_err(err)?;
                let mut out = Vec::new();
                decode::ssd_raw(s, b, classes, min_score, *iou, &self.labels, &mut out);
                Ok(Output::Detections(out))
            }
            Decoder::Classify {
                output,
                dtype,
                scale,
                logits,
                top_k,
            } => {
                let o = outputs
                    .get(output.as_str())
                    .ok_or_else(|| missing(output))?;
                self.probs.clear();
                match dtype {
                    DType::U8 => {
                        let (_, v) = o.try_extract_tensor::<u8>().map_err(err)?;
                        self.probs.extend(v.iter().map(|&q| f32::from(q) * scale));
                    }
                    DType::F32 => {
                        let (_, v) = o.try_extract_tensor::<f32>().map_err(err)?;
                        self.probs.extend_from_slice(v);
                    }
                }
                if *logits {
                    decode::softmax(&mut self.probs);
                }
                Ok(Output::Classes(decode::top_k(
                    &self.probs,
                    *top_k,
                    min_score,
                    &self.labels,
                )))
            }
        }
    }

    /// Runs the model once on a blank frame (first runs are slow).
    pub fn warm_up(&mut self) -> Result<f64, ModelError> {
        let (w, h) = (self.input.width, self.input.height);
        let stride = (w as usize * 3).div_ceil(4) * 4;
        let image = Image::from_vec(w, h, stride, vec![0; stride * h as usize]);
        let t = Instant::now();
        self.infer(&image, 1.1)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }
}

/// Reads input and output descriptions from the session.
fn describe(
    cfg: &ModelConfig,
    session: &Session,
) -> Result<(InputSpec, Decoder, Task), ModelError> {
    let bad = |message: String| ModelError::Unsupported {
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
    if shape.len() != 4 {
        return Err(bad(format!("input shape {shape:?} is not 4-D image batch")));
    }
    let layout = if shape[3] == 3 {
        Layout::Nhwc
    } else if shape[1] == 3 {
        Layout::Nchw
    } else {
        return Err(bad(format!("input shape {shape:?} has no 3-channel axis")));
    };
    let (h, w) = match layout {
        Layout::Nhwc => (shape[1], shape[2]),
        Layout::Nchw => (shape[2], shape[3]),
    };

    let outputs: Vec<OutputInfo> = session
        .outputs()
        .iter()
        .filter_map(|o| tensor_info(o.dtype()).map(|(t, s)| (o.name().to_string(), t, s)))
        .collect();
    let ssd = ssd_outputs(&outputs);
    let classifier = (outputs.len() == 1 && outputs[0].2.len() == 2).then(|| &outputs[0]);
    let task = match (cfg.task, ssd.is_some(), classifier.is_some()) {
        (Some(t), _, _) => t,
        (None, true, _) => Task::Detection,
        (None, false, true) => Task::Classification,
        (None, false, false) => {
            return Err(bad(format!(
                "cannot tell the task from the outputs {:?}; set task",
                outputs.iter().map(|o| (&o.0, &o.2)).collect::<Vec<_>>()
            )));
        }
    };
    let dynamic = match task {
        Task::Detection => DYNAMIC_DETECTION_SIZE,
        Task::Classification => DYNAMIC_CLASSIFICATION_SIZE,
    };
    let dim = |d: i64| if d > 0 { d as u32 } else { dynamic };
    let decoder = match task {
        Task::Detection => {
            let (s, b) = ssd.ok_or_else(|| {
                bad("detection needs SSD outputs: scores [1,A,C] and boxes [1,A,..,4]".into())
            })?;
            Decoder::SsdRaw {
                scores: s.0.clone(),
                boxes: b.0.clone(),
                iou: cfg.iou,
            }
        }
        Task::Classification => {
            let o = classifier.ok_or_else(|| {
                bad("classification needs one output of shape [1, classes]".into())
            })?;
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
                // Quantised softmax outputs use scale 1/256, zero point 0.
                scale: if odt == DType::U8 { 1.0 / 256.0 } else { 1.0 },
                logits: false,
                top_k: cfg.top_k,
            }
        }
    };
    Ok((
        InputSpec {
            name: inputs[0].name().to_string(),
            width: dim(w),
            height: dim(h),
            layout,
            dtype,
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        decoder,
        task,
    ))
}

type OutputInfo = (String, TensorElementType, Vec<i64>);

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

/// Copies packed RGB rows (skipping stride padding) into a uint8 tensor.
pub fn fill_u8(image: &Image, layout: Layout, out: &mut [u8]) {
    let (w, h) = (image.width as usize, image.height as usize);
    match layout {
        Layout::Nhwc => {
            for y in 0..h {
                out[y * w * 3..(y + 1) * w * 3].copy_from_slice(image.row(y));
            }
        }
        Layout::Nchw => {
            let plane = w * h;
            for y in 0..h {
                for (x, px) in image.row(y).chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        out[c * plane + y * w + x] = px[c];
                    }
                }
            }
        }
    }
}

/// Fills a float tensor with (pixel - mean) / std.
pub fn fill_f32(image: &Image, spec: &InputSpec, out: &mut [f32]) {
    let (w, h) = (image.width as usize, image.height as usize);
    let inv: [f32; 3] = std::array::from_fn(|c| 1.0 / spec.std[c]);
    let plane = w * h;
    for y in 0..h {
        for (x, px) in image.row(y).chunks_exact(3).enumerate() {
            for c in 0..3 {
                let v = (f32::from(px[c]) - spec.mean[c]) * inv[c];
                let i = match spec.layout {
                    Layout::Nhwc => (y * w + x) * 3 + c,
                    Layout::Nchw => c * plane + y * w + x,
                };
                out[i] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 image with 4-byte-aligned rows (9 bytes of pixels + 3 of padding).
    fn image() -> Image {
        let mut data = Vec::new();
        for y in 0..2u8 {
            for x in 0..3u8 {
                data.extend_from_slice(&[10 * y + x, 100 + x, 200 + y]);
            }
            data.extend_from_slice(&[0xEE; 3]);
        }
        Image::from_vec(3, 2, 12, data)
    }

    #[test]
    fn nhwc_u8_skips_row_padding() {
        let mut out = vec![0u8; 18];
        fill_u8(&image(), Layout::Nhwc, &mut out);
        assert_eq!(&out[..9], &[0, 100, 200, 1, 101, 200, 2, 102, 200]);
        assert_eq!(&out[9..], &[10, 100, 201, 11, 101, 201, 12, 102, 201]);
    }

    #[test]
    fn nchw_u8_is_planar() {
        let mut out = vec![0u8; 18];
        fill_u8(&image(), Layout::Nchw, &mut out);
        assert_eq!(&out[..6], &[0, 1, 2, 10, 11, 12]);
        assert_eq!(&out[6..12], &[100, 101, 102, 100, 101, 102]);
        assert_eq!(&out[12..], &[200, 200, 200, 201, 201, 201]);
    }

    #[test]
    fn float_normalises_per_channel() {
        let spec = InputSpec {
            name: "x".into(),
            width: 3,
            height: 2,
            layout: Layout::Nchw,
            dtype: DType::F32,
            mean: [0.0, 100.0, 200.0],
            std: [2.0, 1.0, 0.5],
        };
        let mut out = vec![0f32; 18];
        fill_f32(&image(), &spec, &mut out);
        assert_eq!(&out[..6], &[0.0, 0.5, 1.0, 5.0, 5.5, 6.0]);
        assert_eq!(&out[6..9], &[0.0, 1.0, 2.0]);
        assert_eq!(&out[15..], &[2.0, 2.0, 2.0]);
    }
}
