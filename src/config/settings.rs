//! Settings resolved once: what the config leaves out gets its default
//! here, in one `Default` impl per part, and the daemon, the sources and the
//! inference stage read the resolved values instead of re-deriving them
//! (the config types keep what the user wrote, for validation and reload
//! comparison).

use std::sync::Arc;
use std::time::Duration;

use super::{ClassifyRule, HttpConfig, Loaded, ModelConfig, Motion, StreamConfig, Task, Track};
use crate::cascade::{Limits, RuleSpec};
use crate::inference::{Declared, Filter, ModelSettings, ModelSpec};
use crate::motion::stage::MotionSpec;
use crate::publish::{MqttSettings, Protocol, TlsFiles, Topics};
use crate::source::{SourceOptions, SourceSpec};
use crate::tracking::{TrackSettings, TrackSpec};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("stream {stream:?}: {message}")]
    Source { stream: String, message: String },
}

impl ClassifyRule {
    /// The rule as the cascade takes it, its limits resolved.
    pub fn spec(&self) -> RuleSpec {
        let d = Limits::default();
        RuleSpec {
            labels: self.labels.clone(),
            model: self.model.clone(),
            classes: self.classes.clone(),
            group: self.group,
            limits: Limits {
                min_size: self.min_size.unwrap_or(d.min_size),
                max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
                min_score: self.min_score.unwrap_or(d.min_score),
            },
        }
    }
}

impl Loaded {
    /// Every model entry as the inference stage takes it.
    pub fn model_specs(&self) -> Vec<ModelSpec> {
        self.config.models.iter().map(ModelConfig::spec).collect()
    }
}

impl ModelConfig {
    /// The inference stage's view of this entry: its files, what the user
    /// declared about the model, and its settings with every default applied.
    pub fn spec(&self) -> ModelSpec {
        let (cfg, i, o) = (self, &self.input, &self.output);
        ModelSpec {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
            labels: cfg.labels.clone(),
            providers: cfg.providers.clone(),
            declared: Declared {
                task: cfg.task,
                batch: cfg.batch,
                width: i.width,
                height: i.height,
                layout: i.layout,
                dtype: i.dtype,
                normalised: i.mean.is_some() || i.std.is_some(),
                decoder: o.decoder,
                scores: o.scores.clone(),
                boxes: o.boxes.clone(),
                classes: o.classes.clone(),
                count: o.count.clone(),
            },
            settings: self.settings(),
        }
    }

    /// This entry's settings: what it leaves out gets the default.
    pub fn settings(&self) -> ModelSettings {
        let d = ModelSettings::default();
        let (cfg, i, o) = (self, &self.input, &self.output);
        ModelSettings {
            workers: cfg.workers.unwrap_or(d.workers),
            threads: cfg.threads.unwrap_or(d.threads),
            batch: cfg.batch.unwrap_or(d.batch).max(1),
            top_k: cfg.top_k.unwrap_or(d.top_k),
            iou: cfg.iou.unwrap_or(d.iou),
            class_offset: o.class_offset.unwrap_or(d.class_offset),
            logits: o.logits.unwrap_or(d.logits),
            scale: o.scale.or(d.scale),
            colour: i.colour.unwrap_or(d.colour),
            resize: i.resize.unwrap_or(d.resize),
            mean: i.mean.unwrap_or(d.mean),
            std: i.std.unwrap_or(d.std),
        }
    }
}

/// Below this score nothing is published, by the model's task: detectors
/// report many weak boxes, a classifier's top-k is wanted as it is.
pub fn default_min_score(task: Task) -> f32 {
    match task {
        Task::Detection => 0.5,
        Task::Classification => 0.0,
    }
}

/// A stream entry with every default applied; the model's task decides
/// some (it may come from the model itself, so streams resolve after their
/// model has loaded).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    pub name: String,
    pub spec: SourceSpec,
    pub model: String,
    /// `None`: every frame.
    pub fps: Option<f64>,
    pub min_score: f32,
    /// `None`: every label.
    pub labels: Option<Vec<String>>,
    pub max_objects: Option<usize>,
    pub realtime: bool,
    pub looping: bool,
    pub options: SourceOptions,
    /// Detection with `track` on: how its objects are tracked.
    pub track: Option<TrackSpec>,
    /// The `classify` rules (only with `track`).
    pub classify: Vec<RuleSpec>,
    /// Snapshots and the status page's picture (decoded frames are kept
    /// by reference for them).
    pub snapshots: bool,
    /// Detection with `motion` on: the motion stage.
    pub motion: Option<MotionSpec>,
}

impl StreamSettings {
    pub fn resolve(s: &StreamConfig, task: Task) -> Result<Self, SettingsError> {
        let spec = s.source_spec().map_err(|message| SettingsError::Source {
            stream: s.name.clone(),
            message,
        })?;
        let min_score = s.min_score.unwrap_or_else(|| default_min_score(task));
        let track = (task == Task::Detection && s.track.enabled()).then(|| {
            let mut settings = TrackSettings {
                high_score: min_score,
                ..TrackSettings::default()
            };
            if let Track::Settings(t) = &s.track {
                settings.confirm_s = t.confirm_s.unwrap_or(settings.confirm_s);
                settings.lost_s = t.lost_s.unwrap_or(settings.lost_s);
            }
            TrackSpec {
                settings,
                geometry: s.geometry(),
                min_score,
                labels: s
                    .labels
                    .iter()
                    .flatten()
                    .map(|l| Arc::from(l.as_str()))
                    .collect(),
            }
        });
        Ok(Self {
            name: s.name.clone(),
            spec,
            model: s.model.clone(),
            fps: s.fps,
            min_score,
            track,
            labels: s.labels.clone(),
            max_objects: s.max_objects,
            realtime: s.realtime,
            looping: s.looping,
            options: s.options.clone(),
            snapshots: s.snapshots,
            classify: s.classify.iter().map(ClassifyRule::spec).collect(),
            motion: (task == Task::Detection)
                .then(|| motion_spec(&s.motion))
                .flatten(),
        })
    }

    /// What the inference stage keeps of this stream's results: with
    /// tracking, the weak detections too (they carry objects through frames
    /// where the detector doubts; the tracking stage publishes only those
    /// at `min_score`).
    pub fn filter(&self) -> Filter {
        let decode = match &self.track {
            Some(t) => self.min_score.min(t.settings.low_score),
            None => self.min_score,
        };
        Filter {
            min_score: decode,
            labels: self.labels.clone(),
            max_objects: self.max_objects,
        }
    }
}

/// `motion:` resolved: `None` when off.
fn motion_spec(m: &Motion) -> Option<MotionSpec> {
    let mut spec = MotionSpec::default();
    let c = match m {
        Motion::On(false) => return None,
        Motion::On(true) => return Some(spec),
        Motion::Settings(c) => c,
    };
    let d = &mut spec.detector;
    d.threshold = c.threshold.unwrap_or(d.threshold);
    d.min_area = c.min_area.unwrap_or(d.min_area);
    let g = &mut spec.gate;
    let secs = |v: Option<f64>, default: Duration| {
        v.and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(default)
    };
    g.still_every = secs(c.still_every_s, g.still_every);
    g.full_every = secs(c.full_every_s, g.full_every);
    g.regions.max_regions = c.max_regions.unwrap_or(g.regions.max_regions);
    spec.masks = c.mask.clone();
    Some(spec)
}

/// `http:` resolved; absent from the config means no server.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub listen: String,
    /// How long a stream may be starting or reconnecting before /healthz
    /// says 503.
    pub grace: Duration,
    /// Served beyond loopback without authentication, on purpose.
    pub open: bool,
    /// Who may see the page: names and argon2 hashes.
    pub users: Vec<(String, String)>,
    /// `/metrics`' bearer token.
    pub metrics_token: Option<String>,
    /// HTTPS: the certificate chain and key as read at load.
    pub tls: Option<super::TlsPem>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            grace: Duration::from_secs(30),
            open: false,
            users: Vec::new(),
            metrics_token: None,
            tls: None,
        }
    }
}

impl HttpSettings {
    /// Reachable from other machines (validation has checked `listen`).
    pub fn beyond_loopback(&self) -> bool {
        self.listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback())
    }

    pub fn resolve(http: Option<&HttpConfig>) -> Option<Self> {
        http.map(|h| Self {
            listen: h.listen.clone(),
            grace: Duration::from_secs(h.grace),
            open: h.open,
            users: h
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.clone().unwrap_or_default()))
                .collect(),
            metrics_token: h.metrics_token.clone(),
            tls: h.tls.as_ref().map(|t| t.pem.clone()),
        })
    }
}

/// The broker connection the config asks for: resolved here, once, with
/// its defaults (the port by scheme, a keep-alive of at least 1 s).
pub fn mqtt(c: &Loaded) -> Result<MqttSettings, String> {
    let url = url::Url::parse(&c.config.mqtt.url).map_err(|e| e.to_string())?;
    let host = url
        .host_str()
        .ok_or_else(|| "mqtt.url has no host".to_string())?
        .trim_matches(['[', ']'])
        .to_string();
    let m = &c.config.mqtt;
    let tls = (url.scheme() == "mqtts").then(|| TlsFiles {
        ca: m.ca_file.clone().unwrap_or_default(),
        client: m.cert_file.clone().zip(m.key_file.clone()),
    });
    Ok(MqttSettings {
        host,
        port: url
            .port()
            .unwrap_or(if tls.is_some() { 8883 } else { 1883 }),
        tls,
        client_id: c.client_id.clone(),
        username: c.config.mqtt.username.clone(),
        password: c.config.mqtt.password.clone(),
        keep_alive: Duration::from_secs(c.config.mqtt.keep_alive.max(1)),
        topics: Topics::new(&c.config.mqtt.prefix, &c.node),
        qos: c.config.mqtt.qos,
        node: c.node.clone(),
        protocol: if m.protocol == "5" {
            Protocol::V5
        } else {
            Protocol::V311
        },
        expiry: Duration::from_secs(m.expiry),
        spool: m.spool.clone(),
        spool_max_bytes: usize::try_from(m.spool_max_mb.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{Colour, DType, ResizeMode, cores};

    fn model(yaml: &str) -> ModelConfig {
        serde_yaml::from_str(&format!("{{name: m, path: m.onnx, {yaml}}}")).expect("model entry")
    }

    fn stream(yaml: &str) -> StreamConfig {
        serde_yaml::from_str(&format!(
            "{{name: s, source: \"test://\", model: m, {yaml}}}"
        ))
        .expect("stream entry")
    }

    #[test]
    fn a_bare_model_gets_every_default() {
        let s = model("").settings();
        assert_eq!(s, ModelSettings::default());
        assert_eq!((s.workers, s.threads, s.batch), (cores(), 1, 1));
        assert_eq!((s.top_k, s.iou, s.class_offset), (5, 0.5, 1));
        assert_eq!((s.mean, s.std), ([0.0; 3], [1.0; 3]));
        assert_eq!(s.output_scale(DType::U8), 1.0 / 256.0);
        assert_eq!(s.output_scale(DType::F32), 1.0);
    }

    #[test]
    fn what_the_model_entry_sets_wins() {
        let s = model(
            "workers: 3, threads: 2, batch: 4, top_k: 1, iou: 0.3, input: {colour: bgr, resize: letterbox, mean: [1, 2, 3], std: [4, 5, 6]}, output: {class_offset: 0, logits: true, scale: 0.5}",
        )
        .settings();
        assert_eq!((s.workers, s.threads, s.batch), (3, 2, 4));
        assert_eq!((s.top_k, s.iou, s.class_offset), (1, 0.3, 0));
        assert!(s.logits);
        assert_eq!((s.colour, s.resize), (Colour::Bgr, ResizeMode::Letterbox));
        assert_eq!((s.mean, s.std), ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]));
        assert_eq!(s.output_scale(DType::U8), 0.5);
    }

    #[test]
    fn min_score_defaults_by_task_unless_given() {
        let bare = stream("");
        let det = StreamSettings::resolve(&bare, Task::Detection).expect("resolves");
        let cls = StreamSettings::resolve(&bare, Task::Classification).expect("resolves");
        assert_eq!((det.min_score, cls.min_score), (0.5, 0.0));
        let given = stream("min_score: 0.7, fps: 5, labels: [person], max_objects: 3");
        let s = StreamSettings::resolve(&given, Task::Classification).expect("resolves");
        assert_eq!(s.min_score, 0.7);
        assert_eq!(
            s.filter(),
            Filter {
                min_score: 0.7,
                labels: Some(vec!["person".into()]),
                max_objects: Some(3),
            }
        );
        assert_eq!(s.fps, Some(5.0));
        assert_eq!(s.spec, SourceSpec::parse("test://").expect("parses"));
    }

    #[test]
    fn a_bad_source_is_an_error_not_a_panic() {
        let err = StreamSettings::resolve(
            &serde_yaml::from_str("{name: s, source: \"ftp://x\", model: m}").expect("entry"),
            Task::Detection,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("stream \"s\": "), "{err}");
    }

    #[test]
    fn http_resolves_only_when_configured() {
        assert_eq!(HttpSettings::resolve(None), None);
        let h: HttpConfig = serde_yaml::from_str("{listen: \"127.0.0.1:1\"}").expect("http");
        let s = HttpSettings::resolve(Some(&h)).expect("configured");
        assert_eq!(s.grace, HttpSettings::default().grace);
        assert_eq!(s.listen, "127.0.0.1:1");
    }
}
