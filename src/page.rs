//! The status page at `/` on `http.listen`: every stream with its state,
//! rates and open objects, and its latest analysed frame with boxes, track
//! IDs, zones and lines drawn (`/streams/S/latest.jpg`). Plain HTML made on
//! the server, reloaded by a meta refresh; pictures are rendered per
//! request, never per frame.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::route::Routes;
use crate::stats::StreamStats;

/// Seconds between reloads of the page.
const REFRESH_S: u32 = 3;

pub struct StatusPage {
    routes: Arc<Routes>,
    fleet: Option<Arc<crate::fleet::FleetState>>,
}

/// An answer: status code, body, content type.
pub type Reply = (u16, Vec<u8>, &'static str);

impl StatusPage {
    pub fn new(routes: Arc<Routes>) -> Self {
        Self {
            routes,
            fleet: None,
        }
    }

    /// Shows this node's part in a fleet too.
    pub fn with_fleet(mut self, fleet: Option<Arc<crate::fleet::FleetState>>) -> Self {
        self.fleet = fleet;
        self
    }

    /// The page for `streams` (the configured ones, sorted by name).
    pub fn html(&self, streams: &[(String, Arc<StreamStats>)]) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
             <title>visiond</title><style>\
             body{{font-family:sans-serif;margin:1em;background:#f4f4f4}}\
             section{{background:#fff;padding:.5em 1em;margin-bottom:1em}}\
             img{{max-width:100%;height:auto}}td{{padding-right:1em}}\
             </style></head><body><h1>visiond</h1>\n"
        );
        if let Some(f) = &self.fleet {
            out.push_str(&fleet_line(f));
        }
        if streams.is_empty() {
            out.push_str("<p>No streams.</p>\n");
        }
        for (name, stats) in streams {
            let view = self.routes.view(name).unwrap_or_default();
            let state = view
                .status
                .as_ref()
                .map(|s| s.state)
                .or_else(|| stats.state.lock().ok().and_then(|s| *s).map(|s| s.0));
            let state = state.map_or("starting", |s| s.as_str());
            let _ = write!(
                out,
                "<section><h2>{}</h2><table><tr><td>state</td><td class=\"state\">{}</td></tr>",
                escape(name),
                escape(state)
            );
            if let Some(s) = &view.status {
                let _ = write!(
                    out,
                    "<tr><td>frames/s in</td><td>{:.1}</td></tr>\
                     <tr><td>frames/s analysed</td><td>{:.1}</td></tr>",
                    s.fps_in, s.fps_analysed
                );
                if let Some(e) = &s.error {
                    let _ = write!(out, "<tr><td>error</td><td>{}</td></tr>", escape(e));
                }
            }
            let _ = write!(
                out,
                "<tr><td>analysed</td><td>{}</td></tr><tr><td>dropped (model busy)</td><td>{}</td></tr>",
                stats.frames_analysed.load(Relaxed),
                stats.frames_dropped.load(Relaxed)
            );
            let open: Vec<String> = view
                .open
                .iter()
                .map(|(l, n)| format!("{} {n}", escape(l)))
                .collect();
            let open = if open.is_empty() {
                "none".to_string()
            } else {
                open.join(", ")
            };
            let _ = write!(out, "<tr><td>objects</td><td>{open}</td></tr></table>");
            if view.has_frame {
                let _ = write!(
                    out,
                    "<p><img src=\"/streams/{}/latest.jpg\" alt=\"latest analysed frame of {}\"></p>",
                    escape(&encode(name)),
                    escape(name)
                );
            } else {
                // Nothing analysed yet, or `snapshots: false` (no frames kept).
                out.push_str("<p>No picture yet (none with <code>snapshots: false</code>).</p>");
            }
            out.push_str("</section>\n");
        }
        out.push_str("</body></html>\n");
        out
    }

    /// `/streams/S/latest.jpg`; `known` says whether S is a stream.
    pub fn latest(&self, stream: &str, known: bool) -> Reply {
        let text = |code, body: &str| (code, body.as_bytes().to_vec(), "text/plain");
        if !known {
            return text(404, "no such stream\n");
        }
        match self.routes.latest_jpeg(stream) {
            None => text(503, "no frame analysed yet\n"),
            Some(Ok(jpeg)) => (200, jpeg, "image/jpeg"),
            Some(Err(e)) => text(500, &format!("cannot render the frame: {e}\n")),
        }
    }
}

/// Text for HTML, in elements and attribute values alike.
/// One paragraph on the fleet: etcd, the lease, the cameras owned and refused.
fn fleet_line(f: &crate::fleet::FleetState) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let yes_no = |b: bool, yes: &str, no: &str| if b { yes } else { no }.to_string();
    let mut line = format!(
        "<p>Fleet: etcd {}, lease {}, {} cameras owned here, {} nodes live.",
        yes_no(f.etcd_up.load(Relaxed), "reachable", "<b>unreachable</b>"),
        yes_no(f.lease_ok.load(Relaxed), "alive", "<b>lapsed</b>"),
        f.owned.load(Relaxed),
        f.nodes.load(Relaxed),
    );
    for (name, why) in crate::sync::locked(&f.refused).iter() {
        let _ = write!(line, "<br>Refused <b>{}</b>: {}", escape(name), escape(why));
    }
    line + "</p>\n"
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as one URL path segment: unreserved characters stay.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The inverse of [`encode`]; `None` for a malformed escape or non-UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The stream named by a `/streams/S/latest.jpg` path.
pub fn latest_path(path: &str) -> Option<String> {
    let rest = path
        .strip_prefix("/streams/")?
        .strip_suffix("/latest.jpg")?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    decode(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Publish;
    use crate::status::{StreamState, StreamStatus};

    struct Nowhere;
    impl Publish for Nowhere {
        fn analysis(&self, _: &crate::frame::Analysis) {}
        fn status(&self, _: &str, _: &StreamStatus) {}
        fn removed(&self, _: &str) {}
        fn events(&self, _: &str, _: &str, _: &[crate::tracking::Event]) {}
        fn tallies(&self, _: &str, _: &[crate::tracking::Tally], _: std::time::SystemTime) {}
        fn snapshot(&self, _: &str, _: &str, _: &[u8]) {}
    }

    #[test]
    fn names_are_escaped_and_paths_round_trip() {
        assert_eq!(
            escape("<b>\"a\" & 'b'"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;"
        );
        let name = "door <1> & ü/x";
        assert_eq!(
            latest_path(&format!("/streams/{}/latest.jpg", encode(name))).as_deref(),
            Some(name)
        );
        assert_eq!(latest_path("/streams//latest.jpg"), None);
        assert_eq!(latest_path("/streams/a/b/latest.jpg"), None);
        assert_eq!(latest_path("/streams/%zz/latest.jpg"), None);
        assert_eq!(latest_path("/streams/%ff/latest.jpg"), None, "not UTF-8");
        assert_eq!(latest_path("/streams/%4/latest.jpg"), None);
    }

    #[test]
    fn the_page_lists_streams_with_their_states_and_escapes_their_names() {
        let routes = Arc::new(Routes::new(Arc::new(Nowhere)));
        let mut st = StreamStatus::new(StreamState::Reconnecting, std::time::SystemTime::now());
        st.error = Some("<script>alert(1)</script>".into());
        st.fps_in = 12.5;
        routes.status("<b>cam</b>", st);
        let page = StatusPage::new(routes);
        let idle = Arc::new(StreamStats::default());
        idle.set_state(
            &StreamStatus::new(StreamState::Playing, std::time::SystemTime::now()),
            std::time::Instant::now(),
        );
        let html = page.html(&[("<b>cam</b>".into(), Arc::default()), ("yard".into(), idle)]);
        assert!(html.contains("<h2>&lt;b&gt;cam&lt;/b&gt;</h2>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains("<td class=\"state\">reconnecting</td>"),
            "{html}"
        );
        assert!(html.contains("<td>12.5</td>"), "{html}");
        assert!(html.contains("<h2>yard</h2>"), "{html}");
        assert!(html.contains("<td class=\"state\">playing</td>"), "{html}");
        assert!(html.contains("No picture yet"), "{html}");
        assert_eq!(page.latest("nope", false).0, 404);
        assert_eq!(page.latest("yard", true).0, 503);
    }
}
