//! `visiond probe URI`, as a user runs it.

mod common;

use std::process::Command;

use common::*;

fn probe(uri: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_visiond"))
        .args(["probe", uri, "--timeout", "5"])
        .output()
        .expect("visiond probe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn probe_tells_codec_size_and_rate_of_files_cameras_and_patterns() {
    let (code, out, err) = probe(&format!("file://{}", media("photos.mp4").display()));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("H.264"), "{out}");
    assert!(
        out.contains("size:      1280x720") && out.contains("fps:       30.000"),
        "{out}"
    );
    assert!(
        out.contains("live:      false") && out.contains("duration:  9.000 s"),
        "{out}"
    );

    let rtsp = RtspServer::file(&media("chelsea.mp4"));
    let with_password = rtsp.url.replacen("rtsp://", "rtsp://u:probe-secret@", 1);
    let (code, out, err) = probe(&with_password);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("H.264") && out.contains("640x480"), "{out}");
    assert!(out.contains("rtsp://u:***@"), "{out}");
    assert!(!out.contains("probe-secret") && !err.contains("probe-secret"));

    let (code, out, _) = probe("test://?width=320&height=240&fps=15");
    assert_eq!(code, 0);
    assert!(
        out.contains("320x240")
            && out.contains("fps:       15.000")
            && out.contains("live:      true"),
        "{out}"
    );
}

#[test]
fn probe_says_clearly_what_is_wrong() {
    let (code, _, err) = probe(&format!("rtsp://u:pw-777@127.0.0.1:{}/none", free_port()));
    assert_eq!(code, 1);
    assert!(
        err.contains("rtsp://u:***@127.0.0.1") && !err.contains("pw-777"),
        "{err}"
    );
    let (code, _, err) = probe("file:///no/such/clip.mp4");
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/clip.mp4 not found"), "{err}");
    let (code, _, err) = probe("ftp://example/x");
    assert_eq!(code, 1);
    assert!(err.contains("unsupported source scheme"), "{err}");
}
