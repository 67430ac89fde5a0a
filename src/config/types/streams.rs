//! The streams: sources, models, labels, zones, lines, tracking, rules.

use super::*;

use schemars::JsonSchema;
use serde::Deserialize;

/// One video stream, analysed by one model.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StreamConfig {
    /// `[A-Za-z0-9_-]+`, unique; used in topics.
    pub name: String,
    /// `rtsp://…`, `file://…`, `v4l2:///dev/videoN`, `http(s)://…`,
    /// `test://`, or `gst:<launch>`.
    #[serde(default)]
    pub source: Option<String>,
    /// A GStreamer launch fragment that ends in raw video (instead of `source`).
    #[serde(default)]
    pub gst: Option<String>,
    /// Name of an entry in `models`.
    pub model: String,
    /// Analysed frames per second at most, in stream time (more than 0, at
    /// most 1000); absent: every frame.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Objects and classes scoring below this are not published
    /// (0 to 1; default 0.5 for detection, 0 for classification).
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Publish only these labels (each one of the model's labels); absent: all.
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
    /// Detection: follow objects across frames and publish their lifecycle
    /// on `P/N/S/events` and their counts (default on; `track: false`
    /// turns it off; a mapping sets `confirm_s` and `lost_s`).
    #[serde(default)]
    pub track: Track,
    /// Detection: polygons (normalised x, y, origin top-left) whose objects
    /// are counted and whose entries and exits are events.
    #[serde(default)]
    pub zones: Vec<crate::tracking::Zone>,
    /// Detection: segments whose crossings are counted per direction.
    #[serde(default)]
    pub lines: Vec<crate::tracking::Line>,
    /// Pictures of the stream: snapshots of its objects on
    /// `P/N/S/snapshot/L` and its latest frame on the status page (default
    /// on; `snapshots: false` keeps every picture on the device unmade).
    #[serde(default = "default_snapshots")]
    pub snapshots: bool,
    /// Detection with tracking: name tracked objects more finely with a
    /// classifier run on their crops ("which bird"); each rule's answer is
    /// the object's `sub_label`.
    #[serde(default)]
    pub classify: Vec<ClassifyRule>,
    /// Detection: spend the model only where something moves (default
    /// on; `motion: false` analyses every kept frame whole; a mapping
    /// tunes it). Frames with no motion cost no model call, regions around
    /// motion and moving objects are analysed at the model's own scale,
    /// still objects are checked every `still_every_s`.
    #[serde(default)]
    pub motion: Motion,
}

fn default_snapshots() -> bool {
    true
}

/// One `classify:` rule of a stream.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ClassifyRule {
    /// The detector's labels whose objects are classified, e.g. [bird].
    pub labels: Vec<String>,
    /// A classification model under `models`, e.g. an ImageNet classifier.
    pub model: String,
    /// Only these of the classifier's classes, by name; with `group`, the
    /// two together. Absent: every class.
    #[serde(default)]
    pub classes: Vec<String>,
    /// A named set of ImageNet's classes: birds, dogs, cats, vehicles.
    #[serde(default)]
    pub group: Option<ClassGroup>,
    /// An attempt counts only when its best class (within the subset) has
    /// at least this probability (0 to 1; default 0.4).
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Objects whose box is smaller than this, in source pixels on its
    /// longer side, are never classified (default 64).
    #[serde(default)]
    pub min_size: Option<u32>,
    /// Classifier calls per object at most, over its whole life (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// A stream's `track:` or `motion:`: `true`, `false`, or its settings (on).
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "Switch_{S}")]
pub enum Switch<S> {
    On(bool),
    Settings(S),
}

impl<S> Default for Switch<S> {
    fn default() -> Self {
        Switch::On(true)
    }
}

impl<S> Switch<S> {
    pub fn enabled(&self) -> bool {
        !matches!(self, Switch::On(false))
    }
}

/// `track:` of a stream.
pub type Track = Switch<TrackConfig>;
/// `motion:` of a stream.
pub type Motion = Switch<MotionConfig>;

/// Motion settings a stream may set; absent ones keep their defaults.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MotionConfig {
    /// A pixel moved when it differs from the background by more than this
    /// many grey levels of 255, after contrast normalisation (1 to 255;
    /// default 30). Lower finds fainter motion, and more noise.
    #[serde(default)]
    pub threshold: Option<u8>,
    /// Motion smaller than this many pixels of the motion image (the frame
    /// averaged down to 100 rows: a pixel is 1/100 of the frame's height)
    /// is noise (default 4).
    #[serde(default)]
    pub min_area: Option<u32>,
    /// Seconds (stream time) between checks of still objects (default 5).
    #[serde(default)]
    pub still_every_s: Option<f64>,
    /// Seconds (stream time) between analyses of the whole frame, which
    /// find what appeared without motion (default 30).
    #[serde(default)]
    pub full_every_s: Option<f64>,
    /// Regions per frame at most; more, or regions covering most of the
    /// frame, and the frame is analysed whole (1 to 16; default 4).
    #[serde(default)]
    pub max_regions: Option<usize>,
    /// Polygons (normalised x, y, origin top-left) where motion is
    /// ignored: a tree in the wind, a road beyond the fence. Objects there
    /// are still found by the periodic whole-frame analysis.
    #[serde(default)]
    pub mask: Vec<Vec<[f32; 2]>>,
}

/// Tracking settings a stream may set; the rest are tuned defaults.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TrackConfig {
    /// Seconds (stream time) an object is seen, in at least 2 frames,
    /// before its `new` event (default 0.4).
    #[serde(default)]
    pub confirm_s: Option<f64>,
    /// Seconds (stream time) unseen before its `end` event (default 2).
    #[serde(default)]
    pub lost_s: Option<f64>,
}

// By hand, not untagged: serde's untagged enums buffer their input, which
// hides unknown keys from serde_ignored and says only "did not match".
impl<'de, S: Deserialize<'de>> Deserialize<'de> for Switch<S> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S>(std::marker::PhantomData<S>);
        impl<'de, S: Deserialize<'de>> serde::de::Visitor<'de> for V<S> {
            type Value = Switch<S>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a mapping of settings")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Switch<S>, E> {
                Ok(Switch::On(b))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Switch<S>, A::Error> {
                S::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(Switch::Settings)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
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

    /// Its zones and lines, as the tracker takes them.
    pub fn geometry(&self) -> crate::tracking::Geometry {
        crate::tracking::Geometry {
            zones: self.zones.clone(),
            lines: self.lines.clone(),
        }
    }
}
