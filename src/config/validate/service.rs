//! The daemon's own sections: the broker, the status page's access, the
//! fleet.

use std::collections::HashSet;

use super::rules::*;
use crate::config::Config;

/// The most a lease may last: an hour without a word is a dead node.
const MAX_LEASE_S: u64 = 3600;

pub(super) fn validate_cluster(
    c: &crate::config::ClusterConfig,
    problems: &mut Vec<(String, String)>,
) {
    if c.etcd.is_empty() {
        problems.push((
            "cluster.etcd".into(),
            "name at least one etcd endpoint, e.g. http://10.0.0.2:2379".into(),
        ));
    }
    for (i, e) in c.etcd.iter().enumerate() {
        match url::Url::parse(e) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path().trim_matches('/').is_empty() =>
            {
                if u.scheme() == "http" && c.ca_file.is_some() {
                    problems.push((
                        format!("cluster.etcd[{i}]"),
                        "with ca_file, every endpoint must be https://".into(),
                    ));
                }
                if u.scheme() == "https" && c.ca_file.is_none() {
                    problems.push((
                        format!("cluster.etcd[{i}]"),
                        "https:// needs ca_file, the CA that signed etcd's certificate".into(),
                    ));
                }
            }
            _ => problems.push((
                format!("cluster.etcd[{i}]"),
                format!(
                    "{:?} is not an http(s)://host:port endpoint",
                    crate::redact::url(e)
                ),
            )),
        }
    }
    let p = &c.prefix;
    if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
        problems.push((
            "cluster.prefix".into(),
            format!("prefix {p:?} must be a key path like /visiond (no trailing /)"),
        ));
    }
    within(
        problems,
        "cluster.lease_s".into(),
        "lease_s",
        Some(c.lease_s),
        2,
        MAX_LEASE_S,
    );
    if c.max_streams == Some(0) {
        problems.push((
            "cluster.max_streams".into(),
            "max_streams 0 would take no camera: leave the cluster section out instead".into(),
        ));
    }
    tls_files("cluster", [&c.ca_file, &c.cert_file, &c.key_file], problems);
}

/// `ca_file`, `cert_file` and `key_file` of `section`: files that exist,
/// the last two together.
pub(super) fn tls_files(
    section: &str,
    [ca, cert, key]: [&Option<std::path::PathBuf>; 3],
    problems: &mut Vec<(String, String)>,
) {
    for (name, file) in [("ca_file", ca), ("cert_file", cert), ("key_file", key)] {
        if let Some(f) = file
            && !f.is_file()
        {
            problems.push((
                format!("{section}.{name}"),
                format!("{} not found", f.display()),
            ));
        }
    }
    if cert.is_some() != key.is_some() {
        problems.push((
            format!("{section}.cert_file"),
            "cert_file and key_file go together".into(),
        ));
    }
}

pub(super) fn validate_mqtt(config: &Config, problems: &mut Vec<(String, String)>) {
    let m = &config.mqtt;
    match url::Url::parse(&m.url) {
        Ok(u) if u.scheme() == "mqtt" && u.host_str().is_some() => {}
        Ok(u) if u.scheme() == "mqtts" && u.host_str().is_some() => {
            if m.ca_file.is_none() {
                problems.push((
                    "mqtt.url".into(),
                    "mqtts:// needs ca_file, the CA that signed the broker's certificate".into(),
                ));
            }
        }
        _ => problems.push((
            "mqtt.url".into(),
            format!(
                "{:?} is not an mqtt://host[:port] URL",
                crate::redact::url(&m.url)
            ),
        )),
    }
    tls_files("mqtt", [&m.ca_file, &m.cert_file, &m.key_file], problems);
    if m.qos > 1 {
        problems.push(("mqtt.qos".into(), "qos must be 0 or 1".into()));
    }
    if !["3.1.1", "5"].contains(&m.protocol.as_str()) {
        problems.push((
            "mqtt.protocol".into(),
            format!("protocol must be 3.1.1 or 5, not {:?}", m.protocol),
        ));
    }
    if m.spool_max_mb == 0 {
        problems.push((
            "mqtt.spool_max_mb".into(),
            "the spool needs at least 1 MiB".into(),
        ));
    }
    let p = problems;
    within(
        p,
        "mqtt.spool_max_mb".into(),
        "spool_max_mb",
        Some(m.spool_max_mb).filter(|&v| v > 0),
        1,
        MAX_SPOOL_MB,
    );
    within(
        p,
        "mqtt.keep_alive".into(),
        "keep_alive",
        Some(m.keep_alive),
        1,
        MAX_KEEP_ALIVE,
    );
    within(
        p,
        "mqtt.expiry".into(),
        "expiry",
        Some(m.expiry),
        0,
        MAX_EXPIRY,
    );
    if m.prefix.is_empty() || m.prefix.contains(['#', '+']) {
        p.push((
            "mqtt.prefix".into(),
            "prefix must be non-empty and contain no MQTT wildcard".into(),
        ));
    }
}

/// `http.users`, `http.tls`, `http.open`: usable, and not contradictory.
pub(super) fn validate_http_access(
    h: &crate::config::HttpConfig,
    problems: &mut Vec<(String, String)>,
) {
    if h.open && !h.users.is_empty() {
        problems.push((
            "http.open".into(),
            "open: true and users contradict each other: remove one".into(),
        ));
    }
    let mut seen = HashSet::new();
    for (i, u) in h.users.iter().enumerate() {
        let at = |field: &str| format!("http.users[{i}].{field}");
        if u.name.is_empty() || u.name.contains(':') || u.name.chars().any(char::is_control) {
            problems.push((
                at("name"),
                format!(
                    "{:?} cannot be typed into a browser's login (no ':', not empty)",
                    u.name
                ),
            ));
        } else if !seen.insert(&u.name) {
            problems.push((at("name"), format!("user {:?} is given twice", u.name)));
        }
        match (&u.password_hash, &u.password_hash_file) {
            (None, None) => problems.push((
                at("name"),
                "give password_hash (printed by `visiond passwd`) or password_hash_file".into(),
            )),
            (Some(hash), file) => {
                if let Some(why) = crate::password::hash_problem(hash) {
                    let field = if file.is_some() {
                        "password_hash_file"
                    } else {
                        "password_hash"
                    };
                    problems.push((at(field), why));
                }
            }
            // Unreadable: load.rs said so.
            (None, Some(_)) => {}
        }
    }
    if let Some(t) = &h.metrics_token
        && t.len() < 16
    {
        problems.push((
            "http.metrics_token".into(),
            "a token shorter than 16 characters is guessed: use e.g. `openssl rand -hex 24`".into(),
        ));
    }
    if let Some(tls) = &h.tls
        && !tls.pem.cert.is_empty()
        && !tls.pem.key.is_empty()
        && let Err(e) = crate::tls::server_config(&tls.pem.cert, &tls.pem.key)
    {
        let field = if e.starts_with("cert") { "cert" } else { "key" };
        let file = if field == "cert" { &tls.cert } else { &tls.key };
        problems.push((
            format!("http.tls.{field}"),
            format!("{}: {e}", file.display()),
        ));
    }
}
