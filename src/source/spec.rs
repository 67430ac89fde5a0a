//! What a stream's `source` names, parsed and checked before any pipeline is built.

use std::fmt;
use std::path::PathBuf;

/// videotestsrc patterns, by their GStreamer nick.
const TEST_PATTERNS: &[&str] = &[
    "smpte",
    "snow",
    "black",
    "white",
    "red",
    "green",
    "blue",
    "checkers-1",
    "checkers-2",
    "checkers-4",
    "checkers-8",
    "circular",
    "blink",
    "smpte75",
    "zone-plate",
    "gamut",
    "chroma-zone-plate",
    "solid-color",
    "ball",
    "smpte100",
    "bar",
    "pinwheel",
    "spokes",
    "gradient",
    "colors",
    "smpte-rp-219",
];

#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// `test://[?pattern=ball&width=W&height=H&fps=N]`: a live synthetic pattern.
    Test {
        pattern: String,
        width: u32,
        height: u32,
        fps: u32,
    },
    /// `file:///path/clip.mp4`.
    File { path: PathBuf },
    /// `rtsp://[user:pass@]host[:port]/path`.
    Rtsp { url: String },
    /// `v4l2:///dev/videoN`.
    V4l2 { device: PathBuf },
    /// `http(s)://…`: MJPEG or HLS, whatever GStreamer's decodebin serves.
    Http { url: String },
    /// `gst:<launch fragment>` ending in raw video.
    Gst { launch: String },
}

impl SourceSpec {
    /// Parses a stream's `source`. Its credentials (URL passwords, `gst:`
    /// properties such as `user-pw`) are registered as secrets first, so
    /// no log line or status built from GStreamer's messages shows them.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        crate::redact::register_source(s);
        if let Some(launch) = s.strip_prefix("gst:") {
            let launch = launch.trim();
            if launch.is_empty() {
                return Err(
                    "gst: needs a launch fragment, e.g. \"videotestsrc is-live=true\"".into(),
                );
            }
            return Ok(SourceSpec::Gst {
                launch: launch.to_string(),
            });
        }
        let url = url::Url::parse(s).map_err(|e| {
            // `user:pass@host/path` without its scheme has no URL shape to
            // redact: such a source is not shown at all.
            let shown = if s.contains('@') {
                "(not shown: it may hold credentials)".to_string()
            } else {
                format!("{:?}", crate::redact::text(s))
            };
            format!(
                "source {shown} is not a URI ({e}); expected rtsp://, file://, v4l2://, http(s)://, test:// or gst:"
            )
        })?;
        match url.scheme() {
            "test" => parse_test(&url),
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    format!(
                        "{:?} is not an absolute file:/// path",
                        crate::redact::text(s)
                    )
                })?;
                Ok(SourceSpec::File { path })
            }
            "rtsp" | "rtsps" | "rtspt" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(format!("{:?} has no host", crate::redact::url(s)));
                }
                Ok(SourceSpec::Rtsp { url: s.to_string() })
            }
            "v4l2" => {
                let device = PathBuf::from(url.path());
                if !device.is_absolute() || url.path().len() < 2 {
                    return Err(format!(
                        "{:?}: expected v4l2:///dev/videoN",
                        crate::redact::text(s)
                    ));
                }
                Ok(SourceSpec::V4l2 { device })
            }
            "http" | "https" => Ok(SourceSpec::Http { url: s.to_string() }),
            other => Err(format!(
                "unsupported source scheme {other:?}; expected rtsp://, file://, v4l2://, http(s)://, test:// or gst:"
            )),
        }
    }

    /// Live sources produce frames in real time whether or not we keep up.
    /// `None`: only the running pipeline can tell (a `gst:` fragment).
    pub fn is_live(&self, realtime: bool) -> Option<bool> {
        match self {
            SourceSpec::File { .. } => Some(realtime),
            SourceSpec::Gst { .. } => None,
            _ => Some(true),
        }
    }
}

fn parse_test(url: &url::Url) -> Result<SourceSpec, String> {
    let mut spec = SourceSpec::Test {
        pattern: "smpte".into(),
        width: 1280,
        height: 720,
        fps: 30,
    };
    let SourceSpec::Test {
        pattern,
        width,
        height,
        fps,
    } = &mut spec
    else {
        unreachable!()
    };
    for (k, v) in url.query_pairs() {
        let num = |v: &str| -> Result<u32, String> {
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=8192).contains(n))
                .ok_or_else(|| format!("test:// option {k}={v:?} must be a number from 1 to 8192"))
        };
        match &*k {
            "pattern" => {
                if !TEST_PATTERNS.contains(&&*v) {
                    return Err(format!(
                        "test:// pattern {v:?} unknown; one of {}",
                        TEST_PATTERNS.join(", ")
                    ));
                }
                *pattern = v.into_owned();
            }
            "width" => *width = num(&v)?,
            "height" => *height = num(&v)?,
            "fps" => *fps = num(&v)?,
            other => {
                return Err(format!(
                    "unknown test:// option {other:?}; known: pattern, width, height, fps"
                ));
            }
        }
    }
    Ok(spec)
}

impl fmt::Display for SourceSpec {
    /// Safe for logs: passwords are hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Test {
                pattern,
                width,
                height,
                fps,
            } => write!(
                f,
                "test://?pattern={pattern}&width={width}&height={height}&fps={fps}"
            ),
            SourceSpec::File { path } => write!(f, "file://{}", path.display()),
            SourceSpec::Rtsp { url } | SourceSpec::Http { url } => {
                f.write_str(&crate::redact::url(url))
            }
            SourceSpec::V4l2 { device } => write!(f, "v4l2://{}", device.display()),
            SourceSpec::Gst { launch } => write!(f, "gst:{}", crate::redact::text(launch)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            SourceSpec::parse("test://").unwrap(),
            SourceSpec::Test {
                pattern: "smpte".into(),
                width: 1280,
                height: 720,
                fps: 30
            }
        );
        assert_eq!(
            SourceSpec::parse("test://?pattern=ball&width=320&height=240&fps=10").unwrap(),
            SourceSpec::Test {
                pattern: "ball".into(),
                width: 320,
                height: 240,
                fps: 10
            }
        );
        assert_eq!(
            SourceSpec::parse("file:///srv/a%20b.mp4").unwrap(),
            SourceSpec::File {
                path: "/srv/a b.mp4".into()
            }
        );
        assert!(matches!(
            SourceSpec::parse("rtsp://u:p@10.0.0.5/s").unwrap(),
            SourceSpec::Rtsp { .. }
        ));
        assert_eq!(
            SourceSpec::parse("v4l2:///dev/video0").unwrap(),
            SourceSpec::V4l2 {
                device: "/dev/video0".into()
            }
        );
        assert_eq!(
            SourceSpec::parse("gst: videotestsrc ! videoconvert").unwrap(),
            SourceSpec::Gst {
                launch: "videotestsrc ! videoconvert".into()
            }
        );
    }

    #[test]
    fn rejects_bad_sources_clearly() {
        for (s, needle) in [
            ("ftp://x/y", "unsupported source scheme \"ftp\""),
            ("not a uri", "is not a URI"),
            ("test://?pattern=nope", "pattern \"nope\" unknown"),
            ("test://?width=0", "width=\"0\""),
            ("test://?colour=red", "unknown test:// option"),
            ("rtsp:///nohost", "has no host"),
            ("v4l2://", "v4l2:///dev/videoN"),
            ("gst:", "launch fragment"),
        ] {
            let e = SourceSpec::parse(s).unwrap_err();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn errors_and_display_hide_the_credentials_of_the_source() {
        let s = SourceSpec::parse(
            "gst:rtspsrc location=rtsp://u:gst-pw-1@h/x user-pw=gst-pw-2 ! decodebin",
        )
        .unwrap();
        let shown = s.to_string();
        assert!(
            !shown.contains("gst-pw-1") && !shown.contains("gst-pw-2"),
            "{shown}"
        );
        // Registered: GStreamer's own wording of them is hidden too.
        assert_eq!(
            crate::redact::text("could not set property to \"gst-pw-2\""),
            "could not set property to \"***\""
        );
        for bad in [
            "file://u:file-pw-3@host/relative",
            "v4l2://u:v4l2-pw-4@",
            "nope u:plain-pw-5@x",
        ] {
            let e = SourceSpec::parse(bad).unwrap_err();
            assert!(!e.contains("-pw-"), "{bad}: {e}");
        }
    }

    #[test]
    fn display_hides_passwords() {
        let s = SourceSpec::parse("rtsp://admin:hunter2@cam/s").unwrap();
        assert_eq!(s.to_string(), "rtsp://admin:***@cam/s");
    }
}
