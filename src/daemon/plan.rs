//! A reload as a plan: what a new config changes against the running one,
//! worked out before anything is touched (as Vector diffs its topology), so
//! that it can be logged, tested and applied as one step.

use std::collections::BTreeSet;
use std::fmt;

use crate::config::{Loaded, StreamConfig};

/// Top-level settings a running process cannot take over: they need
/// `systemctl restart visiond`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RestartSetting {
    /// Every topic holds it, and the broker's last will.
    Node,
    /// The MQTT session is the broker's, under this id.
    ClientId,
    /// Broker, credentials, TLS, prefix, QoS, spool: the connection and the
    /// spool belong to the process.
    Mqtt,
    /// ONNX Runtime is loaded once per process.
    Onnxruntime,
    /// The fleet: endpoints, prefix and lease belong to the node's one
    /// etcd session.
    Cluster,
}

impl fmt::Display for RestartSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestartSetting::Node => "node",
            RestartSetting::ClientId => "mqtt.client_id",
            RestartSetting::Mqtt => "mqtt",
            RestartSetting::Onnxruntime => "onnxruntime",
            RestartSetting::Cluster => "cluster",
        })
    }
}

/// What runs now, by name: the plan is made against this, not against the
/// old file alone, so a stream that is not running is started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub streams: BTreeSet<String>,
    pub models: BTreeSet<String>,
}

impl Inventory {
    /// Everything `config` runs: its streams and the models they use.
    pub fn of(config: &Loaded) -> Self {
        Self {
            streams: config
                .config
                .streams
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            models: config
                .config
                .streams
                .iter()
                .map(|s| s.model.clone())
                .collect(),
        }
    }
}

/// The steps from the running config to a new one. Stream lists to start
/// are in the new file's order (it sets each stream's fps phase).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Unchanged and running: left alone.
    pub keep: Vec<String>,
    /// Kept streams whose zones or lines alone changed: the tracker takes
    /// the new ones and keeps its objects.
    pub regeometry: Vec<String>,
    /// Running, changed (or their model changed): stopped, started anew.
    pub restart: Vec<String>,
    /// Not running yet: started.
    pub add: Vec<String>,
    /// Running, gone from the new file: stopped.
    pub remove: Vec<String>,
    /// Models loaded before anything stops: new, or changed.
    pub load: Vec<String>,
    /// Engines ended once their streams have stopped: changed (a new one
    /// replaces them) or no longer used.
    pub drop: Vec<String>,
    /// `http` changed: the server restarts with the new settings.
    pub http: bool,
    /// Streams whose Home Assistant device is sent again or removed: added,
    /// removed, or with changed labels, zones, tracking or model; every
    /// stream of both files when the `homeassistant` section changed.
    pub discovery: Vec<String>,
    /// Changed settings that keep their running value until a restart.
    pub needs_restart: Vec<RestartSetting>,
}

impl Plan {
    pub fn new(old: &Loaded, new: &Loaded, running: &Inventory) -> Self {
        let mut plan = Plan::default();
        let model_changed = |m: &str| old.model(m) != new.model(m);
        for s in &new.config.streams {
            if !plan.load.contains(&s.model)
                && (!running.models.contains(&s.model) || model_changed(&s.model))
            {
                plan.load.push(s.model.clone());
            }
        }
        plan.drop = running
            .models
            .iter()
            .filter(|m| plan.load.contains(m) || !uses(new, m))
            .cloned()
            .collect();
        for s in &new.config.streams {
            let list = if !running.streams.contains(&s.name) {
                &mut plan.add
            } else if plan.load.contains(&s.model) {
                &mut plan.restart
            } else if stream(old, &s.name) == Some(s) {
                &mut plan.keep
            } else if stream(old, &s.name)
                .map(|o| with_geometry_of(o, s))
                .as_ref()
                == Some(s)
            {
                plan.regeometry.push(s.name.clone());
                &mut plan.keep
            } else {
                &mut plan.restart
            };
            list.push(s.name.clone());
        }
        plan.remove = running
            .streams
            .iter()
            .filter(|n| stream(new, n).is_none())
            .cloned()
            .collect();

        plan.http = old.config.http != new.config.http;
        plan.discovery = discovery(old, new, &plan);
        let mqtt_without_id = |l: &Loaded| {
            let mut m = l.config.mqtt.clone();
            m.client_id = None;
            m
        };
        for (changed, setting) in [
            (old.node != new.node, RestartSetting::Node),
            (old.client_id != new.client_id, RestartSetting::ClientId),
            (
                mqtt_without_id(old) != mqtt_without_id(new),
                RestartSetting::Mqtt,
            ),
            (
                old.config.onnxruntime != new.config.onnxruntime,
                RestartSetting::Onnxruntime,
            ),
            (
                old.config.cluster != new.config.cluster,
                RestartSetting::Cluster,
            ),
        ] {
            if changed {
                plan.needs_restart.push(setting);
            }
        }
        plan
    }

    /// The streams that stop before the new ones start.
    pub fn stopping(&self) -> impl Iterator<Item = &String> {
        self.restart.iter().chain(&self.remove)
    }

    /// Whether a stream named `name` starts (restarted or added).
    pub fn starts(&self, name: &str) -> bool {
        self.restart.iter().chain(&self.add).any(|n| n == name)
    }

    /// What the daemon runs once the plan is applied: `new`, except the
    /// settings that take a restart, which keep their running value (so the
    /// next reload still sees them as changed, and says so again).
    pub fn running_config(old: &Loaded, new: &Loaded) -> Loaded {
        let mut running = new.clone();
        running.node = old.node.clone();
        running.client_id = old.client_id.clone();
        running.config.mqtt = old.config.mqtt.clone();
        running.config.onnxruntime = old.config.onnxruntime.clone();
        running.config.cluster = old.config.cluster.clone();
        running
    }

    /// One line naming what waits for a restart, or `None`.
    pub fn restart_notice(&self, old: &Loaded, new: &Loaded) -> Option<String> {
        if self.needs_restart.is_empty() {
            return None;
        }
        let what: Vec<String> = self
            .needs_restart
            .iter()
            .map(|s| match s {
                RestartSetting::Node => format!("node ({} -> {})", old.node, new.node),
                RestartSetting::Onnxruntime => format!(
                    "onnxruntime ({} -> {})",
                    path_or_default(old),
                    path_or_default(new)
                ),
                // MQTT settings hold credentials: named, never shown.
                other => other.to_string(),
            })
            .collect();
        Some(format!(
            "reload: {} changed; the running value stays until a restart (systemctl restart visiond)",
            what.join(", ")
        ))
    }
}

fn path_or_default(l: &Loaded) -> String {
    l.config
        .onnxruntime
        .as_ref()
        .map_or("the default".into(), |p| p.display().to_string())
}

fn stream<'a>(l: &'a Loaded, name: &str) -> Option<&'a StreamConfig> {
    l.config.streams.iter().find(|s| s.name == name)
}

/// `old` with the zones and lines of `new`.
fn with_geometry_of(old: &StreamConfig, new: &StreamConfig) -> StreamConfig {
    StreamConfig {
        zones: new.zones.clone(),
        lines: new.lines.clone(),
        ..old.clone()
    }
}

/// What of a stream its Home Assistant device shows.
fn entities_of(s: &StreamConfig) -> impl PartialEq + '_ {
    let zones: Vec<_> = s.zones.iter().map(|z| (&z.name, &z.labels)).collect();
    (&s.labels, zones, s.track.enabled(), &s.model)
}

fn discovery(old: &Loaded, new: &Loaded, plan: &Plan) -> Vec<String> {
    let (o, n) = (&old.config.homeassistant, &new.config.homeassistant);
    let mut out = BTreeSet::new();
    if o.is_none() && n.is_none() {
        return Vec::new();
    }
    let names =
        |l: &Loaded| -> Vec<String> { l.config.streams.iter().map(|s| s.name.clone()).collect() };
    if o != n {
        out.extend(names(old));
        out.extend(names(new));
    } else {
        out.extend(plan.add.iter().chain(&plan.remove).cloned());
        for s in &new.config.streams {
            let changed = stream(old, &s.name)
                .is_some_and(|o| entities_of(o) != entities_of(s) || plan.load.contains(&s.model));
            if changed {
                out.insert(s.name.clone());
            }
        }
    }
    out.into_iter().collect()
}

fn uses(l: &Loaded, model: &str) -> bool {
    l.config.streams.iter().any(|s| s.model == model)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const MODELS: &str = "models:\n  - {name: m1, path: m1.onnx}\n  - {name: m2, path: m2.onnx}\n";

    /// A valid config from `top` (top-level keys but models and streams)
    /// and `streams` (flow-style entries); model files exist, empty.
    pub(crate) fn loaded(top: &str, streams: &[&str]) -> Loaded {
        // One folder for every run: the files are the same, nothing piles up.
        let dir = std::env::temp_dir().join("visiond-plan-tests");
        std::fs::create_dir_all(&dir).expect("temp dir");
        for m in ["m1.onnx", "m2.onnx"] {
            std::fs::write(dir.join(m), b"x").expect("model file");
        }
        let mut text = format!("node: n\nmqtt: {{url: \"mqtt://h\"}}\n{top}\n{MODELS}streams:\n");
        for s in streams {
            text.push_str(&format!("  - {s}\n"));
        }
        if streams.is_empty() {
            text.push_str("  []\n");
        }
        crate::config::parse(&dir.join("c.yaml"), &text, |_| None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const A: &str = "{name: a, source: \"test://\", model: m1}";
    const B: &str = "{name: b, source: \"test://\", model: m1}";
    const C: &str = "{name: c, source: \"test://\", model: m2}";

    fn plan(old: &Loaded, new: &Loaded) -> Plan {
        Plan::new(old, new, &Inventory::of(old))
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let old = loaded("", &[A, B]);
        let p = plan(&old, &old.clone());
        assert_eq!(
            p,
            Plan {
                keep: names(&["a", "b"]),
                ..Plan::default()
            }
        );
    }

    #[test]
    fn a_changed_stream_restarts_and_the_others_stay() {
        let old = loaded("", &[A, B]);
        let new = loaded(
            "",
            &[A, "{name: b, source: \"test://\", model: m1, fps: 1}"],
        );
        let p = plan(&old, &new);
        assert_eq!((p.keep, p.restart), (names(&["a"]), names(&["b"])));
        assert!(p.load.is_empty() && p.drop.is_empty() && p.add.is_empty());
    }

    #[test]
    fn a_stream_whose_zones_alone_changed_keeps_running_and_its_objects() {
        let zone = "zones: [{name: z, polygon: [[0, 0], [1, 0], [1, 1]]}]";
        let old = loaded("", &[A, B]);
        let b = B.trim_end_matches('}');
        let new = loaded("", &[A, &format!("{b}, {zone}}}")]);
        let p = plan(&old, &new);
        assert_eq!(p.keep, names(&["a", "b"]));
        assert_eq!(p.regeometry, names(&["b"]));
        assert!(p.restart.is_empty());
        // With something else changed too, it restarts as before.
        let both = loaded("", &[A, &format!("{b}, fps: 3, {zone}}}")]);
        let p = plan(&old, &both);
        assert_eq!((p.restart, p.regeometry), (names(&["b"]), Vec::new()));
    }

    #[test]
    fn streams_are_added_and_removed_with_their_models() {
        let old = loaded("", &[A, B]);
        let new = loaded("", &[A, C]);
        let p = plan(&old, &new);
        assert_eq!(p.keep, names(&["a"]));
        assert_eq!((p.add, p.remove), (names(&["c"]), names(&["b"])));
        assert_eq!((p.load, p.drop), (names(&["m2"]), vec![]));
        // The last stream of a model goes: its engine goes too.
        let p = plan(&new, &loaded("", &[A]));
        assert_eq!((p.remove, p.drop), (names(&["c"]), names(&["m2"])));
    }

    #[test]
    fn a_changed_model_is_reloaded_and_restarts_every_stream_on_it() {
        let old = loaded("", &[A, B, C]);
        let mut new = old.clone();
        new.config.models[0].threads = Some(2);
        let p = plan(&old, &new);
        assert_eq!(p.load, names(&["m1"]));
        assert_eq!(p.drop, names(&["m1"]));
        assert_eq!((p.keep, p.restart), (names(&["c"]), names(&["a", "b"])));
    }

    #[test]
    fn a_stream_moved_to_another_model_restarts() {
        let old = loaded("", &[A, C]);
        let new = loaded("", &["{name: a, source: \"test://\", model: m2}", C]);
        let p = plan(&old, &new);
        assert_eq!((p.keep, p.restart), (names(&["c"]), names(&["a"])));
        assert_eq!((p.load, p.drop), (vec![], names(&["m1"])));
    }

    #[test]
    fn what_is_not_running_is_started_whatever_the_old_file_says() {
        let old = loaded("", &[A, B]);
        let mut running = Inventory::of(&old);
        running.streams.remove("b");
        running.models.clear();
        let p = Plan::new(&old, &old, &running);
        assert_eq!((p.keep, p.add), (vec![], names(&["b"])));
        assert_eq!(p.restart, names(&["a"]), "its model is loaded anew");
        assert_eq!(p.load, names(&["m1"]));
    }

    #[test]
    fn process_settings_are_named_not_applied() {
        let old = loaded("", &[A]);
        let new = loaded("onnxruntime: /opt/ort/libonnxruntime.so", &[A]);
        let p = plan(&old, &new);
        assert_eq!(p.needs_restart, vec![RestartSetting::Onnxruntime]);
        assert_eq!(p.keep, names(&["a"]), "streams are not touched");
        let notice = p.restart_notice(&old, &new).expect("a notice");
        assert!(
            notice.contains("onnxruntime (the default -> /opt/ort/libonnxruntime.so)"),
            "{notice}"
        );
        let running = Plan::running_config(&old, &new);
        assert_eq!(running.config.onnxruntime, None);
        // Still different next time: the notice comes again.
        assert_eq!(plan(&running, &new).needs_restart, p.needs_restart);

        let mut new = old.clone();
        new.node = "other".into();
        new.client_id = "visiond-other".into();
        new.config.mqtt.password = Some("hunter2".into());
        let p = plan(&old, &new);
        assert_eq!(
            p.needs_restart,
            vec![
                RestartSetting::Node,
                RestartSetting::ClientId,
                RestartSetting::Mqtt
            ]
        );
        let notice = p.restart_notice(&old, &new).expect("a notice");
        assert!(notice.contains("node (n -> other), mqtt.client_id, mqtt changed"));
        assert!(!notice.contains("hunter2"));
        let running = Plan::running_config(&old, &new);
        assert_eq!((running.node, running.client_id), (old.node, old.client_id));
        assert_eq!(running.config.mqtt, old.config.mqtt);
    }

    #[test]
    fn an_explicit_client_id_is_one_change_not_two() {
        let old = loaded("", &[A]);
        let new = loaded("", &[A]);
        let mut new = new;
        new.config.mqtt.client_id = Some("id2".into());
        new.client_id = "id2".into();
        assert_eq!(
            plan(&old, &new).needs_restart,
            vec![RestartSetting::ClientId]
        );
    }

    #[test]
    fn home_assistant_devices_follow_the_section_labels_and_zones() {
        let ha = "homeassistant: {}";
        // Without the section nothing is discovered, whatever changes.
        assert!(
            plan(&loaded("", &[A]), &loaded("", &[B]))
                .discovery
                .is_empty()
        );
        // Turned on, off, or to another prefix: every device.
        assert_eq!(
            plan(&loaded("", &[A]), &loaded(ha, &[A, B])).discovery,
            names(&["a", "b"])
        );
        assert_eq!(
            plan(&loaded(ha, &[A, B]), &loaded("", &[A])).discovery,
            names(&["a", "b"])
        );
        let other = "homeassistant: {prefix: ha2}";
        assert_eq!(
            plan(&loaded(ha, &[A]), &loaded(other, &[A])).discovery,
            names(&["a"])
        );
        // The same file: none.
        assert!(
            plan(&loaded(ha, &[A, B]), &loaded(ha, &[A, B]))
                .discovery
                .is_empty()
        );
        // Added and removed streams.
        assert_eq!(
            plan(&loaded(ha, &[A, B]), &loaded(ha, &[A, C])).discovery,
            names(&["b", "c"])
        );
        // Labels, zones, tracking: that stream's device. An fps change
        // restarts the stream but shows the same entities.
        let b = B.trim_end_matches('}');
        for changed in [
            format!("{b}, labels: [person]}}"),
            format!("{b}, zones: [{{name: z, polygon: [[0, 0], [1, 0], [1, 1]]}}]}}"),
            format!("{b}, track: false}}"),
        ] {
            let p = plan(&loaded(ha, &[A, B]), &loaded(ha, &[A, &changed]));
            assert_eq!(p.discovery, names(&["b"]), "{changed}");
        }
        let p = plan(
            &loaded(ha, &[A, B]),
            &loaded(ha, &[A, &format!("{b}, fps: 2}}")]),
        );
        assert_eq!(p.restart, names(&["b"]));
        assert!(p.discovery.is_empty());
        // A model whose file changed may have other labels.
        let old = loaded(ha, &[A, C]);
        let mut new = old.clone();
        new.config.models[1].threads = Some(2);
        assert_eq!(plan(&old, &new).discovery, names(&["c"]));
    }

    #[test]
    fn http_changes_are_in_the_plan() {
        let old = loaded("", &[A]);
        let new = loaded("http: {listen: \"127.0.0.1:9999\"}", &[A]);
        let p = plan(&old, &new);
        assert!(p.http && p.needs_restart.is_empty());
        assert!(!plan(&new, &new).http);
        let grace = loaded("http: {listen: \"127.0.0.1:9999\", grace: 5}", &[A]);
        assert!(plan(&new, &grace).http);
        assert_eq!(
            Plan::running_config(&old, &new).config.http,
            new.config.http
        );
    }
}
