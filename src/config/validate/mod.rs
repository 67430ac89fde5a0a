//! What serde cannot check: names, references, ranges, URIs, files, and
//! (once the models are loaded) the labels streams name.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;

mod labels;
mod models;
mod service;
mod streams;

use super::{Config, Loaded, Problem};
use crate::limits::{MAX_INPUT_SIDE, MAX_OBJECTS};
use crate::source::SourceSpec;
pub use labels::{check_classify, check_labels};
use models::validate_models;
use service::{validate_cluster, validate_http_access, validate_mqtt};
use streams::validate_streams;

// Bounds. Each is far beyond any sensible setting and short of where a value
// breaks something (an overflow, a division by zero, a busy loop, memory a
// device does not have), so a typo is caught before it runs.

/// Analysed frames per second: no camera delivers more; the fps gate
/// divides by it, so 1e12 makes a period of zero and 0 divides by zero.
const MAX_FPS: f64 = 1000.0;
/// Frames per run: each waits for the run; past 64 latency and memory grow
/// with no throughput gain on edge devices (docs/BENCHMARKS.md).
const MAX_BATCH: usize = 64;
/// Sessions (each holds the model) and intra-op threads: more than 256 is
/// more than the cores of any edge device, and each costs memory.
const MAX_WORKERS: usize = 256;
const MAX_THREADS: usize = 256;
/// Classifier calls per object: each costs a classification.
const MAX_ATTEMPTS: u32 = 100;
/// Classes published per frame: ImageNet has 1000.
const MAX_TOP_K: usize = 1000;
/// MQTT's keep-alive is a 16-bit number of seconds; 0 would turn pings off
/// and the link's timeout (3 keep-alives) with them.
const MAX_KEEP_ALIVE: u64 = u16::MAX as u64;
/// MQTT 5's message expiry interval is a 32-bit number of seconds.
const MAX_EXPIRY: u64 = u32::MAX as u64;
/// The spool in MiB: 1 TiB is more disk than an edge device has.
const MAX_SPOOL_MB: u64 = 1 << 20;
/// /healthz grace in seconds: a day; beyond it the check never fails (and
/// an Instant plus u64::MAX seconds panics).
const MAX_GRACE: u64 = 86_400;
/// Software decoder threads (0: one per core).
const MAX_DECODER_THREADS: u32 = 256;
/// RTSP jitter buffer: a minute of delay is no live view any more.
const MAX_LATENCY_MS: u32 = 60_000;
/// Capture sizes up to 8K, rates up to what cameras offer.
const MAX_CAPTURE_SIDE: u32 = 8192;
const MAX_FRAMERATE: u32 = 1000;

/// `name` must be within `lo..=hi`; NaN is not.
fn within<T: PartialOrd + Display>(
    problems: &mut Vec<(String, String)>,
    path: String,
    name: &str,
    value: Option<T>,
    lo: T,
    hi: T,
) {
    if let Some(v) = value
        && !(v >= lo && v <= hi)
    {
        problems.push((path, format!("{name} must be from {lo} to {hi}, not {v}")));
    }
}

/// Checks what serde cannot: names, references, ranges, URIs, files.
/// Returns (YAML path, message) pairs.
pub(super) fn validate(config: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(node) = &config.node
        && !valid_name(node)
    {
        problems.push((
            "node".into(),
            format!("node {node:?} must match [A-Za-z0-9_-]+ (it is used in topics)"),
        ));
    }
    validate_mqtt(config, &mut problems);
    if let Some(h) = &config.http {
        match h.listen.parse::<std::net::SocketAddr>() {
            Err(_) => problems.push((
                "http.listen".into(),
                format!("{:?} is not host:port, e.g. 127.0.0.1:9464", h.listen),
            )),
            // The page shows every camera: beyond loopback, someone must ask who.
            Ok(a) if !a.ip().is_loopback() && !h.open && h.users.is_empty() => problems.push((
                "http.listen".into(),
                format!(
                    "{} would show every camera to anyone who can reach it, unauthenticated: \
                     add a user under http (users: [{{name: admin, password_hash: ...}}], \
                     the hash printed by `visiond passwd`), or listen on 127.0.0.1 behind \
                     a reverse proxy that asks for a password, or add `open: true` to accept that",
                    h.listen
                ),
            )),
            Ok(_) => {}
        }
        validate_http_access(h, &mut problems);
        within(
            &mut problems,
            "http.grace".into(),
            "grace",
            Some(h.grace),
            0,
            MAX_GRACE,
        );
    }
    if let Some(ha) = &config.homeassistant {
        let p = &ha.prefix;
        if p.is_empty()
            || p.contains(['#', '+', '\0'])
            || p.starts_with('/')
            || p.ends_with('/')
            || p.split('/').any(str::is_empty)
        {
            problems.push((
                "homeassistant.prefix".into(),
                format!(
                    "prefix {p:?} must be topic levels without MQTT wildcards, e.g. homeassistant"
                ),
            ));
        }
    }
    if let Some(c) = &config.cluster {
        validate_cluster(c, &mut problems);
    }
    let model_names = validate_models(config, &mut problems);
    validate_streams(config, &model_names, &mut problems);
    problems
}

/// `; did you mean "x"?` for the closest of `known`, or nothing.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| {
            (
                strsim::jaro_winkler(&k.to_lowercase(), &name.to_lowercase()),
                k,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.7)
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
}

pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
