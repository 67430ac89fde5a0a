//! Plain data types at the seams between stages: what a source hands to
//! inference (a [`Frame`]) and what inference hands to publishing (an
//! [`Analysis`]). None of them knows about GStreamer, ONNX Runtime or MQTT.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

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

    /// Bytes of one row without its padding.
    pub fn row_len(&self) -> usize {
        self.width as usize * 3
    }

    /// The `y`-th row without its padding; `None` past the last row or the
    /// end of the buffer.
    pub fn row(&self, y: usize) -> Option<&[u8]> {
        if y >= self.height as usize {
            return None;
        }
        let start = y.checked_mul(self.stride)?;
        self.bytes().get(start..start.checked_add(self.row_len())?)
    }

    /// Whether every row lies inside the buffer: the buffer comes from
    /// GStreamer (or a caller) and is not trusted to match the size.
    pub fn check(&self) -> Result<(), FrameError> {
        let row = self.row_len();
        if self.stride < row {
            return Err(FrameError::Stride {
                width: self.width,
                stride: self.stride,
            });
        }
        let needed = match self.height as usize {
            0 => 0,
            h => (h - 1)
                .checked_mul(self.stride)
                .and_then(|n| n.checked_add(row))
                .ok_or(FrameError::TooLarge {
                    width: self.width,
                    height: self.height,
                })?,
        };
        let len = self.bytes().len();
        if len < needed {
            return Err(FrameError::Short {
                width: self.width,
                height: self.height,
                stride: self.stride,
                needed,
                len,
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "a {width}x{height} frame with {stride}-byte rows needs {needed} bytes; the buffer has {len}"
    )]
    Short {
        width: u32,
        height: u32,
        stride: usize,
        needed: usize,
        len: usize,
    },
    #[error("rows of {stride} bytes cannot hold {width} RGB pixels")]
    Stride { width: u32, stride: usize },
    #[error("a {width}x{height} frame is too large to address")]
    TooLarge { width: u32, height: u32 },
    #[error("cannot convert the decoded frame: {0}")]
    Convert(String),
}

/// A region of a frame in its own pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A decoded frame at the source's full size, kept by reference (no copy)
/// so that a snapshot or the status page can convert just what it needs,
/// when it needs it: the cost is paid per picture, not per frame.
pub trait FullFrame: Send + Sync {
    fn width(&self) -> u32;
    fn height(&self) -> u32;
    /// Packed RGB of `crop` (clamped to the frame) scaled to `width` x `height`.
    fn rgb(&self, crop: Crop, width: u32, height: u32) -> Result<Image, FrameError>;
}

/// A shared [`FullFrame`]; travels with a frame's metadata.
#[derive(Clone)]
pub struct FullView(pub Arc<dyn FullFrame>);

impl std::fmt::Debug for FullView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FullView({}x{})", self.0.width(), self.0.height())
    }
}

/// A full frame in packed RGB memory: for tests and benchmarks.
pub struct RgbFull(pub Image);

impl RgbFull {
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Self {
        Self(Image::from_vec(width, height, width as usize * 3, pixels))
    }

    /// Shared, as frames carry it (behind a mutex: `Image` is only `Send`).
    pub fn view(self) -> FullView {
        FullView(Arc::new(std::sync::Mutex::new(self)))
    }
}

impl FullFrame for std::sync::Mutex<RgbFull> {
    fn width(&self) -> u32 {
        self.lock().map_or(0, |f| f.0.width)
    }
    fn height(&self) -> u32 {
        self.lock().map_or(0, |f| f.0.height)
    }
    /// Nearest-neighbour.
    fn rgb(&self, crop: Crop, width: u32, height: u32) -> Result<Image, FrameError> {
        let f = self
            .lock()
            .map_err(|_| FrameError::Convert("poisoned".into()))?;
        let img = &f.0;
        img.check()?;
        if img.width == 0 || img.height == 0 || width == 0 || height == 0 {
            return Err(FrameError::Convert(format!(
                "cannot scale a {}x{} frame to {width}x{height}",
                img.width, img.height
            )));
        }
        let cx = crop.x.min(img.width - 1);
        let cy = crop.y.min(img.height - 1);
        let cw = crop.width.clamp(1, img.width - cx);
        let ch = crop.height.clamp(1, img.height - cy);
        let mut out = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            let sy = u64::from(cy) + u64::from(y) * u64::from(ch) / u64::from(height);
            let row = img.row(sy as usize).ok_or(FrameError::TooLarge {
                width: img.width,
                height: img.height,
            })?;
            for x in 0..width {
                let sx = (u64::from(cx) + u64::from(x) * u64::from(cw) / u64::from(width)) as usize;
                out.extend_from_slice(row.get(sx * 3..sx * 3 + 3).unwrap_or(&[0, 0, 0]));
            }
        }
        Ok(Image::from_vec(width, height, width as usize * 3, out))
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
    /// Monotonic time when the source handed the frame on: what compares
    /// with other instants of this process (a wall clock stepped by NTP
    /// must not make an old frame look new).
    pub delivered: Instant,
    /// The source's frame size (before scaling to the model's input).
    pub source_width: u32,
    pub source_height: u32,
    /// The decoded frame at full size, where the source keeps it.
    pub full: Option<FullView>,
    /// What the motion stage asked the model to look at, and the motion
    /// it saw (shared: the metadata is copied along the route).
    pub sight: Arc<Sight>,
}

impl FrameMeta {
    /// A 1x1 frame of stream `s`, session `a`, at `pts` (for tests).
    #[cfg(test)]
    pub fn test(pts: u64) -> Self {
        Self {
            stream: "s".into(),
            session: "a".into(),
            seq: 0,
            pts_ns: Some(pts),
            captured_at: SystemTime::UNIX_EPOCH,
            delivered: Instant::now(),
            source_width: 1,
            source_height: 1,
            full: None,
            sight: Arc::default(),
        }
    }
}

/// What the model is asked to look at in one frame: the motion stage's
/// choice (`motion::gate`); the whole frame without one.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Look {
    /// The whole frame, as without motion.
    #[default]
    Whole,
    /// These squares of the source frame, in its pixels.
    Regions(Vec<Crop>),
    /// Nothing moves: no model call.
    Nothing,
}

impl Look {
    /// Its name on the wire (the detections message's `looked`).
    pub fn name(&self) -> &'static str {
        match self {
            Look::Whole => "whole",
            Look::Regions(_) => "regions",
            Look::Nothing => "none",
        }
    }

    /// Whether the model looked at the point (`x`, `y`), normalised to a
    /// `width` x `height` frame.
    pub fn covers(&self, x: f32, y: f32, width: u32, height: u32) -> bool {
        match self {
            Look::Whole => true,
            Look::Nothing => false,
            Look::Regions(crops) => {
                let (px, py) = (x * width as f32, y * height as f32);
                crops.iter().any(|c| {
                    px >= c.x as f32
                        && py >= c.y as f32
                        && px <= (c.x + c.width) as f32
                        && py <= (c.y + c.height) as f32
                })
            }
        }
    }
}

/// A frame's look and the motion behind it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sight {
    pub look: Look,
    /// Motion boxes, normalised (drawn on the status page's picture).
    pub motion: Vec<BBox>,
}

/// One decoded frame on its way to inference.
#[derive(Debug)]
pub struct Frame {
    pub meta: FrameMeta,
    pub image: Image,
}

/// A confirmed object seen in the latest frame, as the tracker hands it to the
/// cascade.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectView {
    pub id: Arc<str>,
    pub label: Arc<str>,
    /// The latest detected box, normalised.
    pub bbox: BBox,
    /// The latest detection's score.
    pub score: f32,
    pub stationary: bool,
    /// Detected in the latest frame (else carried through a miss, its box
    /// the last detected one).
    pub seen: bool,
    pub sub_label: Option<SubLabel>,
}

/// What a stream hands inference, in its order: frames, and its status
/// changes behind the frames they follow (as GStreamer sends EOS behind the
/// last buffer). Inference releases both in that order, so a file's last
/// results go out before its `stopped` and nothing has to wait and see.
pub enum Item {
    Frame(Frame),
    /// A status, and where given a sender that is dropped once the status
    /// is published: a stream's last status, which stopping waits for.
    Status(
        crate::status::StreamStatus,
        Option<crossbeam_channel::Sender<()>>,
    ),
}

/// A box normalised to the source frame, origin top-left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// A finer name for a tracked object, from a classifier run on its crops
/// ("goldfinch" for a "bird").
#[derive(Debug, Clone, PartialEq)]
pub struct SubLabel {
    pub label: Arc<str>,
    pub score: f32,
}

/// One detected object (the wire's shape is `publish::payload`'s).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub label: Arc<str>,
    pub label_id: u32,
    pub score: f32,
    pub bbox: BBox,
    /// With tracking on: the ID of the confirmed object it belongs to (its
    /// events' `id`).
    pub track: Option<Arc<str>>,
    /// Its object's sub-label, once a `classify` rule assigned one.
    pub sub_label: Option<SubLabel>,
    /// Not detected in this frame: a tracked object the model was not
    /// asked about (the motion stage looked elsewhere), at its last box
    /// and score.
    pub held: bool,
}

#[derive(Debug, Clone, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_buffer_is_an_error_not_a_panic() {
        // Two 2-pixel rows of 8 bytes need 8 + 6 bytes.
        let ok = Image::from_vec(2, 2, 8, vec![7; 14]);
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(ok.row(1), Some(&[7u8; 6][..]));
        assert_eq!(ok.row(2), None);
        let short = Image::from_vec(2, 2, 8, vec![0; 13]);
        assert_eq!(short.row(0).map(<[u8]>::len), Some(6));
        assert_eq!(short.row(1), None);
        assert_eq!(
            short.check().map_err(|e| e.to_string()),
            Err("a 2x2 frame with 8-byte rows needs 14 bytes; the buffer has 13".into())
        );
        let empty = Image::from_vec(640, 480, 1920, Vec::new());
        assert!(empty.row(0).is_none() && empty.check().is_err());
        let narrow = Image::from_vec(4, 1, 6, vec![0; 12]);
        assert!(matches!(narrow.check(), Err(FrameError::Stride { .. })));
        let huge = Image::from_vec(u32::MAX, u32::MAX, usize::MAX, Vec::new());
        assert!(matches!(huge.check(), Err(FrameError::TooLarge { .. })));
        assert_eq!(huge.row(u32::MAX as usize - 1), None);
    }
}
