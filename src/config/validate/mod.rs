//! What serde cannot check: names, references, ranges, URIs, files, and
//! (once the models are loaded) the labels streams name.

mod labels;
mod models;
mod rules;
mod service;
mod streams;

use super::Config;
pub use labels::{check_classify, check_labels};
use models::validate_models;
pub use rules::valid_name;
use rules::*;
use service::{validate_cluster, validate_http_access, validate_mqtt};
use streams::validate_streams;

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
