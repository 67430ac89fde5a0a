//! One loaded model: what it expects (read from the model itself), how to
//! fill its input from a frame, and how to decode its outputs.

use std::sync::Arc;
use std::time::Instant;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::decode::{self, Labels};
use super::describe::describe;
use super::error::ModelError;
use super::fill::{fill_f32, fill_u8};
use super::spec::{DType, Decoder, InputSpec, Layout, ModelSpec, Provider, Task};
use crate::frame::{Image, Output};

/// Room for `max_batch` input tensors, reused for every run.
enum InputBuf {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

pub struct Model {
    pub name: Arc<str>,
    pub task: Task,
    /// The execution provider the session runs on.
    pub provider: Provider,
    pub input: InputSpec,
    pub decoder: Decoder,
    pub labels: Labels,
    /// Frames one run may take: 1 unless the model's batch dimension is dynamic.
    pub max_batch: usize,
    session: Session,
    /// Values in one frame's input tensor.
    item: usize,
    buf: InputBuf,
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

impl Model {
    /// Loads the model's session with `threads` intra-op threads and reads
    /// its input and output description.
    pub fn load(spec: &ModelSpec, threads: usize) -> Result<Self, ModelError> {
        Self::load_sharing(spec, threads, None)
    }

    /// Loads `workers` sessions of the model, warmed up, that share one copy
    /// of the pre-packed weights; also returns the first warm-up in ms.
    pub fn load_workers(
        spec: &ModelSpec,
        workers: usize,
        threads: usize,
    ) -> Result<(Vec<Self>, f64), ModelError> {
        let weights = ort::session::builder::PrepackedWeights::new();
        let mut models = Vec::with_capacity(workers);
        let mut warm_up_ms = 0.0;
        for _ in 0..workers {
            let mut model = Self::load_sharing(spec, threads, Some(&weights))?;
            let ms = model.warm_up()?;
            if models.is_empty() {
                warm_up_ms = ms;
            }
            models.push(model);
        }
        Ok((models, warm_up_ms))
    }

    /// As [`Model::load`]; sessions given the same `weights` share their
    /// pre-packed weights instead of holding a copy each.
    fn load_sharing(
        spec: &ModelSpec,
        threads: usize,
        weights: Option<&ort::session::builder::PrepackedWeights>,
    ) -> Result<Self, ModelError> {
        let err = |e: ort::Error| ModelError::Load {
            model: spec.name.clone(),
            message: e.to_string(),
        };
        let provider = choose_provider(&spec.providers).map_err(|message| ModelError::Load {
            model: spec.name.clone(),
            message,
        })?;
        let mut builder = Session::builder(super::runtime::environment()?).map_err(err)?;
        if let Some(w) = weights {
            builder = builder
                .with_prepacked_weights(w)
                .map_err(|e| err(e.into()))?;
        }
        if super::runtime::int8_saturates() {
            builder = builder
                .with_config_entry("session.disable_quant_qdq", "1")
                .map_err(|e| err(e.into()))?;
        }
        let session = builder
            .with_execution_providers([dispatch(provider)])
            .map_err(|e| err(e.into()))?
            // All, not Level3: in ort, Level3 is ONNX Runtime's 3
            // (ORT_ENABLE_LAYOUT), one short of everything (99).
            .with_optimization_level(GraphOptimizationLevel::All)
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
            .commit_from_file(&spec.path)
            .map_err(|e| ModelError::Load {
                model: spec.name.clone(),
                message: format!("{}: {e}", spec.path.display()),
            })?;
        let labels = match &spec.labels {
            Some(p) => {
                Labels::parse(&std::fs::read_to_string(p).map_err(|e| ModelError::Load {
                    model: spec.name.clone(),
                    message: format!("labels {}: {e}", p.display()),
                })?)
            }
            None => Labels::default(),
        };
        let (input, decoder, task, max_batch) = describe(spec, &session)?;
        let too_big = |message| ModelError::Unsupported {
            model: spec.name.clone(),
            message,
        };
        let item = tensor_len(input.width, input.height, 1).map_err(too_big)?;
        let n = tensor_len(input.width, input.height, max_batch).map_err(too_big)?;
        let buf = match input.dtype {
            DType::U8 => InputBuf::U8(vec![0; n]),
            DType::F32 => InputBuf::F32(vec![0.0; n]),
        };
        Ok(Self {
            name: spec.name.as_str().into(),
            task,
            provider,
            input,
            decoder,
            labels,
            max_batch,
            session,
            item,
            buf,
            probs: Vec::new(),
        })
    }

    /// Analyses one RGB frame at the input size; `min_score` cuts weak
    /// results before the more costly steps (NMS).
    pub fn infer(&mut self, image: &Image, min_score: f32) -> Result<Output, ModelError> {
        let mut out = self.infer_batch(&[image], &[min_score])?;
        out.pop().ok_or_else(|| ModelError::Run {
            model: self.name.to_string(),
            message: "no output".into(),
        })
    }

    /// Analyses up to `max_batch` frames in one run.
    pub fn infer_batch(
        &mut self,
        images: &[&Image],
        min_scores: &[f32],
    ) -> Result<Vec<Output>, ModelError> {
        let n = images.len();
        if n == 0 || n > self.max_batch || min_scores.len() != n {
            return Err(ModelError::Run {
                model: self.name.to_string(),
                message: format!(
                    "a batch of {n} frames (the model takes 1 to {})",
                    self.max_batch
                ),
            });
        }
        for (i, image) in images.iter().enumerate() {
            self.fill(i, image)?;
        }
        let model = self.name.clone();
        let err = |e: ort::Error| ModelError::Run {
            model: model.to_string(),
            message: e.to_string(),
        };
        let outputs =
            run(&mut self.session, &self.input, &self.buf, (n, self.item)).map_err(err)?;
        (0..n)
            .map(|i| {
                decode_outputs(
                    &self.decoder,
                    &self.labels,
                    &mut self.probs,
                    &self.name,
                    &outputs,
                    (i, n),
                    min_scores[i],
                )
            })
            .collect()
    }

    /// Every output of the model for one frame, as numbers (uint8 outputs
    /// unscaled), in the model's output order: for checking against other
    /// runtimes (tests/reference.rs; test builds only).
    #[cfg(feature = "test-support")]
    pub fn raw_outputs(&mut self, image: &Image) -> Result<Vec<(String, Vec<f32>)>, ModelError> {
        self.fill(0, image)?;
        let model = self.name.clone();
        let err = |e: ort::Error| ModelError::Run {
            model: model.to_string(),
            message: e.to_string(),
        };
        let outputs =
            run(&mut self.session, &self.input, &self.buf, (1, self.item)).map_err(err)?;
        let mut raw = Vec::new();
        for (name, value) in outputs.iter() {
            let numbers = match value.try_extract_tensor::<f32>() {
                Ok((_, v)) => v.to_vec(),
                Err(_) => {
                    let (_, v) = value.try_extract_tensor::<u8>().map_err(err)?;
                    v.iter().map(|&x| f32::from(x)).collect()
                }
            };
            raw.push((name.to_string(), numbers));
        }
        Ok(raw)
    }

    /// The input tensor as the model will see it (for tests of
    /// pre-processing; test builds only).
    #[cfg(feature = "test-support")]
    pub fn input_tensor(&mut self, image: &Image) -> Result<Vec<f32>, ModelError> {
        self.fill(0, image)?;
        let item = self.item_len();
        Ok(match &self.buf {
            InputBuf::U8(v) => v[..item].iter().map(|&x| f32::from(x)).collect(),
            InputBuf::F32(v) => v[..item].to_vec(),
        })
    }

    fn item_len(&self) -> usize {
        self.item
    }

    /// Fills batch slot `slot` from `image`.
    fn fill(&mut self, slot: usize, image: &Image) -> Result<(), ModelError> {
        if image.width != self.input.width || image.height != self.input.height {
            return Err(ModelError::Run {
                model: self.name.to_string(),
                message: format!(
                    "frame is {}x{}, the model takes {}x{}",
                    image.width, image.height, self.input.width, self.input.height
                ),
            });
        }
        let item = self.item_len();
        let range = slot * item..(slot + 1) * item;
        let bad = |message: String| ModelError::Run {
            model: self.name.to_string(),
            message,
        };
        let filled = match &mut self.buf {
            InputBuf::U8(v) => v
                .get_mut(range)
                .map(|out| fill_u8(image, self.input.layout, self.input.colour, out)),
            InputBuf::F32(v) => v
                .get_mut(range)
                .map(|out| fill_f32(image, &self.input, out)),
        };
        match filled {
            Some(r) => r.map_err(|e| bad(e.to_string())),
            None => Err(bad(format!(
                "batch slot {slot} of a model that takes {}",
                self.max_batch
            ))),
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

pub use crate::limits::MAX_INPUT_SIDE;
/// Values in an input tensor (all its frames) at most: 2^28, 1 GiB as float32.
pub const MAX_TENSOR_VALUES: usize = 1 << 28;

/// Values in an input tensor of `batch` RGB frames of `width`x`height`, in
/// checked arithmetic; an absurd size (a hostile or broken model, a typo
/// in the config) is an error, not an overflow or a huge allocation.
pub fn tensor_len(width: u32, height: u32, batch: usize) -> Result<usize, String> {
    if width == 0 || height == 0 || width > MAX_INPUT_SIDE || height > MAX_INPUT_SIDE {
        return Err(format!(
            "input size {width}x{height}: each side must be 1 to {MAX_INPUT_SIDE}"
        ));
    }
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .and_then(|n| n.checked_mul(batch))
        .filter(|n| *n <= MAX_TENSOR_VALUES)
        .ok_or_else(|| {
            format!(
                "a batch of {batch} frames of {width}x{height} exceeds {MAX_TENSOR_VALUES} input values"
            )
        })
}

/// Runs the session on the first `n` slots of `item` values of `buf`,
/// viewed in place (`n` and `item` were checked by [`tensor_len`]).
fn run<'s>(
    session: &'s mut Session,
    input: &InputSpec,
    buf: &InputBuf,
    (n, item): (usize, usize),
) -> Result<ort::session::SessionOutputs<'s>, ort::Error> {
    let (w, h) = (i64::from(input.width), i64::from(input.height));
    let batch = i64::try_from(n).unwrap_or(i64::MAX);
    let shape = match input.layout {
        Layout::Nhwc => [batch, h, w, 3],
        Layout::Nchw => [batch, 3, h, w],
    };
    let len = n.saturating_mul(item);
    let name = input.name.as_str();
    match buf {
        InputBuf::U8(v) => {
            let t = TensorRef::from_array_view((shape, v.get(..len).unwrap_or(v)))?;
            session.run(ort::inputs![name => t])
        }
        InputBuf::F32(v) => {
            let t = TensorRef::from_array_view((shape, v.get(..len).unwrap_or(v)))?;
            session.run(ort::inputs![name => t])
        }
    }
}

/// Item `i` of a batch of `n`: outputs are laid out item after item.
fn item(v: &[f32], (i, n): (usize, usize)) -> &[f32] {
    let per = v.len() / n.max(1);
    &v[i * per..(i + 1) * per]
}

/// Reads item `at.0` of a batch of `at.1` from the outputs with the model's decoder.
fn decode_outputs(
    decoder: &Decoder,
    labels: &Labels,
    probs: &mut Vec<f32>,
    model: &str,
    outputs: &ort::session::SessionOutputs<'_>,
    at: (usize, usize),
    min_score: f32,
) -> Result<Output, ModelError> {
    let err = |e: ort::Error| ModelError::Run {
        model: model.to_string(),
        message: e.to_string(),
    };
    let missing = |name: &str| ModelError::Run {
        model: model.to_string(),
        message: format!("output {name:?} missing"),
    };
    match decoder {
        Decoder::SsdRaw { scores, boxes, iou } => {
            let s = outputs
                .get(scores.as_str())
                .ok_or_else(|| missing(scores))?;
            let b = outputs.get(boxes.as_str()).ok_or_else(|| missing(boxes))?;
            let (shape, s) = s.try_extract_tensor::<f32>().map_err(err)?;
            let classes = shape.last().copied().unwrap_or(0).max(0) as usize;
            let (_, b) = b.try_extract_tensor::<f32>().map_err(err)?;
            let (s, b) = (item(s, at), item(b, at));
            let mut out = Vec::new();
            decode::ssd_raw(s, b, classes, min_score, *iou, labels, &mut out);
            Ok(Output::Detections(out))
        }
        Decoder::SsdPostprocessed {
            boxes,
            classes,
            scores,
            count,
            class_offset,
        } => {
            let get = |name: &String| {
                outputs
                    .get(name.as_str())
                    .ok_or_else(|| missing(name))?
                    .try_extract_tensor::<f32>()
                    .map(|(_, v)| item(v, at))
                    .map_err(err)
            };
            let (b, c, sc) = (get(boxes)?, get(classes)?, get(scores)?);
            let n = match count {
                Some(name) => get(name)?.first().map(|n| n.max(0.0) as usize),
                None => None,
            };
            let mut out = Vec::new();
            decode::ssd_postprocessed(b, c, sc, n, *class_offset, min_score, labels, &mut out);
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
            probs.clear();
            match dtype {
                DType::U8 => {
                    let (_, v) = o.try_extract_tensor::<u8>().map_err(err)?;
                    let per = v.len() / at.1.max(1);
                    let v = &v[at.0 * per..(at.0 + 1) * per];
                    probs.extend(v.iter().map(|&q| f32::from(q) * scale));
                }
                DType::F32 => {
                    let (_, v) = o.try_extract_tensor::<f32>().map_err(err)?;
                    probs.extend_from_slice(item(v, at));
                }
            }
            if *logits {
                decode::softmax(probs);
            }
            Ok(Output::Classes(decode::top_k(
                probs, *top_k, min_score, labels,
            )))
        }
    }
}

/// The first of `wanted` (default: cpu) that this ONNX Runtime build has.
fn choose_provider(wanted: &[Provider]) -> Result<Provider, String> {
    use ort::ep::{self, ExecutionProvider};
    if wanted.is_empty() {
        return Ok(Provider::Cpu);
    }
    for p in wanted {
        let available = match p {
            Provider::Cpu => Ok(true),
            Provider::Cuda => ep::CUDA::is_available(),
            Provider::Tensorrt => ep::TensorRT::is_available(),
            Provider::Openvino => ep::OpenVINO::is_available(),
            Provider::Xnnpack => ep::XNNPACK::is_available(),
        };
        if available.unwrap_or(false) {
            return Ok(*p);
        }
    }
    Err(format!(
        "none of the execution providers [{}] is in this ONNX Runtime build; add cpu to fall back",
        wanted
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn dispatch(p: Provider) -> ort::ep::ExecutionProviderDispatch {
    use ort::ep;
    match p {
        Provider::Cpu => ep::CPU::default().build(),
        Provider::Cuda => ep::CUDA::default().build().error_on_failure(),
        Provider::Tensorrt => ep::TensorRT::default().build().error_on_failure(),
        Provider::Openvino => ep::OpenVINO::default().build().error_on_failure(),
        Provider::Xnnpack => ep::XNNPACK::default().build().error_on_failure(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_sizes_are_checked_not_wrapped() {
        assert_eq!(tensor_len(300, 300, 1), Ok(270_000));
        assert_eq!(tensor_len(224, 224, 4), Ok(602_112));
        // u32 arithmetic wrapped these: 65536 * 65536 * 3 is 0 in u32.
        for (w, h, b) in [
            (65_536, 65_536, 1),
            (u32::MAX, u32::MAX, 1),
            (0, 300, 1),
            (300, 0, 1),
            (16_384, 16_384, 1),
            (1_000, 1_000, 1_000),
            (300, 300, usize::MAX),
        ] {
            let e = tensor_len(w, h, b);
            assert!(e.is_err(), "{w}x{h}x{b}: {e:?}");
        }
        assert!(
            tensor_len(8_192, 8_192, 2)
                .unwrap_err()
                .contains("exceeds 268435456 input values")
        );
        assert!(tensor_len(70_000, 10, 1).unwrap_err().contains("1 to 8192"));
    }
}
