//! The fleet's cameras in the daemon: the config it runs is the file's
//! streams plus the fleet cameras this node owns, and a change of either
//! is applied as a reload plan.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::info;

use super::endpoint;
use super::live::Running;
use super::reload::{Ctx, reload};
use crate::config::Loaded;
use crate::fleet::Desired;

/// What the main loop waits for.
pub(super) enum Command {
    Signal(i32),
    /// The fleet cameras this node should run now.
    Fleet(u64, Desired),
}

/// The config to run: the file's streams, then the fleet's by name (a
/// fleet camera named like a stream of the file is left out: the file wins,
/// and the fleet loop refuses the camera when it rechecks).
pub(super) fn effective(file: &Loaded, fleet: &Desired) -> Loaded {
    let mut l = file.clone();
    for (name, spec) in fleet {
        if !file.config.streams.iter().any(|s| &s.name == name) {
            l.config.streams.push(spec.clone());
        }
    }
    l
}

/// Moves the running fleet cameras (`now`) to `desired`: first what goes
/// or changed stops, then each new one starts in a plan of its own, so one
/// that fails to start keeps no other from running. Returns those that
/// failed, with why.
pub(super) fn apply(
    desired: &Desired,
    now: &mut Desired,
    running: &mut Running,
    loaded: &mut Loaded,
    file: &Loaded,
    ctx: Ctx<'_>,
    http: &mut endpoint::Http,
) -> BTreeMap<String, String> {
    let keep: Desired = now
        .iter()
        .filter(|(n, s)| desired.get(*n) == Some(*s))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect();
    if keep.len() != now.len() {
        let started = Instant::now();
        if reload(running, loaded, effective(file, &keep), ctx, http, started).is_ok() {
            *now = keep;
        }
    }
    let mut failed = BTreeMap::new();
    for (name, spec) in desired {
        if now.contains_key(name) {
            continue;
        }
        let mut with = now.clone();
        with.insert(name.clone(), spec.clone());
        let started = Instant::now();
        match reload(running, loaded, effective(file, &with), ctx, http, started) {
            Ok(()) => *now = with,
            Err(why) => {
                failed.insert(name.clone(), why);
            }
        }
    }
    info!(cameras = %now.keys().cloned().collect::<Vec<_>>().join(", "), "fleet: running");
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(streams: &[&str]) -> Loaded {
        let mut text = String::from("mqtt: {}\nstreams:\n");
        for s in streams {
            text.push_str(&format!("  - {{name: {s}, source: test://, model: m}}\n"));
        }
        Loaded {
            file: "/x.yaml".into(),
            config: serde_yaml::from_str(&text).expect("config"),
            node: "n".into(),
            client_id: "c".into(),
            secrets: Vec::new(),
            locator: Default::default(),
        }
    }

    #[test]
    fn the_file_and_the_fleet_make_the_running_config() {
        let file = loaded(&["local"]);
        let cams = loaded(&["cam1", "local"]);
        let fleet: Desired = cams
            .config
            .streams
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        let run = effective(&file, &fleet);
        let names: Vec<&str> = run.config.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["local", "cam1"]);
        assert_eq!(run.config.streams[0], file.config.streams[0]);
    }
}
