//! How each kind of source enters a stream's pipeline: a test pattern, a
//! launch fragment, a V4L2 camera with capture caps, or a URI (a file, an
//! RTSP or HTTP URL, a camera) through uridecodebin; each ends linked to the
//! scaler.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use super::{SourceError, SourceOptions, SourceSpec, Transport};

/// Adds the source part of the pipeline and links it to `sink` (the scaler).
pub(super) fn add_source(
    pipeline: &gst::Pipeline,
    spec: &SourceSpec,
    options: &SourceOptions,
    sink: &gst::Element,
) -> Result<(), SourceError> {
    match spec {
        SourceSpec::Test {
            pattern,
            width,
            height,
            fps,
        } => add_test(pipeline, pattern, (*width, *height, *fps), sink),
        SourceSpec::Gst { launch } => add_fragment(pipeline, launch, sink),
        SourceSpec::V4l2 { device } if options.has_capture() => {
            // Explicit capture caps: v4l2src ! capsfilter ! decodebin.
            let src = make("v4l2src")?;
            src.set_property("device", device.display().to_string());
            let filter = gst::ElementFactory::make("capsfilter")
                .property("caps", options.capture_caps())
                .build()
                .map_err(build_error)?;
            let decode = make("decodebin")?;
            pipeline
                .add_many([&src, &filter, &decode])
                .map_err(build_error)?;
            gst::Element::link_many([&src, &filter, &decode]).map_err(build_error)?;
            link_decoded(&decode, pipeline, sink);
            Ok(())
        }
        SourceSpec::File { path } => {
            let uri = gst::glib::filename_to_uri(path, None)
                .map_err(|e| SourceError::Build(e.to_string()))?;
            add_uri(pipeline, &uri, options, sink)
        }
        SourceSpec::Rtsp { url } | SourceSpec::Http { url } => {
            add_uri(pipeline, url, options, sink)
        }
        SourceSpec::V4l2 { device } => add_uri(
            pipeline,
            &format!("v4l2://{}", device.display()),
            options,
            sink,
        ),
    }
}

fn build_error(e: gst::glib::BoolError) -> SourceError {
    SourceError::Build(e.to_string())
}

/// `test://`: a live videotestsrc of `(width, height, fps)`.
fn add_test(
    pipeline: &gst::Pipeline,
    pattern: &str,
    (width, height, fps): (u32, u32, u32),
    sink: &gst::Element,
) -> Result<(), SourceError> {
    let src = make("videotestsrc")?;
    src.set_property("is-live", true);
    // The pattern was checked against videotestsrc's nicks when parsed.
    src.set_property_from_str("pattern", pattern);
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::I420)
        .width(width as i32)
        .height(height as i32)
        .framerate(gst::Fraction::new(fps as i32, 1))
        .build();
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &caps)
        .build()
        .map_err(build_error)?;
    pipeline.add_many([&src, &filter]).map_err(build_error)?;
    gst::Element::link_many([&src, &filter, sink]).map_err(build_error)
}

/// `gst:`: the user's launch fragment, ending in raw video.
fn add_fragment(
    pipeline: &gst::Pipeline,
    launch: &str,
    sink: &gst::Element,
) -> Result<(), SourceError> {
    // A fragment may end in caps ("... ! video/x-raw,width=640"),
    // which the parser accepts only between two elements.
    let launch = format!("{launch} ! identity silent=true");
    // GStreamer's message quotes the fragment (element names,
    // property values): it may hold credentials.
    let bin = gst::parse::bin_from_description(&launch, true).map_err(|e| {
        SourceError::Build(crate::redact::text(&format!(
            "gst: fragment does not parse: {e}"
        )))
    })?;
    pipeline.add(&bin).map_err(build_error)?;
    bin.link(sink)
        .map_err(|_| SourceError::Build("gst: fragment does not end in raw video".into()))
}

/// A file, an RTSP or HTTP URL, a camera without capture caps: uridecodebin.
fn add_uri(
    pipeline: &gst::Pipeline,
    uri: &str,
    options: &SourceOptions,
    sink: &gst::Element,
) -> Result<(), SourceError> {
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .build()
        .map_err(|_| SourceError::Build("GStreamer element uridecodebin is missing".into()))?;
    let transport = options.transport.unwrap_or_default();
    let latency = options
        .latency_ms
        .unwrap_or_else(|| transport.default_latency_ms());
    let protocols = match transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    decode.connect("source-setup", false, move |args| {
        if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
            && src.find_property("latency").is_some()
            && src.find_property("protocols").is_some()
        {
            // rtspsrc: a low jitter buffer; TCP by default because
            // UDP is lost behind NAT and firewalls.
            src.set_property("latency", latency);
            src.set_property_from_str("protocols", protocols);
        }
        None
    });
    link_decoded(&decode, pipeline, sink);
    pipeline.add(&decode).map_err(build_error)
}

/// Links a decoder's video pad to `sink`; other pads go to fakesinks.
fn link_decoded(decode: &gst::Element, pipeline: &gst::Pipeline, sink: &gst::Element) {
    let sink = sink.clone();
    let weak_pipeline = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        match sink.static_pad("sink") {
            Some(t) if is_video && !t.is_linked() => {
                let _ = pad.link(&t);
            }
            _ => {
                // Audio and extra video tracks go nowhere, quietly.
                if let Some(p) = weak_pipeline.upgrade()
                    && let Ok(fake) = gst::ElementFactory::make("fakesink")
                        .property("sync", false)
                        .property("async", false)
                        .build()
                    && p.add(&fake).is_ok()
                {
                    let _ = fake.sync_state_with_parent();
                    if let Some(fp) = fake.static_pad("sink") {
                        let _ = pad.link(&fp);
                    }
                }
            }
        }
    });
}

/// A GStreamer element, or an error that says how to install it.
pub(super) fn make(factory: &str) -> Result<gst::Element, SourceError> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        SourceError::Build(format!(
            "GStreamer element {factory:?} is missing; install the GStreamer plugins (scripts/apt-deps.sh)"
        ))
    })
}
