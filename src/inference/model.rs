//! One loaded model: what it expects (read from the model itself), how to
//! fill its input from a frame, and how to decode its outputs.

use std::sync::Arc;
use std::time::Instant;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::ModelError;
use super::decode::{self, Labels};
use super::geometry::ResizeMode;
use crate::config::{DecoderKind, ModelConfig, Provider, Task};
use crate::frame::{Image, Output};

/// Size used for dynamic spatial dimensions (SSD-MobileNet resizes to 300x300 inside the graph).
const DYNAMIC_DETECTION_SIZE: u32 = 300;
const DYNAMIC_CLASSIFICATION_SIZE: u32 = 224;
/// Frames per run at most when the model's batch dimension is dynamic and
/// the config does not say. 1: on CPU, SSD-MobileNetV2 runs a batch of 4
/// slower than 4 single runs (docs/BENCHMARKS.md), so batching is opt-in.
const DEFAULT_BATCH: usize = 1;

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
        Self::load_sharing(cfg, threads, None)
    }

    /// Loads `workers` sessions of the model, warmed up, that share one copy
    /// of the pre-packed weights; also returns the first warm-up in ms.
    pub fn load_workers(
        cfg: &ModelConfig,
        workers: usize,
        threads: usize,
    ) -> Result<(Vec<Self>, f64), ModelError> {
        let weights = ort::session::builder::PrepackedWeights::new();
        let mut models = Vec::with_capacity(workers);
        let mut warm_up_ms = 0.0;
        for _ in 0..workers {
            let mut model = Self::load_sharing(cfg, threads, Some(&weights))?;
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
        cfg: &ModelConfig,
        threads: usize,
        weights: Option<&ort::session::builder::PrepackedWeights>,
    ) -> Result<Self, ModelError> {
        let err = |e: ort::Error| ModelError::Load {
            model: cfg.name.clone(),
            message: e.to_string(),
        };
        let provider = choose_provider(&cfg.providers).map_err(|message| ModelError::Load {
            model: cfg.name.clone(),
            message,
        })?;
        let mut builder = Session::builder(super::runtime::environment()?).map_err(err)?;
        if let Some(w) = weights {
            builder = builder
                .with_prepacked_weights(w)
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
        let (input, decoder, task, max_batch) = describe(cfg, &session)?;
        let n = (input.width * input.height * 3) as usize * max_batch;
        let buf = match input.dtype {
            DType::U8 => InputBuf::U8(vec![0; n]),
            DType::F32 => InputBuf::F32(vec![0.0; n]),
        };
        Ok(Self {
            name: cfg.name.as_str().into(),
            task,
            provider,
            input,
            decoder,
            labels,
            max_batch,
            session,
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
        let outputs = run(&mut self.session, &self.input, &self.buf, n).map_err(err)?;
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
    /// runtimes.
    pub fn raw_outputs(&mut self, image: &Image) -> Result<Vec<(String, Vec<f32>)>, ModelError> {
        self.fill(0, image)?;
        let model = self.name.clone();
        let err = |e: ort::Error| ModelError::Run {
            model: model.to_string(),
            message: e.to_string(),
        };
        let outputs = run(&mut self.session, &self.input, &self.buf, 1).map_err(err)?;
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

    /// The input tensor as the model will see it (for tests of pre-processing).
    pub fn input_tensor(&mut self, image: &Image) -> Result<Vec<f32>, ModelError> {
        self.fill(0, image)?;
        let item = self.item_len();
        Ok(match &self.buf {
            InputBuf::U8(v) => v[..item].iter().map(|&x| f32::from(x)).collect(),
            InputBuf::F32(v) => v[..item].to_vec(),
        })
    }

    fn item_len(&self) -> usize {
        (self.input.width * self.input.height * 3) as usize
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
        match &mut self.buf {
            InputBuf::U8(v) => fill_u8(image, self.input.layout, self.input.colour, &mut v[range]),
            InputBuf::F32(v) => fill_f32(image, &self.input, &mut v[range]),
        }
        Ok(())
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

/// Runs the session on the first `n` slots of `buf`, viewed in place.
fn run<'s>(
    session: &'s mut Session,
    input: &InputSpec,
    buf: &InputBuf,
    n: usize,
) -> Result<ort::session::SessionOutputs<'s>, ort::Error> {
    let (w, h) = (i64::from(input.width), i64::from(input.height));
    let shape = match input.layout {
        Layout::Nhwc => [n as i64, h, w, 3],
        Layout::Nchw => [n as i64, 3, h, w],
    };
    let len = n * (input.width * input.height * 3) as usize;
    let name = input.name.as_str();
    match buf {
        InputBuf::U8(v) => {
            let t = TensorRef::from_array_view((shape, &v[..len]))?;
            session.run(ort::inputs![name => t])
        }
        InputBuf::F32(v) => {
            let t = TensorRef::from_array_view((shape, &v[..len]))?;
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
    {
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

/// Reads the model's input and outputs, applies the config's description,
/// and reports every contradiction between the two.
fn describe(
    cfg: &ModelConfig,
    session: &Session,
) -> Result<(InputSpec, Decoder, Task, usize), ModelError> {
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
                iou: cfg.iou(),
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
                class_offset: oc.class_offset.unwrap_or(1),
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
                // Quantised softmax outputs use scale 1/256, zero point 0.
                scale: oc
                    .scale
                    .unwrap_or(if odt == DType::U8 { 1.0 / 256.0 } else { 1.0 }),
                logits: oc.logits.unwrap_or(false),
                top_k: cfg.top_k(),
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
            (m, _) if m > 0 => Ok(m as u32),
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
        (_, want) => want.unwrap_or(DEFAULT_BATCH).max(1),
    };
    Ok((
        InputSpec {
            name: inputs[0].name().to_string(),
            width: dim("width", w, want.width)?,
            height: dim("height", h, want.height)?,
            layout,
            dtype,
            colour: want.colour.unwrap_or_default(),
            resize: want.resize.unwrap_or_default(),
            mean: want.mean.unwrap_or([0.0; 3]),
            std: want.std.unwrap_or([1.0; 3]),
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

/// Channel order of a pixel as the model wants it.
fn channels(colour: Colour) -> [usize; 3] {
    match colour {
        Colour::Rgb => [0, 1, 2],
        Colour::Bgr => [2, 1, 0],
    }
}

/// Copies packed RGB rows (skipping stride padding) into a uint8 tensor.
pub fn fill_u8(image: &Image, layout: Layout, colour: Colour, out: &mut [u8]) {
    let (w, h) = (image.width as usize, image.height as usize);
    let order = channels(colour);
    match (layout, colour) {
        (Layout::Nhwc, Colour::Rgb) => {
            for y in 0..h {
                out[y * w * 3..(y + 1) * w * 3].copy_from_slice(image.row(y));
            }
        }
        (Layout::Nhwc, Colour::Bgr) => {
            for y in 0..h {
                let dst = &mut out[y * w * 3..(y + 1) * w * 3];
                for (d, px) in dst.chunks_exact_mut(3).zip(image.row(y).chunks_exact(3)) {
                    d.copy_from_slice(&[px[2], px[1], px[0]]);
                }
            }
        }
        (Layout::Nchw, _) => {
            let plane = w * h;
            for y in 0..h {
                for (x, px) in image.row(y).chunks_exact(3).enumerate() {
                    for (c, &src) in order.iter().enumerate() {
                        out[c * plane + y * w + x] = px[src];
                    }
                }
            }
        }
    }
}

/// Fills a float tensor with (pixel - mean) / std, mean and std given in
/// the model's channel order.
pub fn fill_f32(image: &Image, spec: &InputSpec, out: &mut [f32]) {
    let (w, h) = (image.width as usize, image.height as usize);
    let order = channels(spec.colour);
    let inv: [f32; 3] = std::array::from_fn(|c| 1.0 / spec.std[c]);
    let plane = w * h;
    for y in 0..h {
        for (x, px) in image.row(y).chunks_exact(3).enumerate() {
            for (c, &src) in order.iter().enumerate() {
                let v = (f32::from(px[src]) - spec.mean[c]) * inv[c];
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
        fill_u8(&image(), Layout::Nhwc, Colour::Rgb, &mut out);
        assert_eq!(&out[..9], &[0, 100, 200, 1, 101, 200, 2, 102, 200]);
        assert_eq!(&out[9..], &[10, 100, 201, 11, 101, 201, 12, 102, 201]);
    }

    #[test]
    fn nchw_u8_is_planar() {
        let mut out = vec![0u8; 18];
        fill_u8(&image(), Layout::Nchw, Colour::Rgb, &mut out);
        assert_eq!(&out[..6], &[0, 1, 2, 10, 11, 12]);
        assert_eq!(&out[6..12], &[100, 101, 102, 100, 101, 102]);
        assert_eq!(&out[12..], &[200, 200, 200, 201, 201, 201]);
    }

    #[test]
    fn bgr_swaps_channels_in_both_layouts() {
        let mut out = vec![0u8; 18];
        fill_u8(&image(), Layout::Nhwc, Colour::Bgr, &mut out);
        assert_eq!(&out[..6], &[200, 100, 0, 200, 101, 1]);
        fill_u8(&image(), Layout::Nchw, Colour::Bgr, &mut out);
        assert_eq!(&out[..6], &[200, 200, 200, 201, 201, 201]);
        assert_eq!(&out[12..], &[0, 1, 2, 10, 11, 12]);
    }

    #[test]
    fn float_normalises_per_channel() {
        let spec = InputSpec {
            name: "x".into(),
            width: 3,
            height: 2,
            layout: Layout::Nchw,
            dtype: DType::F32,
            colour: Colour::Rgb,
            resize: ResizeMode::Stretch,
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
