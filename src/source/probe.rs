//! `visiond probe URI`: what a source delivers, without running a model.

use std::fmt;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_pbutils as pbutils;
use gstreamer_pbutils::prelude::*;
use gstreamer_video as gst_video;

use super::{SourceError, SourceSpec};

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub source: String,
    pub container: Option<String>,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second; 0 when the source does not say.
    pub fps: f64,
    pub live: bool,
    pub duration: Option<Duration>,
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "source:    {}", self.source)?;
        if let Some(c) = &self.container {
            writeln!(f, "container: {c}")?;
        }
        writeln!(f, "codec:     {}", self.codec)?;
        writeln!(f, "size:      {}x{}", self.width, self.height)?;
        if self.fps > 0.0 {
            writeln!(f, "fps:       {:.3}", self.fps)?;
        } else {
            writeln!(f, "fps:       variable or unknown")?;
        }
        writeln!(f, "live:      {}", self.live)?;
        if let Some(d) = self.duration {
            writeln!(f, "duration:  {:.3} s", d.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Opens the source and reports its first video stream.
pub fn probe(spec: &SourceSpec, timeout: Duration) -> Result<ProbeReport, SourceError> {
    gst::init().map_err(|e| SourceError::Build(e.to_string()))?;
    let uri = match spec {
        SourceSpec::File { path } => {
            if !path.is_file() {
                return Err(SourceError::Start(format!("{} not found", path.display())));
            }
            gst::glib::filename_to_uri(path, None)
                .map_err(|e| SourceError::Build(e.to_string()))?
                .to_string()
        }
        SourceSpec::Rtsp { url } | SourceSpec::Http { url } => url.clone(),
        SourceSpec::V4l2 { device } => format!("v4l2://{}", device.display()),
        SourceSpec::Test { .. } | SourceSpec::Gst { .. } => return probe_raw(spec, timeout),
    };
    let discoverer =
        pbutils::Discoverer::new(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
            .map_err(|e| SourceError::Build(e.to_string()))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|e| SourceError::Start(crate::redact::text(&e.to_string())))?;
    let video = info
        .video_streams()
        .into_iter()
        .next()
        .ok_or_else(|| SourceError::Start("the source has no video stream".into()))?;
    let codec = video
        .caps()
        .map(|c| pbutils::functions::pb_utils_get_codec_description(&c).to_string())
        .unwrap_or_else(|| "unknown".into());
    let container = info
        .container_streams()
        .into_iter()
        .next()
        .and_then(|c| c.caps())
        .map(|c| pbutils::functions::pb_utils_get_codec_description(&c).to_string());
    let fr = video.framerate();
    Ok(ProbeReport {
        source: spec.to_string(),
        container,
        codec,
        width: video.width(),
        height: video.height(),
        fps: rate(fr),
        live: info.is_live(),
        duration: info.duration().map(|d| Duration::from_nanos(d.nseconds())),
    })
}

/// test:// and gst: sources deliver raw video: run them briefly into a fakesink.
fn probe_raw(spec: &SourceSpec, timeout: Duration) -> Result<ProbeReport, SourceError> {
    let launch = match spec {
        SourceSpec::Test {
            pattern,
            width,
            height,
            fps,
        } => format!(
            "videotestsrc is-live=true pattern={pattern} ! video/x-raw,format=I420,width={width},height={height},framerate={fps}/1"
        ),
        SourceSpec::Gst { launch } => launch.clone(),
        _ => unreachable!("probe_raw is for raw sources"),
    };
    let pipeline = gst::parse::launch(&format!("{launch} ! fakesink name=sink"))
        .map_err(|e| SourceError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| SourceError::Build("not a pipeline".into()))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.static_pad("sink"))
        .ok_or_else(|| SourceError::Build("no sink".into()))?;
    // PAUSED first: only that transition tells a live source (NO_PREROLL).
    let started = pipeline
        .set_state(gst::State::Paused)
        .and_then(|s| pipeline.set_state(gst::State::Playing).map(|_| s))
        .map_err(|_| SourceError::Start("the pipeline refused to start".into()));
    let result = started.and_then(|s| {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(caps) = sink.current_caps() {
                let info = gst_video::VideoInfo::from_caps(&caps)
                    .map_err(|_| SourceError::Start(format!("not raw video: {caps}")))?;
                let fr = info.fps();
                return Ok(ProbeReport {
                    source: spec.to_string(),
                    container: None,
                    codec: format!("raw video ({})", info.format().to_str()),
                    width: info.width(),
                    height: info.height(),
                    fps: rate(fr),
                    live: s == gst::StateChangeSuccess::NoPreroll,
                    duration: None,
                });
            }
            if std::time::Instant::now() > deadline {
                return Err(SourceError::Start("no video within the timeout".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Frames per second of a GStreamer frame rate; 0 when unknown (0/1) or variable.
fn rate(fr: gst::Fraction) -> f64 {
    if fr.denom() > 0 {
        f64::from(fr.numer()) / f64::from(fr.denom())
    } else {
        0.0
    }
}
