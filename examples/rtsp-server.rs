//! A real RTSP server (gst-rtsp-server) on 127.0.0.1 for tests and benchmarks.
//!
//! ```text
//! cargo run --example rtsp-server -- [--port 0] [--mount /cam] (--file clip.mp4 | --launch "<pipeline>")
//! ```
//!
//! `--file` serves an H.264 MP4 as it is (no re-encoding), in real time;
//! `--launch` serves any pipeline whose payloader is named `pay0`.
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
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--port", Some(v)) => port = v,
            ("--mount", Some(v)) => mount = v,
            ("--file", Some(v)) => {
                launch = Some(format!(
                    "( filesrc location=\"{v}\" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
                ))
            }
            ("--launch", Some(v)) => launch = Some(format!("( {v} )")),
            _ => {
                eprintln!("usage: rtsp-server [--port N] [--mount /m] (--file F | --launch L)");
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
