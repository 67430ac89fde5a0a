//! The source stage on its own, with real GStreamer pipelines.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use visiond::clock::SystemClock;

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
        Arc::new(SystemClock),
        Arc::default(),
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
    drop(p);
    (frames, stats)
}

/// SMPTE bars: white, yellow, cyan: a crop of each, at any size, from
/// the decoded I420 frame kept before the scaler.
#[test]
fn kept_full_frames_give_rgb_crops_of_the_source_on_demand() {
    let settings = PipelineSettings {
        spec: SourceSpec::parse("test://?width=640&height=480&fps=30").unwrap(),
        width: 300,
        height: 300,
        fps: None,
        fps_phase: 0.0,
        realtime: false,
        resize: visiond::inference::ResizeMode::Stretch,
        options: Default::default(),
        keep_full: true,
        motion: None,
    };
    let (frames, _) = collect(settings, 3, Duration::from_secs(10));
    assert_eq!(frames.len(), 3);
    let full = frames[0].full.clone().expect("a full frame");
    assert_eq!((full.0.width(), full.0.height()), (640, 480));
    let crop = |x, w| visiond::frame::Crop {
        x,
        y: 20,
        width: w,
        height: 200,
    };
    for (x, want) in [
        (10, [255, 255, 255]),
        (100, [255, 255, 0]),
        (200, [0, 255, 255]),
    ] {
        let img = full.0.rgb(crop(x, 70), 35, 101).expect("converts");
        assert_eq!((img.width, img.height), (35, 101));
        img.check().expect("fits its size");
        for y in 0..101 {
            for p in img.row(y).expect("row").chunks(3) {
                let ok = p.iter().zip(want).all(|(a, b)| a.abs_diff(b) < 24);
                assert!(ok, "{p:?} at row {y}, want {want:?}");
            }
        }
    }
    // A crop past the frame is clamped into it, never read outside.
    let img = full.0.rgb(crop(10_000, 10_000), 16, 16).expect("clamped");
    assert_eq!((img.width, img.height), (16, 16));
    assert!(full.0.rgb(crop(0, 10), 0, 10).is_err(), "no empty pictures");
}

/// The ball pattern moves: with the motion stage, the first frame is
/// looked at whole, then regions around the ball, cut from the decoded
/// frame the pipeline keeps for them.
#[test]
fn the_motion_stage_points_the_model_at_the_moving_ball() {
    use visiond::frame::Look;
    let settings = PipelineSettings {
        spec: SourceSpec::parse("test://?pattern=ball&width=1280&height=720&fps=30").unwrap(),
        width: 300,
        height: 300,
        fps: None,
        fps_phase: 0.0,
        realtime: false,
        resize: visiond::inference::ResizeMode::Stretch,
        options: Default::default(),
        keep_full: false,
        motion: Some(Default::default()),
    };
    let (frames, stats) = collect(settings, 30, Duration::from_secs(20));
    assert_eq!(frames.len(), 30);
    assert_eq!(frames[0].sight.look, Look::Whole, "the first frame");
    let mut regions = 0;
    for f in &frames[5..] {
        assert!(f.full.is_some(), "kept for the regions");
        if let Look::Regions(crops) = &f.sight.look {
            regions += 1;
            let ball = f.sight.motion.first().expect("motion behind the regions");
            let (bx, by) = (
                (ball.x + ball.w / 2.0) * 1280.0,
                (ball.y + ball.h / 2.0) * 720.0,
            );
            assert!(
                crops.iter().any(|c| {
                    c.x as f32 <= bx
                        && c.y as f32 <= by
                        && bx <= (c.x + c.width) as f32
                        && by <= (c.y + c.height) as f32
                }),
                "the ball at {bx},{by} outside {crops:?}"
            );
        }
    }
    assert!(regions >= 20, "{regions} of 25 frames in regions");
    assert!(stats.motion_us.load(Ordering::Relaxed) > 0);
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
        keep_full: false,
        motion: None,
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
    assert!(f.full.is_none(), "not kept unless asked for");
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
        keep_full: false,
        motion: None,
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
        keep_full: false,
        motion: None,
    };
    let err = Pipeline::start(
        &settings,
        Arc::default(),
        Arc::new(SystemClock),
        Arc::default(),
        Box::new(|_| true),
    )
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
        keep_full: false,
        motion: None,
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
            Arc::new(SystemClock),
            Arc::default(),
            Box::new(move |f| tx.send(f).is_ok()),
        )
        .expect("pipeline starts");
        // A frame out means the decoder was plugged and configured.
        rx.recv_timeout(Duration::from_secs(10)).expect("a frame");
        let decoders = p.decoders();
        drop(p);
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
            keep_full: false,
            motion: None,
        };
        let e = match Pipeline::start(
            &settings,
            Arc::default(),
            Arc::new(SystemClock),
            Arc::default(),
            Box::new(|_| true),
        ) {
            Ok(_) => panic!("{source} started"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("does not parse"), "{e}");
        assert!(!e.contains("frag-secret"), "{source}: {e}");
        assert!(e.contains("***"), "{e}");
    }
}
