//! The source stage on its own, with real GStreamer pipelines.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use visiond::source::{BusEvent, Pipeline, PipelineSettings, RawFrame, SourceSpec, StreamStats};

fn collect(
    settings: PipelineSettings,
    want: usize,
    limit: Duration,
) -> (Vec<RawFrame>, Arc<StreamStats>) {
    let stats = Arc::new(StreamStats::default());
    let (tx, rx) = crossbeam_channel::unbounded();
    let p = Pipeline::start(
        &settings,
        stats.clone(),
        Box::new(move |f| tx.send(f).is_ok()),
    )
    .expect("pipeline starts");
    let deadline = Instant::now() + limit;
    let mut frames = Vec::new();
    while frames.len() < want && Instant::now() < deadline {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(50)) {
            frames.push(f);
        }
        if let Some(BusEvent::Error(e)) = p.poll(Duration::ZERO) {
            panic!("pipeline error: {e}");
        }
    }
    p.stop();
    (frames, stats)
}

#[test]
fn test_source_delivers_rgb_frames_at_model_size_with_source_size() {
    let settings = PipelineSettings {
        spec: SourceSpec::parse("test://?width=640&height=360&fps=30").unwrap(),
        width: 225, // odd width: rows are padded to 4 bytes
        height: 150,
        fps: None,
        fps_phase: 0.0,
        realtime: false,
        resize: visiond::inference::ResizeMode::Stretch,
        options: Default::default(),
    };
    let (frames, _) = collect(settings, 5, Duration::from_secs(10));
    assert_eq!(frames.len(), 5);
    let f = &frames[0];
    assert_eq!((f.image.width, f.image.height), (225, 150));
    assert_eq!(f.image.stride, 676);
    assert!(f.image.bytes().len() >= 676 * 150);
    assert_eq!((f.source_width, f.source_height), (640, 360));
    assert!(f.live);
    assert!(frames.windows(2).all(|w| w[0].pts_ns < w[1].pts_ns));
}

#[test]
fn fps_setting_keeps_every_sixth_frame_in_stream_time() {
    let settings = PipelineSettings {
        spec: SourceSpec::parse(
            "gst:videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1",
        )
        .unwrap(),
        width: 64,
        height: 64,
        fps: Some(5.0),
        fps_phase: 0.0,
        realtime: false,
        resize: visiond::inference::ResizeMode::Stretch,
        options: Default::default(),
    };
    let (frames, stats) = collect(settings, 10, Duration::from_secs(10));
    assert_eq!(frames.len(), 10);
    assert_eq!(stats.frames_kept.load(Ordering::Relaxed), 10);
    let pts: Vec<u64> = frames
        .iter()
        .map(|f| f.pts_ns.unwrap() / 1_000_000)
        .collect();
    assert_eq!(
        pts,
        vec![0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]
    );
}

#[test]
fn a_bad_source_is_an_error_not_a_panic() {
    let settings = PipelineSettings {
        spec: SourceSpec::parse("gst:this-element-does-not-exist").unwrap(),
        width: 64,
        height: 64,
        fps: None,
        fps_phase: 0.0,
        realtime: false,
        resize: visiond::inference::ResizeMode::Stretch,
        options: Default::default(),
    };
    let err = Pipeline::start(&settings, Arc::default(), Box::new(|_| true))
        .err()
        .expect("fails");
    assert!(
        err.to_string().contains("this-element-does-not-exist"),
        "{err}"
    );
}

/// A cached clip at the SSD input size, every frame.
fn clip(name: &str, options: visiond::source::SourceOptions) -> PipelineSettings {
    PipelineSettings {
        spec: SourceSpec::File { path: media(name) },
        width: 300,
        height: 300,
        fps: None,
        fps_phase: 0.0,
        realtime: false,
        resize: visiond::inference::ResizeMode::Stretch,
        options,
    }
}

fn media(clip: &str) -> std::path::PathBuf {
    let cache = std::env::var_os("VISIOND_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/visiond")
        });
    let path = cache.join("media").join(clip);
    assert!(
        path.is_file(),
        "{} missing: run scripts/setup-assets.sh",
        path.display()
    );
    path
}

#[test]
fn software_decoders_run_one_thread_unless_configured() {
    for (option, want) in [(None, 1), (Some(0), 0), (Some(3), 3)] {
        let settings = clip(
            "photos.mp4",
            visiond::source::SourceOptions {
                decoder_threads: option,
                ..Default::default()
            },
        );
        let (tx, rx) = crossbeam_channel::bounded(1);
        let p = Pipeline::start(
            &settings,
            Arc::new(StreamStats::default()),
            Box::new(move |f| tx.send(f).is_ok()),
        )
        .expect("pipeline starts");
        // A frame out means the decoder was plugged and configured.
        rx.recv_timeout(Duration::from_secs(10)).expect("a frame");
        let decoders = p.decoders();
        p.stop();
        assert_eq!(
            decoders,
            vec![("avdec_h264".to_string(), Some(want))],
            "{option:?}"
        );
    }
}

#[test]
fn h264_files_in_mp4_and_mkv_deliver_every_frame_with_their_size() {
    for name in ["photos.mp4", "photos.mkv"] {
        let (frames, stats) = collect(clip(name, Default::default()), 270, Duration::from_secs(30));
        assert_eq!(frames.len(), 270, "{name}");
        assert_eq!(stats.frames_in.load(Ordering::Relaxed), 270, "{name}");
        let f = &frames[0];
        assert_eq!((f.source_width, f.source_height), (1280, 720), "{name}");
        assert!(!f.live, "{name}");
    }
}

#[test]
fn a_gst_fragment_that_fails_shows_no_credentials() {
    // Each is refused by GStreamer with a message that quotes the fragment.
    for source in [
        // A URL no element handles, where an element belongs.
        "gst:nosuch://admin:frag-secret-1@10.0.0.5/s1 ! decodebin",
        // A URL in a property that takes a number: "could not set property…".
        "gst:rtspsrc latency=rtsp://admin:frag-secret-2@10.0.0.5/s1 ! decodebin",
        // A credential property's value, repeated where it does not fit.
        "gst:rtspsrc user-pw=frag-secret-3 latency=frag-secret-3 ! decodebin",
    ] {
        let settings = PipelineSettings {
            spec: SourceSpec::parse(source).unwrap(),
            width: 64,
            height: 64,
            fps: None,
            fps_phase: 0.0,
            realtime: false,
            resize: visiond::inference::ResizeMode::Stretch,
            options: Default::default(),
        };
        let e = match Pipeline::start(&settings, Arc::default(), Box::new(|_| true)) {
            Ok(_) => panic!("{source} started"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("does not parse"), "{e}");
        assert!(!e.contains("frag-secret"), "{source}: {e}");
        assert!(e.contains("***"), "{e}");
    }
}
