//! The YAML configuration: its shape (documented on each field), loading with
//! `${VAR}` expansion, and validation that reports every problem as
//! `FILE:LINE:COL: message`.

mod locate;
mod settings;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use locate::{Locator, Pos};
pub use settings::{
    HttpSettings, ModelSettings, SettingsError, StreamSettings, cores, default_min_score,
};

pub use crate::inference::{Colour, DType, Layout, ResizeMode};
use crate::source::{SourceOptions, SourceSpec};

/// Where `visiond run` looks when no `-c` is given.
pub const DEFAULT_PATH: &str = "/etc/visiond/visiond.yaml";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This device's name in topics; default: the host name.
    #[serde(default)]
    pub node: Option<String>,
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
    /// The ONNX Runtime shared library; default: the one the set-up installed.
    #[serde(default)]
    pub onnxruntime: Option<PathBuf>,
    /// `/healthz` and `/metrics`; off unless `listen` is given.
    #[serde(default)]
    pub http: Option<HttpConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// host:port, e.g. 127.0.0.1:9464.
    pub listen: String,
    /// Seconds a stream may be starting or reconnecting before /healthz
    /// says 503 (default 30).
    #[serde(default = "default_grace")]
    pub grace: u64,
}

fn default_grace() -> u64 {
    30
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]`.
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// Default: `visiond-<node>`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (first line), e.g. a systemd credential.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// mqtts://: the CA that signed the broker's certificate (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// mqtts://: a client certificate and its key (PEM), for brokers that ask.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// First level of every topic.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// QoS of `detections` messages (0 or 1).
    #[serde(default)]
    pub qos: u8,
    /// Folder where QoS 1 messages wait while the broker is unreachable
    /// (kept across restarts); without it they wait in memory.
    #[serde(default)]
    pub spool: Option<PathBuf>,
    /// The spool's bound in MiB: beyond it the oldest messages are dropped.
    #[serde(default = "default_spool_max_mb")]
    pub spool_max_mb: u64,
    /// Seconds between MQTT keep-alive pings.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u64,
    /// MQTT protocol version: `3.1.1` or `5`.
    #[serde(default = "default_protocol", deserialize_with = "text_or_number")]
    pub protocol: String,
    /// MQTT 5: seconds after which the broker discards an undelivered
    /// detections message (0: never).
    #[serde(default = "default_expiry")]
    pub expiry: u64,
}

fn default_spool_max_mb() -> u64 {
    64
}
fn default_protocol() -> String {
    "3.1.1".into()
}
fn default_expiry() -> u64 {
    300
}

/// `protocol: 5` is a number in YAML, `protocol: 3.1.1` a string.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::Deserialize;
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected 3.1.1 or 5, found {other:?}"
        ))),
    }
}

fn default_mqtt_url() -> String {
    "mqtt://127.0.0.1:1883".into()
}
fn default_prefix() -> String {
    "visiond".into()
}
fn default_keep_alive() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detection,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
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
    /// Detection: IoU above which overlapping boxes of a class are merged (default 0.5).
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
}

impl ModelConfig {
    pub fn top_k(&self) -> usize {
        self.top_k.unwrap_or(5)
    }

    pub fn iou(&self) -> f32 {
        self.iou.unwrap_or(0.5)
    }
}

/// The input side of a model description. Fields the model declares
/// (shape, type) are checked against it; the rest is applied.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// For models whose spatial size is dynamic.
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub layout: Option<Layout>,
    #[serde(default)]
    pub dtype: Option<DType>,
    /// rgb (default) or bgr.
    #[serde(default, alias = "color")]
    pub colour: Option<Colour>,
    /// float inputs: value = (pixel - mean) / std per channel, pixel in 0..255.
    #[serde(default)]
    pub mean: Option<[f32; 3]>,
    #[serde(default)]
    pub std: Option<[f32; 3]>,
    /// stretch (default), letterbox or centre-crop.
    #[serde(default)]
    pub resize: Option<ResizeMode>,
}

impl InputConfig {
    fn or(self, base: InputConfig) -> InputConfig {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    /// Raw SSD head: per-class scores and decoded boxes; NMS in visiond.
    Ssd,
    /// TensorFlow Object Detection API layout: boxes, classes, scores, count.
    SsdPostprocessed,
    /// Probabilities or logits per class.
    Classification,
}

/// The output side of a model description.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(default)]
    pub decoder: Option<DecoderKind>,
    /// Output names; inferred when absent.
    #[serde(default)]
    pub scores: Option<String>,
    #[serde(default)]
    pub boxes: Option<String>,
    #[serde(default)]
    pub classes: Option<String>,
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
    fn or(self, base: OutputConfig) -> OutputConfig {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

/// A model description file (`description:`): a model entry without
/// `name` and `path`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDescription {
    #[serde(default)]
    pub task: Option<Task>,
    #[serde(default)]
    pub labels: Option<PathBuf>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub iou: Option<f32>,
    #[serde(default)]
    pub input: InputConfig,
    #[serde(default)]
    pub output: OutputConfig,
}

/// Merges a description file into a model entry; the entry wins.
fn describe_model(m: &mut ModelConfig) -> Result<(), String> {
    let Some(file) = &m.description else {
        return Ok(());
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("model {:?}: description {}: {e}", m.name, file.display()))?;
    let d: ModelDescription = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        format!(
            "model {:?}: description {}{at}: {}",
            m.name,
            file.display(),
            clean_serde_message(&e.to_string())
        )
    })?;
    let dir = file.parent().unwrap_or(Path::new("."));
    m.task = m.task.or(d.task);
    m.labels = m.labels.take().or_else(|| d.labels.map(|l| dir.join(l)));
    m.top_k = m.top_k.or(d.top_k);
    m.iou = m.iou.or(d.iou);
    m.input = std::mem::take(&mut m.input).or(d.input);
    m.output = std::mem::take(&mut m.output).or(d.output);
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// `[A-Za-z0-9_-]+`, unique; used in topics.
    pub name: String,
    /// `rtsp://…`, `file://…`, `v4l2:///dev/videoN`, `test://`, or `gst:<launch>`.
    #[serde(default)]
    pub source: Option<String>,
    /// A GStreamer launch fragment that ends in raw video (instead of `source`).
    #[serde(default)]
    pub gst: Option<String>,
    /// Name of an entry in `models`.
    pub model: String,
    /// Analysed frames per second at most, in stream time; absent: every frame.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Objects and classes scoring below this are not published
    /// (default 0.5 for detection, 0 for classification).
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Publish only these labels; absent: all.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// `file://` only: pace the file like a camera instead of as fast as
    /// the analysis goes.
    #[serde(default)]
    pub realtime: bool,
    /// Source options: `decoder_threads`; rtsp `transport`, `latency_ms`;
    /// v4l2 `width`, `height`, `framerate`, `format`.
    #[serde(default)]
    pub options: SourceOptions,
    /// Detection: publish at most this many objects per frame, best first.
    #[serde(default)]
    pub max_objects: Option<usize>,
    /// `file://` only: start again at the end instead of stopping.
    #[serde(default, rename = "loop")]
    pub looping: bool,
}

impl StreamConfig {
    /// The source as written (`gst:` fragments prefixed), for parsing.
    pub fn source_text(&self) -> String {
        match (&self.source, &self.gst) {
            (Some(s), _) => s.clone(),
            (None, Some(g)) => format!("gst:{g}"),
            (None, None) => String::new(),
        }
    }

    pub fn source_spec(&self) -> Result<SourceSpec, String> {
        SourceSpec::parse(&self.source_text())
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

/// A loaded, validated configuration with everything resolved: node name,
/// client id, absolute paths. `secrets` holds the values that must never be
/// logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub file: PathBuf,
    pub config: Config,
    pub node: String,
    pub client_id: String,
    pub secrets: Vec<String>,
}

impl Loaded {
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.config.models.iter().find(|m| m.name == name)
    }
}

pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(file, &text, |k| std::env::var(k).ok())
}

/// Parses and validates `text` as if read from `file`; `env` looks up `${VAR}`s.
pub fn parse(
    file: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let problem = |pos: Pos, message: String| Problem {
        file: file.to_path_buf(),
        pos,
        message,
    };
    let (text, mut secrets, env_problems) = expand_env(text, env);
    if !env_problems.is_empty() {
        return Err(ConfigError::Invalid {
            problems: env_problems
                .into_iter()
                .map(|(pos, m)| problem(pos, m))
                .collect(),
        });
    }
    // Every unknown key at once, each with a suggestion; serde stops at the first.
    let unknown: Vec<Problem> = unknown_keys(&Locator::new(&text))
        .into_iter()
        .map(|(pos, m)| problem(pos, m))
        .collect();
    let parsed: Result<Config, _> = serde_yaml::from_str(&text);
    let mut config = match parsed {
        Ok(c) if unknown.is_empty() => c,
        Ok(_) => return Err(ConfigError::Invalid { problems: unknown }),
        Err(e) => {
            let message = clean_serde_message(&e.to_string());
            let mut problems = unknown;
            if problems.is_empty() || !message.contains("unknown field") {
                let pos = e
                    .location()
                    .map(|l| Pos {
                        line: l.line(),
                        col: l.column(),
                    })
                    .unwrap_or(Pos { line: 1, col: 1 });
                problems.push(problem(pos, message));
            }
            problems.sort_by_key(|p| (p.pos.line, p.pos.col));
            return Err(ConfigError::Invalid { problems });
        }
    };

    let base = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut description_problems = Vec::new();
    for (i, m) in config.models.iter_mut().enumerate() {
        m.path = base.join(&m.path);
        if let Some(l) = &mut m.labels {
            *l = base.join(&*l);
        }
        if let Some(d) = &mut m.description {
            *d = base.join(&*d);
        }
        if let Err(e) = describe_model(m) {
            description_problems.push((format!("models[{i}].description"), e));
        }
    }
    if let Some(p) = &mut config.onnxruntime {
        *p = base.join(&*p);
    }
    if let Some(p) = &mut config.mqtt.spool {
        *p = base.join(&*p);
    }
    for f in [
        &mut config.mqtt.ca_file,
        &mut config.mqtt.cert_file,
        &mut config.mqtt.key_file,
    ]
    .into_iter()
    .flatten()
    {
        *f = base.join(&*f);
    }
    if let Some(f) = &mut config.mqtt.password_file {
        *f = base.join(&*f);
        match std::fs::read_to_string(&*f) {
            Ok(text) if config.mqtt.password.is_none() => {
                config.mqtt.password = Some(text.lines().next().unwrap_or("").to_string());
            }
            Ok(_) => description_problems.push((
                "mqtt.password_file".into(),
                "give password or password_file, not both".into(),
            )),
            Err(e) => description_problems.push((
                "mqtt.password_file".into(),
                format!("cannot read {}: {e}", f.display()),
            )),
        }
    }

    let locator = Locator::new(&text);
    let problems: Vec<Problem> = description_problems
        .into_iter()
        .chain(validate(&config))
        .map(|(path, m)| problem(locator.nearest(&path), m))
        .collect();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid { problems });
    }

    if let Some(p) = &config.mqtt.password {
        secrets.push(p.clone());
    }
    for s in &config.streams {
        if let Ok(url) = url::Url::parse(&s.source_text())
            && let Some(p) = url.password()
        {
            secrets.push(p.to_string());
        }
    }
    secrets.retain(|s| !s.is_empty());
    let node = config
        .node
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let client_id = config
        .mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("visiond-{node}"));
    Ok(Loaded {
        file: file.to_path_buf(),
        config,
        node,
        client_id,
        secrets,
    })
}

/// The keys each mapping of the config takes, by path (`[]`: any item).
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &["node", "mqtt", "models", "streams", "onnxruntime", "http"],
    ),
    (
        "mqtt",
        &[
            "url",
            "client_id",
            "username",
            "password",
            "password_file",
            "ca_file",
            "cert_file",
            "key_file",
            "prefix",
            "qos",
            "spool",
            "spool_max_mb",
            "keep_alive",
            "protocol",
            "expiry",
        ],
    ),
    ("http", &["listen", "grace"]),
    (
        "models[]",
        &[
            "name",
            "path",
            "task",
            "labels",
            "workers",
            "threads",
            "batch",
            "top_k",
            "iou",
            "description",
            "input",
            "output",
            "providers",
        ],
    ),
    (
        "models[].input",
        &[
            "width", "height", "layout", "dtype", "colour", "color", "mean", "std", "resize",
        ],
    ),
    (
        "models[].output",
        &[
            "decoder",
            "scores",
            "boxes",
            "classes",
            "count",
            "logits",
            "scale",
            "class_offset",
        ],
    ),
    (
        "streams[]",
        &[
            "name",
            "source",
            "gst",
            "model",
            "fps",
            "min_score",
            "labels",
            "max_objects",
            "options",
            "realtime",
            "loop",
        ],
    ),
    (
        "streams[].options",
        &[
            "transport",
            "latency_ms",
            "decoder_threads",
            "width",
            "height",
            "framerate",
            "format",
        ],
    ),
];

/// Keys no mapping of the config takes, with the closest known one.
fn unknown_keys(locator: &Locator) -> Vec<(Pos, String)> {
    let mut problems = Vec::new();
    for (parent, key, pos) in locator.keys() {
        let pattern = strip_indices(parent);
        let Some((_, known)) = KNOWN_KEYS.iter().find(|(p, _)| *p == pattern) else {
            continue;
        };
        if known.contains(&key.as_str()) {
            continue;
        }
        let place = if parent.is_empty() {
            "the top level".to_string()
        } else {
            parent.clone()
        };
        let closest = known
            .iter()
            .map(|k| (strsim::jaro_winkler(k, key), *k))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score > 0.8);
        let message = match closest {
            Some((_, k)) => format!("unknown key `{key}` in {place}; did you mean `{k}`?"),
            None => format!(
                "unknown key `{key}` in {place}; known: {}",
                known.join(", ")
            ),
        };
        problems.push((*pos, message));
    }
    problems
}

/// `streams[3].options` -> `streams[].options`.
fn strip_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// serde_yaml appends " at line L column C" to its messages; the position is
/// printed in front already.
fn clean_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Replaces every `${VAR}`; returns the text, the substituted values (they
/// may be secrets) and the undefined variables with their positions.
fn expand_env(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> (String, Vec<String>, Vec<(Pos, String)>) {
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 1;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            col += rest[..start].chars().count();
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            match env(name) {
                Some(v) => {
                    out.push_str(&v);
                    values.push(v);
                }
                None => problems.push((
                    Pos { line: n + 1, col },
                    format!("environment variable {name} is not set"),
                )),
            }
            col += name.chars().count() + 3;
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    (out, values, problems)
}

/// Checks what serde cannot: names, references, ranges, URIs, files.
/// Returns (YAML path, message) pairs.
fn validate(config: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(node) = &config.node
        && !valid_name(node)
    {
        problems.push((
            "node".into(),
            format!("node {node:?} must match [A-Za-z0-9_-]+ (it is used in topics)"),
        ));
    }
    match url::Url::parse(&config.mqtt.url) {
        Ok(u) if u.scheme() == "mqtt" && u.host_str().is_some() => {}
        Ok(u) if u.scheme() == "mqtts" && u.host_str().is_some() => {
            if config.mqtt.ca_file.is_none() {
                problems.push((
                    "mqtt.url".into(),
                    "mqtts:// needs ca_file, the CA that signed the broker's certificate".into(),
                ));
            }
        }
        _ => problems.push((
            "mqtt.url".into(),
            format!(
                "{:?} is not an mqtt://host[:port] URL",
                crate::redact::url(&config.mqtt.url)
            ),
        )),
    }
    for (key, file) in [
        ("ca_file", &config.mqtt.ca_file),
        ("cert_file", &config.mqtt.cert_file),
        ("key_file", &config.mqtt.key_file),
    ] {
        if let Some(f) = file
            && !f.is_file()
        {
            problems.push((format!("mqtt.{key}"), format!("{} not found", f.display())));
        }
    }
    if config.mqtt.cert_file.is_some() != config.mqtt.key_file.is_some() {
        problems.push((
            "mqtt.cert_file".into(),
            "cert_file and key_file go together".into(),
        ));
    }
    if let Some(h) = &config.http
        && h.listen.parse::<std::net::SocketAddr>().is_err()
    {
        problems.push((
            "http.listen".into(),
            format!("{:?} is not host:port, e.g. 127.0.0.1:9464", h.listen),
        ));
    }
    if config.mqtt.qos > 1 {
        problems.push(("mqtt.qos".into(), "qos must be 0 or 1".into()));
    }
    if !["3.1.1", "5"].contains(&config.mqtt.protocol.as_str()) {
        problems.push((
            "mqtt.protocol".into(),
            format!(
                "protocol must be 3.1.1 or 5, not {:?}",
                config.mqtt.protocol
            ),
        ));
    }
    if config.mqtt.spool_max_mb == 0 {
        problems.push((
            "mqtt.spool_max_mb".into(),
            "the spool needs at least 1 MiB".into(),
        ));
    }
    if config.mqtt.prefix.is_empty() || config.mqtt.prefix.contains(['#', '+']) {
        problems.push((
            "mqtt.prefix".into(),
            "prefix must be non-empty and contain no MQTT wildcard".into(),
        ));
    }

    let mut model_names = HashSet::new();
    for (i, m) in config.models.iter().enumerate() {
        let at = |f: &str| format!("models[{i}].{f}");
        if !model_names.insert(m.name.as_str()) {
            problems.push((at("name"), format!("duplicate model name {:?}", m.name)));
        }
        if !m.path.is_file() {
            problems.push((
                at("path"),
                format!("model {:?}: file {} not found", m.name, m.path.display()),
            ));
        }
        if let Some(l) = &m.labels
            && !l.is_file()
        {
            problems.push((
                at("labels"),
                format!("model {:?}: labels file {} not found", m.name, l.display()),
            ));
        }
        if m.threads == Some(0) {
            problems.push((at("threads"), "threads must be at least 1".into()));
        }
        if m.batch == Some(0) {
            problems.push((at("batch"), "batch must be at least 1".into()));
        }
        if m.workers == Some(0) {
            problems.push((at("workers"), "workers must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&m.iou()) {
            problems.push((at("iou"), "iou must be between 0 and 1".into()));
        }
    }

    let mut stream_names = HashSet::new();
    for (i, s) in config.streams.iter().enumerate() {
        let at = |f: &str| format!("streams[{i}].{f}");
        if !valid_name(&s.name) {
            problems.push((
                at("name"),
                format!("stream name {:?} must match [A-Za-z0-9_-]+", s.name),
            ));
        }
        if !stream_names.insert(s.name.as_str()) {
            problems.push((at("name"), format!("duplicate stream name {:?}", s.name)));
        }
        match (&s.source, &s.gst) {
            (Some(_), Some(_)) => problems.push((
                at("gst"),
                format!("stream {:?}: give either source or gst, not both", s.name),
            )),
            (None, None) => problems.push((
                format!("streams[{i}]"),
                format!("stream {:?}: source is missing", s.name),
            )),
            _ => {
                if let Err(e) = s.source_spec() {
                    let field = if s.source.is_some() { "source" } else { "gst" };
                    problems.push((at(field), format!("stream {:?}: {e}", s.name)));
                }
            }
        }
        if !model_names.contains(s.model.as_str()) {
            problems.push((
                at("model"),
                format!(
                    "stream {:?}: no model named {:?} in models",
                    s.name, s.model
                ),
            ));
        }
        if let Some(fps) = s.fps
            && !(fps > 0.0 && fps.is_finite())
        {
            problems.push((at("fps"), "fps must be a positive number".into()));
        }
        if s.max_objects == Some(0) {
            problems.push((at("max_objects"), "max_objects must be at least 1".into()));
        }
        if let Some(ms) = s.min_score
            && !(0.0..=1.0).contains(&ms)
        {
            problems.push((at("min_score"), "min_score must be between 0 and 1".into()));
        }
        let is_file = matches!(s.source_spec(), Ok(SourceSpec::File { .. }));
        let spec = s.source_spec();
        if s.options.has_rtsp() && !matches!(spec, Ok(SourceSpec::Rtsp { .. })) {
            problems.push((
                at("options"),
                "transport and latency_ms apply to rtsp:// sources only".into(),
            ));
        }
        if s.options.has_capture() && !matches!(spec, Ok(SourceSpec::V4l2 { .. })) {
            problems.push((
                at("options"),
                "width, height, framerate and format apply to v4l2:// sources only".into(),
            ));
        }
        if s.realtime && !is_file {
            problems.push((
                at("realtime"),
                "realtime applies to file:// sources only".into(),
            ));
        }
        if s.looping && !is_file {
            problems.push((at("loop"), "loop applies to file:// sources only".into()));
        }
    }
    problems
}

pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "PW").then(|| "s3cret".to_string())
    }

    fn write_models(dir: &Path) {
        std::fs::write(dir.join("m.onnx"), b"x").unwrap();
        std::fs::write(dir.join("l.txt"), b"a\n").unwrap();
    }

    #[test]
    fn resolves_defaults_paths_and_secrets() {
        let dir = tempfile::tempdir().unwrap();
        write_models(dir.path());
        let text = "node: edge-1\nmqtt:\n  password: ${PW}\nmodels:\n  - name: m\n    path: m.onnx\n    labels: l.txt\nstreams:\n  - name: a\n    source: rtsp://u:pw2@10.0.0.5/s\n    model: m\n";
        let l = parse(&dir.path().join("c.yaml"), text, env).unwrap();
        assert_eq!(l.node, "edge-1");
        assert_eq!(l.client_id, "visiond-edge-1");
        assert_eq!(l.config.mqtt.url, "mqtt://127.0.0.1:1883");
        assert_eq!(l.config.mqtt.password.as_deref(), Some("s3cret"));
        assert_eq!(l.config.models[0].path, dir.path().join("m.onnx"));
        assert!(l.secrets.contains(&"s3cret".to_string()));
        assert!(l.secrets.contains(&"pw2".to_string()));
    }

    #[test]
    fn every_unknown_key_is_reported_with_a_suggestion() {
        let text = "mqtt:\n  url: mqtt://h\n  prefx: x\nstreams:\n  - name: a\n    souce: test://\n    model: m\n    options: {latency: 5}\nmodles: []\n";
        let err = parse(Path::new("/c.yaml"), text, env)
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            vec![
                "/c.yaml:3:3: unknown key `prefx` in mqtt; did you mean `prefix`?",
                "/c.yaml:6:5: unknown key `souce` in streams[0]; did you mean `source`?",
                "/c.yaml:8:15: unknown key `latency` in streams[0].options; did you mean `latency_ms`?",
                "/c.yaml:9:1: unknown key `modles` in the top level; did you mean `models`?",
            ],
            "{err}"
        );
    }

    #[test]
    fn the_known_keys_are_the_ones_serde_takes() {
        let dir = tempfile::tempdir().unwrap();
        write_models(dir.path());
        // Nearly every key of KNOWN_KEYS at once: serde must accept them all.
        let text = "node: n\nonnxruntime: x.so\nhttp: {listen: \"127.0.0.1:1\", grace: 1}\nmqtt: {url: \"mqtt://h\", client_id: c, username: u, password: p, prefix: p, qos: 0, spool: s, spool_max_mb: 1, keep_alive: 5, protocol: 5, expiry: 9}\nmodels:\n  - {name: m, path: m.onnx, task: detection, labels: l.txt, workers: 1, threads: 1, batch: 1, top_k: 1, iou: 0.5, providers: [cpu],\n     input: {width: 1, height: 1, layout: nhwc, dtype: uint8, colour: rgb, mean: [0, 0, 0], std: [1, 1, 1], resize: stretch},\n     output: {decoder: ssd, scores: s, boxes: b, classes: c, count: n, logits: false, scale: 1.0, class_offset: 1}}\nstreams:\n  - {name: a, source: \"rtsp://h/s\", model: m, fps: 1, min_score: 0.5, labels: [x], max_objects: 1, options: {transport: tcp, latency_ms: 1}, realtime: false, loop: false}\n";
        let r = parse(&dir.path().join("c.yaml"), text, env);
        assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    #[test]
    fn every_semantic_problem_is_reported_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        write_models(dir.path());
        let text = "mqtt: {}\nmodels:\n  - name: m\n    path: nope.onnx\nstreams:\n  - name: a\n    source: test://\n    model: m\n  - name: a\n    source: ftp://x\n    model: z\n    fps: 0\n";
        let f = dir.path().join("c.yaml");
        let ConfigError::Invalid { problems } = parse(&f, text, env).unwrap_err() else {
            panic!("expected problems")
        };
        let got: Vec<(usize, usize)> = problems.iter().map(|p| (p.pos.line, p.pos.col)).collect();
        assert_eq!(got, vec![(4, 11), (9, 11), (10, 13), (11, 12), (12, 10)]);
        assert!(problems[0].message.contains("nope.onnx"));
        assert!(problems[1].message.contains("duplicate stream name"));
        assert!(problems[3].message.contains("no model named \"z\""));
    }

    #[test]
    fn source_options_belong_to_their_source_kind() {
        let dir = tempfile::tempdir().unwrap();
        write_models(dir.path());
        let text = "mqtt: {}\nmodels:\n  - name: m\n    path: m.onnx\nstreams:\n  - name: a\n    source: test://\n    model: m\n    options: {transport: udp}\n  - name: b\n    source: rtsp://h/s\n    model: m\n    options: {format: mjpeg}\n  - name: c\n    source: v4l2:///dev/video0\n    model: m\n    options: {width: 640, height: 480, framerate: 15, format: yuyv}\n  - name: d\n    source: rtsp://h/s\n    model: m\n    options: {transport: udp, latency_ms: 50}\n";
        let ConfigError::Invalid { problems } =
            parse(&dir.path().join("c.yaml"), text, env).unwrap_err()
        else {
            panic!("expected problems")
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!((problems[0].pos.line, problems[0].pos.col), (9, 15));
        assert!(problems[0].message.contains("rtsp:// sources only"));
        assert_eq!(problems[1].pos.line, 13);
        assert!(problems[1].message.contains("v4l2:// sources only"));
        let caps = crate::source::SourceOptions {
            width: Some(640),
            format: Some(crate::source::CaptureFormat::Mjpeg),
            ..Default::default()
        };
        gstreamer::init().unwrap();
        assert_eq!(
            caps.capture_caps().to_string(),
            "image/jpeg, width=(int)640"
        );
    }

    #[test]
    fn the_password_can_come_from_a_file_and_stays_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "from-file-123\nignored\n").unwrap();
        let l = parse(
            &dir.path().join("c.yaml"),
            "mqtt:\n  password_file: pw\n",
            env,
        )
        .unwrap();
        assert_eq!(l.config.mqtt.password.as_deref(), Some("from-file-123"));
        assert!(l.secrets.contains(&"from-file-123".to_string()));
        let err = parse(
            &dir.path().join("c.yaml"),
            "mqtt:\n  password_file: nope\n",
            env,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("c.yaml:2:18: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn undefined_variable_is_an_error_with_position() {
        let err = parse(Path::new("c.yaml"), "mqtt:\n  password: ${NOPE}\n", env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.yaml:2:13: environment variable NOPE is not set"
        );
    }
}
