//! A real RTSP server (gst-rtsp-server) on 127.0.0.1 for tests and benchmarks.
//!
//! ```text
//! cargo run --example rtsp-server -- [--port 0] [--mount /cam] [--delay-ms 0] (--file clip.mp4 | --launch "<pipeline>")
//! ```
//!
//! `--file` serves an H.264 MP4 as it is (no re-encoding), in real time;
//! `--launch` serves any pipeline whose payloader is named `pay0`.
//! `--delay-ms` holds the stream's start back after the first client asks,
//! so cameras asked at once by one daemon start (and send their key frames)
//! at different moments, as independent cameras do.
//! Prints `READY rtsp://127.0.0.1:PORT/MOUNT` once it listens; runs until killed.

use std::process::ExitCode;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

fn main() -> ExitCode {
    let mut port = "0".to_string();
    let mut mount = "/cam".to_string();
    let mut launch = None;
    let mut delay_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--port", Some(v)) => port = v,
            ("--mount", Some(v)) => mount = v,
            ("--delay-ms", Some(v)) => match v.parse() {
                Ok(ms) => delay_ms = ms,
                Err(_) => {
                    eprintln!("rtsp-server: --delay-ms takes milliseconds, not {v:?}");
                    return ExitCode::FAILURE;
                }
            },
            ("--file", Some(v)) => {
                launch = Some(format!(
                    "( filesrc location=\"{v}\" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
                ))
            }
            ("--launch", Some(v)) => launch = Some(format!("( {v} )")),
            _ => {
                eprintln!(
                    "usage: rtsp-server [--port N] [--mount /m] [--delay-ms MS] (--file F | --launch L)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(launch) = launch else {
        eprintln!("rtsp-server: --file or --launch is required");
        return ExitCode::FAILURE;
    };
    if let Err(e) = gst::init() {
        eprintln!("rtsp-server: {e}");
        return ExitCode::FAILURE;
    }
    let main_loop = glib::MainLoop::new(None, false);
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port);
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    // Every client shares one running pipeline, like a camera.
    factory.set_shared(true);
    if delay_ms > 0 {
        // Runs before the pipeline is built, in the asking client's context.
        factory.connect_media_configure(move |_, _| {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        });
    }
    let Some(mounts) = server.mount_points() else {
        eprintln!("rtsp-server: no mount points");
        return ExitCode::FAILURE;
    };
    mounts.add_factory(&mount, factory);
    if let Err(e) = server.attach(None) {
        eprintln!("rtsp-server: cannot listen on 127.0.0.1:{port}: {e}");
        return ExitCode::FAILURE;
    }
    println!("READY rtsp://127.0.0.1:{}{mount}", server.bound_port());
    main_loop.run();
    ExitCode::SUCCESS
}
