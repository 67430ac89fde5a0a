//! One GStreamer pipeline per stream session:
//! source -> decode -> [fps gate] -> videoscale -> videoconvert -> appsink (RGB, model size).
//! Scaling happens before conversion (fewer pixels to convert), and frames
//! the fps gate drops are never scaled, converted or copied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::full::GstFull;
use super::inputs::{add_source, make};
use super::{FpsGate, SourceError, SourceOptions, SourceSpec, StreamStats};
use crate::clock::Clock;
use crate::frame::{FullView, Image, Sight};
use crate::inference::ResizeMode;
use crate::motion::stage::{Feedback, Luma, MotionSpec, MotionStage};
use crate::sync::locked;

/// What the pipeline needs to know to build itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    pub spec: SourceSpec,
    /// The model's input size: frames reach the appsink at this size.
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
    /// Where in each `fps` interval this stream's kept frames fall, from 0
    /// to 1 (`source::fps_phase`): streams at the same rate take turns
    /// instead of handing the model their frames all at once.
    pub fps_phase: f64,
    pub realtime: bool,
    /// How frames are fitted to the model's input.
    pub resize: ResizeMode,
    /// Per-kind source options (RTSP transport, capture format, …).
    pub options: SourceOptions,
    /// Keep a reference to each kept decoded frame (see `full`) for
    /// snapshots and the status page (always with `motion`).
    pub keep_full: bool,
    /// The motion stage: `None` analyses every kept frame whole.
    pub motion: Option<MotionSpec>,
}

/// A kept frame as it leaves the pipeline, before it gets its stream metadata.
#[derive(Debug)]
pub struct RawFrame {
    pub image: Image,
    pub pts_ns: Option<u64>,
    pub captured_at: SystemTime,
    pub source_width: u32,
    pub source_height: u32,
    /// The decoded frame it was scaled from (a reference, see `full`).
    pub full: Option<FullView>,
    /// What the motion stage asks the model to look at.
    pub sight: Sight,
    pub live: bool,
}

/// The latest frame the fps gate kept: its pts, a reference to its
/// decoded pixels and what motion made of it. The appsink callback on the
/// same streaming thread takes it for the scaled frame of the same pts.
struct Kept {
    pts: Option<u64>,
    full: Option<GstFull>,
    sight: Sight,
}

type KeptSlot = Arc<std::sync::Mutex<Option<Kept>>>;

/// Something the pipeline reports on its bus.
#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    Eos,
    Error(String),
}

pub struct Pipeline {
    pipeline: gst::Pipeline,
    live: bool,
}

/// The frame handler returns `false` to stop the stream (shutting down).
pub type Deliver = Box<dyn FnMut(RawFrame) -> bool + Send>;

impl Pipeline {
    /// Builds and starts the pipeline; `deliver` runs on GStreamer's
    /// streaming thread for every frame the fps gate keeps. `feedback` is
    /// the tracker's view the motion stage reads.
    pub fn start(
        settings: &PipelineSettings,
        stats: Arc<StreamStats>,
        clock: Arc<dyn Clock>,
        feedback: Arc<Feedback>,
        deliver: Deliver,
    ) -> Result<Self, SourceError> {
        gst::init().map_err(|e| SourceError::Build(format!("GStreamer init: {e}")))?;
        let pipeline = gst::Pipeline::new();
        let spec_live = settings.spec.is_live(settings.realtime);
        let (head, appsink) = add_tail(&pipeline, settings, spec_live)?;
        let scale_sink = head
            .static_pad("sink")
            .ok_or_else(|| SourceError::Build("the scaler has no sink pad".into()))?;
        let frames = Frames {
            width: settings.width,
            height: settings.height,
            live: Arc::new(AtomicBool::new(spec_live.unwrap_or(true))),
            stride: None,
            source_size: Arc::default(),
            gate_time: Arc::default(),
            slot: KeptSlot::default(),
            clock,
            deliver,
        };
        install_gate(
            &scale_sink,
            Gate {
                fps: FpsGate::new(settings.fps, settings.fps_phase),
                stats,
                source_size: frames.source_size.clone(),
                gate_time: frames.gate_time.clone(),
                clock: frames.clock.clone(),
                // Regions are cut from the decoded frame.
                keep_full: settings.keep_full || settings.motion.is_some(),
                slot: frames.slot.clone(),
                motion: settings
                    .motion
                    .as_ref()
                    .map(|m| (std::sync::Mutex::new(MotionStage::new(m)), feedback)),
                started: frames.clock.now(),
            },
        );
        if let Some(threads) = settings.options.decoder_threads(&settings.spec) {
            limit_decoder_threads(&pipeline, threads);
        }
        add_source(&pipeline, &settings.spec, &settings.options, &head)?;
        let live_flag = frames.live.clone();
        let mut frames = frames;
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| frames.sample(sink))
                .build(),
        );
        // PAUSED first: only that transition tells a live source (NO_PREROLL).
        let started = match pipeline
            .set_state(gst::State::Paused)
            .and_then(|s| pipeline.set_state(gst::State::Playing).map(|_| s))
        {
            Ok(s) => s,
            Err(_) => {
                let error =
                    bus_error(&pipeline).unwrap_or_else(|| "the pipeline refused to start".into());
                // Back to NULL, or the elements (and the frame handler
                // with its channel) are never freed.
                let _ = pipeline.set_state(gst::State::Null);
                return Err(SourceError::Start(error));
            }
        };
        let live = spec_live.unwrap_or(started == gst::StateChangeSuccess::NoPreroll);
        live_flag.store(live, Ordering::Relaxed);
        if spec_live.is_none() {
            appsink.set_drop(live);
        }
        Ok(Self { pipeline, live })
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The decoders in use, by factory name, with their `max-threads`
    /// where they have one (software decoders): shows whether a hardware
    /// decoder was picked.
    pub fn decoders(&self) -> Vec<(String, Option<i32>)> {
        self.pipeline
            .iterate_recurse()
            .into_iter()
            .flatten()
            .filter(is_decoder)
            .filter_map(|e| {
                let threads = e
                    .find_property("max-threads")
                    .map(|_| e.property::<i32>("max-threads"));
                Some((e.factory()?.name().to_string(), threads))
            })
            .collect()
    }

    /// Waits up to `timeout` for an end of stream or an error.
    pub fn poll(&self, timeout: Duration) -> Option<BusEvent> {
        let bus = self.pipeline.bus()?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )?;
        match msg.view() {
            gst::MessageView::Eos(_) => Some(BusEvent::Eos),
            gst::MessageView::Error(e) => Some(BusEvent::Error(describe_error(e))),
            _ => None,
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Adds the scaler, the converter to RGB and the appsink; returns the
/// first element after the source (the fps gate sits on its input) and the
/// appsink.
fn add_tail(
    pipeline: &gst::Pipeline,
    settings: &PipelineSettings,
    spec_live: Option<bool>,
) -> Result<(gst::Element, gst_app::AppSink), SourceError> {
    let build = |e: gst::glib::BoolError| SourceError::Build(e.to_string());
    let scale = make("videoscale")?;
    // Letterbox: square pixels in the output make the scaler pad.
    scale.set_property("add-borders", settings.resize == ResizeMode::Letterbox);
    let convert = make("videoconvert")?;
    let mut caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgb)
        .width(settings.width as i32)
        .height(settings.height as i32);
    if settings.resize == ResizeMode::Letterbox {
        caps = caps.pixel_aspect_ratio(gst::Fraction::new(1, 1));
    }
    let appsink = gst_app::AppSink::builder()
        .caps(&caps.build())
        .max_buffers(1)
        // A live source never queues: the newest frame wins.
        .drop(spec_live != Some(false))
        .sync(settings.realtime)
        .build();
    pipeline
        .add_many([&scale, &convert, appsink.upcast_ref()])
        .map_err(build)?;
    gst::Element::link_many([&scale, &convert, appsink.upcast_ref()]).map_err(build)?;
    let head = if settings.resize == ResizeMode::CentreCrop {
        let crop = make("aspectratiocrop")?;
        crop.set_property(
            "aspect-ratio",
            gst::Fraction::new(settings.width as i32, settings.height as i32),
        );
        pipeline.add(&crop).map_err(build)?;
        crop.link(&scale).map_err(build)?;
        crop
    } else {
        scale
    };
    Ok((head, appsink))
}

/// What the appsink's handler keeps between frames and shares with the
/// gate's probes.
struct Frames {
    width: u32,
    height: u32,
    /// Whether the source is live (known once it starts).
    live: Arc<AtomicBool>,
    /// The stride of the caps last seen.
    stride: Option<(gst::Caps, usize)>,
    /// The source's frame size, width << 32 | height.
    source_size: Arc<AtomicU64>,
    /// When the last kept frame passed the gate, in ns since the Unix epoch.
    gate_time: Arc<AtomicU64>,
    slot: KeptSlot,
    clock: Arc<dyn Clock>,
    deliver: Deliver,
}

impl Frames {
    /// One scaled frame from the appsink, to `deliver`.
    fn sample(&mut self, sink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
        let caps = sample.caps_owned().ok_or(gst::FlowError::NotNegotiated)?;
        let stride = match &self.stride {
            Some((c, s)) if *c == caps => *s,
            _ => {
                let info = gst_video::VideoInfo::from_caps(&caps)
                    .map_err(|_| gst::FlowError::NotNegotiated)?;
                let s = info.stride()[0] as usize;
                self.stride = Some((caps, s));
                s
            }
        };
        let buffer = sample.buffer_owned().ok_or(gst::FlowError::Error)?;
        let pts_ns = buffer.pts().map(|t| t.nseconds());
        let live = self.live.load(Ordering::Relaxed);
        let captured_at =
            capture_time(sink, &sample, live, self.clock.wall()).unwrap_or_else(|| {
                SystemTime::UNIX_EPOCH
                    + Duration::from_nanos(self.gate_time.load(Ordering::Relaxed))
            });
        let mapped = buffer
            .into_mapped_buffer_readable()
            .map_err(|_| gst::FlowError::Error)?;
        let size = self.source_size.load(Ordering::Relaxed);
        let kept = self
            .slot
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .filter(|k| k.pts == pts_ns);
        let (full, sight) = kept.map_or((None, Sight::default()), |k| {
            (k.full.map(|f| FullView(Arc::new(f))), k.sight)
        });
        let frame = RawFrame {
            image: Image {
                width: self.width,
                height: self.height,
                stride,
                data: Box::new(mapped),
            },
            pts_ns,
            captured_at,
            source_width: (size >> 32) as u32,
            source_height: size as u32,
            full,
            sight,
            live,
        };
        if (self.deliver)(frame) {
            Ok(gst::FlowSuccess::Ok)
        } else {
            Err(gst::FlowError::Flushing)
        }
    }
}

/// A decoding element; decodebin and uridecodebin are bins typed as
/// decoders too, and are not.
fn is_decoder(element: &gst::Element) -> bool {
    !element.is::<gst::Bin>()
        && element
            .factory()
            .is_some_and(|f| f.has_type(gst::ElementFactoryType::DECODER))
}

/// Sets `max-threads` on the software decoders decodebin picks (avdec_*);
/// hardware decoders have no such property and are left alone.
fn limit_decoder_threads(pipeline: &gst::Pipeline, threads: u32) {
    let threads = i32::try_from(threads).unwrap_or(i32::MAX);
    pipeline.connect_deep_element_added(move |_, _, element| {
        if is_decoder(element) && element.find_property("max-threads").is_some() {
            element.set_property("max-threads", threads);
        }
    });
}

/// What the probes on the scaler's sink pad share: the fps gate, the
/// source-size watcher, the full-frame keeper and the motion stage.
struct Gate {
    fps: FpsGate,
    stats: Arc<StreamStats>,
    source_size: Arc<AtomicU64>,
    gate_time: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
    /// Keep a reference to each kept frame (snapshots, the page, regions).
    keep_full: bool,
    slot: KeptSlot,
    motion: Option<(std::sync::Mutex<MotionStage>, Arc<Feedback>)>,
    /// When the pipeline started (for frames without a timestamp).
    started: std::time::Instant,
}

fn install_gate(pad: &gst::Pad, gate: Gate) {
    let size = gate.source_size.clone();
    let source_info = Arc::new(std::sync::Mutex::new(None::<gst_video::VideoInfo>));
    let info_in = source_info.clone();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::EventView::Caps(c)) = info.event().map(|e| e.view())
            && let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps())
        {
            size.store(
                (u64::from(vi.width()) << 32) | u64::from(vi.height()),
                Ordering::Relaxed,
            );
            if let Ok(mut i) = info_in.lock() {
                *i = Some(vi);
            }
        }
        gst::PadProbeReturn::Ok
    });
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let stats = &gate.stats;
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let pts = info.buffer().and_then(|b| b.pts()).map(|t| t.nseconds());
        // Paused: never scaled, converted or analysed.
        if stats.paused.load(Ordering::Relaxed) || !gate.fps.keep(pts) {
            stats.frames_skipped.fetch_add(1, Ordering::Relaxed);
            // Handled, not Drop: GStreamer 1.22 unrefs a dropped buffer
            // twice (a CRITICAL per frame); Handled lets the binding free it.
            return gst::PadProbeReturn::Handled;
        }
        stats.frames_kept.fetch_add(1, Ordering::Relaxed);
        let now = gate
            .clock
            .wall()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        gate.gate_time.store(now, Ordering::Relaxed);
        let vi = source_info.lock().ok().and_then(|i| i.clone());
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
            && let Some(vi) = vi
        {
            gate.keep(pts, buffer, vi);
        }
        gst::PadProbeReturn::Ok
    });
}

impl Gate {
    /// A kept frame: what the motion stage makes of it, and a reference
    /// (not a copy) to its pixels, converted only when a snapshot, the
    /// status page or a region asks (see `full`).
    fn keep(&self, pts: Option<u64>, buffer: &gst::Buffer, vi: gst_video::VideoInfo) {
        if !self.keep_full && self.motion.is_none() {
            return;
        }
        let sight = match &self.motion {
            Some((stage, feedback)) => {
                let started = std::time::Instant::now();
                // Stream time where the frame has it: a file analysed
                // faster than real time is checked as often per minute of
                // video as a camera.
                let at = pts.map_or_else(
                    || self.clock.now().saturating_duration_since(self.started),
                    Duration::from_nanos,
                );
                let mut view = feedback.get();
                // Without timestamps the tracker's progress cannot be told.
                view.tracking &= pts.is_some();
                let sight =
                    luma(buffer, &vi, |l| locked(stage).frame(l, &view, at)).unwrap_or_default();
                let us = started.elapsed().as_micros() as u64;
                self.stats.motion_us.fetch_add(us, Ordering::Relaxed);
                sight
            }
            None => Sight::default(),
        };
        let full = self.keep_full.then(|| GstFull::new(buffer.clone(), vi));
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(Kept { pts, full, sight });
        }
    }
}

/// Calls `f` with the frame's luma where its format has a luma plane one
/// or two bytes a pixel (the planar and semi-planar YUV formats decoders
/// give, and packed 4:2:2 from cameras); `None` for others (RGB, 10-bit):
/// the model then looks at the whole frame.
fn luma<T>(
    buffer: &gst::Buffer,
    vi: &gst_video::VideoInfo,
    f: impl FnOnce(&Luma<'_>) -> T,
) -> Option<T> {
    use gst_video::VideoFormat as F;
    let (step, offset) = match vi.format() {
        F::I420
        | F::Yv12
        | F::Nv12
        | F::Nv21
        | F::Y42b
        | F::Y444
        | F::Y41b
        | F::Gray8
        | F::Nv16
        | F::Nv24 => (1, 0),
        F::Yuy2 | F::Yvyu => (2, 0),
        F::Uyvy | F::Vyuy => (2, 1),
        _ => return None,
    };
    // Maps through the buffer's video meta where it has one: decoders pad.
    use gst_video::prelude::VideoFrameExt;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), vi).ok()?;
    let data = frame.plane_data(0).ok()?.get(offset..)?;
    let stride = usize::try_from(*frame.plane_stride().first()?).ok()?;
    Some(f(&Luma {
        data,
        stride,
        step,
        width: vi.width(),
        height: vi.height(),
    }))
}

/// For live pipelines: the wall-clock time the frame was captured, from the
/// pipeline clock (includes jitter-buffer and decode latency).
fn capture_time(
    sink: &gst_app::AppSink,
    sample: &gst::Sample,
    live: bool,
    wall: SystemTime,
) -> Option<SystemTime> {
    if !live {
        return None;
    }
    let clock = sink.clock()?;
    let base = sink.base_time()?;
    let pts = sample.buffer()?.pts()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let running = segment.to_running_time(pts)?;
    let age = clock.time().checked_sub(base + running)?;
    wall.checked_sub(Duration::from_nanos(age.nseconds()))
}

fn describe_error(e: &gst::message::Error) -> String {
    let src = e
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    let mut msg = format!("{src}: {}", e.error());
    if let Some(d) = e.debug() {
        // The debug text's last line is the useful one; the rest is a C trace.
        if let Some(last) = d.lines().rev().find(|l| !l.trim().is_empty()) {
            msg.push_str(" (");
            msg.push_str(last.trim());
            msg.push(')');
        }
    }
    crate::redact::text(&msg)
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(100),
        &[gst::MessageType::Error],
    )?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(describe_error(e)),
        _ => None,
    }
}
