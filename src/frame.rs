//! Plain data types at the seams between stages: what a source hands to
//! inference (a [`Frame`]) and what inference hands to publishing (an
//! [`Analysis`]). None of them knows about GStreamer, ONNX Runtime or MQTT.

use std::sync::Arc;
use std::time::SystemTime;

/// Packed RGB pixels of one frame at the model's input size. Rows may be
/// padded: `stride` is the byte distance between rows (GStreamer aligns RGB
/// rows to 4 bytes).
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    /// The pixel memory: a mapped GStreamer buffer in the daemon (no copy),
    /// a `Vec<u8>` in tests.
    pub data: Box<dyn AsRef<[u8]> + Send>,
}

impl Image {
    pub fn from_vec(width: u32, height: u32, stride: usize, data: Vec<u8>) -> Self {
        Self {
            width,
            height,
            stride,
            data: Box::new(data),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        (*self.data).as_ref()
    }

    /// The `y`-th row without its padding.
    pub fn row(&self, y: usize) -> &[u8] {
        let start = y * self.stride;
        &self.bytes()[start..start + self.width as usize * 3]
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("stride", &self.stride)
            .finish()
    }
}

/// Where a frame came from and when; travels with it to the published message.
#[derive(Debug, Clone)]
pub struct FrameMeta {
    pub stream: Arc<str>,
    /// New for every (re)connection of the source.
    pub session: Arc<str>,
    /// Analysed-frame counter within the session, from 0.
    pub seq: u64,
    pub pts_ns: Option<u64>,
    /// Wall clock when the frame left the source.
    pub captured_at: SystemTime,
    /// The source's frame size (before scaling to the model's input).
    pub source_width: u32,
    pub source_height: u32,
}

/// One decoded frame on its way to inference.
#[derive(Debug)]
pub struct Frame {
    pub meta: FrameMeta,
    pub image: Image,
}

/// A box normalised to the source frame, origin top-left.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Detection {
    pub label: Arc<str>,
    pub label_id: u32,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BBox,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Class {
    pub label: Arc<str>,
    pub label_id: u32,
    pub score: f32,
}

/// What a model says about one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Detections(Vec<Detection>),
    Classes(Vec<Class>),
}

/// The result of one analysed frame: the seam between inference and publishing.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub meta: FrameMeta,
    pub model: Arc<str>,
    pub output: Output,
    /// Time spent in the model (pre-processing, run, decoding).
    pub inference_ms: f32,
}
