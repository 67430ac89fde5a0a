//! The source stage: turns a stream's `source` into frames on a channel,
//! and keeps it alive (reconnects, status).

pub mod full;
mod gate;
mod inlet;
mod inputs;
mod pipeline;
mod probe;
mod spec;
mod supervisor;

// Where a stream's counters used to live: callers still find them here.
pub use crate::stats::StreamStats;
pub use gate::FpsGate;
pub use inlet::Inlet;
pub use pipeline::{BusEvent, Deliver, Pipeline, PipelineSettings, RawFrame};
pub use probe::{ProbeReport, probe};
pub use spec::SourceSpec;
pub use supervisor::{
    Kind, Opener, Policy, Report, Session, StreamHandle, StreamSetup, spawn_stream, supervise,
};

/// Built from GStreamer's messages, which quote the source (URLs, a
/// `gst:` fragment's properties): shown redacted, wherever it is shown.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot build the pipeline: {}", crate::redact::text(.0))]
    Build(String),
    #[error("cannot start: {}", crate::redact::text(.0))]
    Start(String),
}

/// The fps phase of the `index`th stream: multiples of the golden ratio
/// spread any number of streams evenly over the interval. Streams that start
/// together (every camera when the daemon starts) otherwise keep their
/// frames at the same instants, and the model gets them in bursts of N:
/// the last of a burst waits for all the others.
pub fn fps_phase(index: usize) -> f64 {
    (index as f64 * 0.618_033_988_749_895).fract()
}

/// The default rtspsrc jitter buffer in ms, unlike GStreamer's 2 s. Over
/// TCP packets arrive in order and complete, so a buffer only adds delay
/// (it is most of the capture-to-publish latency); over UDP it reorders.
impl Transport {
    pub fn default_latency_ms(self) -> u32 {
        match self {
            Transport::Tcp => 0,
            Transport::Udp => 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// Options of a stream's source, by kind (`options:` in the config).
// Unknown keys: reported by config (serde_ignored), rejected by the schema.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SourceOptions {
    /// rtsp: tcp (default) or udp.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// rtsp: jitter-buffer latency in ms (default 0 over tcp, 200 over udp).
    #[serde(default)]
    pub latency_ms: Option<u32>,
    /// Threads of a software decoder (default 1, 0: one per core).
    #[serde(default)]
    pub decoder_threads: Option<u32>,
    /// v4l2: capture size, rate and format (mjpeg, yuyv, nv12, i420, h264).
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub framerate: Option<u32>,
    #[serde(default)]
    pub format: Option<CaptureFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    Mjpeg,
    Yuyv,
    Nv12,
    I420,
    H264,
}

/// One thread per software decoder by default: the parallelism is in the
/// streams and the inference workers. Frame threading on top costs 18 % more
/// CPU per 720p H.264 frame, about 10 MiB per decoder and a frame of delay
/// per extra thread (docs/BENCHMARKS.md).
pub const DEFAULT_DECODER_THREADS: u32 = 1;

impl SourceOptions {
    /// The thread limit for `spec`'s software decoders: the default is not
    /// forced on a `gst:` fragment, which may set its own; a value set in
    /// the config is.
    pub fn decoder_threads(&self, spec: &SourceSpec) -> Option<u32> {
        match spec {
            SourceSpec::Gst { .. } => self.decoder_threads,
            _ => Some(self.decoder_threads.unwrap_or(DEFAULT_DECODER_THREADS)),
        }
    }

    pub fn has_capture(&self) -> bool {
        self.width.is_some()
            || self.height.is_some()
            || self.framerate.is_some()
            || self.format.is_some()
    }

    pub fn has_rtsp(&self) -> bool {
        self.transport.is_some() || self.latency_ms.is_some()
    }

    /// The caps a camera is asked for.
    pub fn capture_caps(&self) -> gstreamer::Caps {
        let (name, format) = match self.format {
            Some(CaptureFormat::Mjpeg) => ("image/jpeg", None),
            Some(CaptureFormat::H264) => ("video/x-h264", None),
            Some(CaptureFormat::Yuyv) => ("video/x-raw", Some("YUY2")),
            Some(CaptureFormat::Nv12) => ("video/x-raw", Some("NV12")),
            Some(CaptureFormat::I420) => ("video/x-raw", Some("I420")),
            None => ("video/x-raw", None),
        };
        let mut b = gstreamer::Caps::builder(name);
        if let Some(f) = format {
            b = b.field("format", f);
        }
        if let Some(w) = self.width {
            b = b.field("width", w as i32);
        }
        if let Some(h) = self.height {
            b = b.field("height", h as i32);
        }
        if let Some(f) = self.framerate {
            b = b.field("framerate", gstreamer::Fraction::new(f as i32, 1));
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_phases_of_eight_streams_are_spread_over_the_interval() {
        let mut phases: Vec<f64> = (0..8).map(fps_phase).collect();
        phases.sort_by(f64::total_cmp);
        let gaps: Vec<f64> = phases.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(phases.iter().all(|p| (0.0..1.0).contains(p)));
        // Evenly would be 0.125 apart.
        assert!(gaps.iter().all(|g| *g > 0.08), "{phases:?}");
    }

    #[test]
    fn decoder_threads_default_to_one_but_leave_gst_fragments_alone() {
        let file = SourceSpec::parse("file:///c.mp4").unwrap();
        let gst = SourceSpec::parse("gst://videotestsrc").unwrap();
        let unset = SourceOptions::default();
        let set = SourceOptions {
            decoder_threads: Some(2),
            ..Default::default()
        };
        assert_eq!(unset.decoder_threads(&file), Some(1));
        assert_eq!(unset.decoder_threads(&gst), None);
        assert_eq!(set.decoder_threads(&gst), Some(2));
    }
}
