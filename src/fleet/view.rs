//! What this node knows of the fleet (the keys under the prefix, as the
//! watch delivers them) and what it should do about it: pure, so the rules
//! are tested without etcd.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::assign::{Member, assign};
use crate::config::{Config, StreamConfig};

/// A node's registration, the value of `PREFIX/nodes/NAME` (under its lease).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    #[serde(default)]
    pub max_streams: Option<usize>,
    #[serde(default)]
    pub models: BTreeSet<String>,
    /// Cameras this node cannot run, so the others do not wait for it.
    #[serde(default)]
    pub refused: BTreeSet<String>,
}

/// A camera as this node reads its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    /// The value as stored, checked again after a reload of the file.
    pub text: String,
    /// The model it names, as far as the value says (for the assignment,
    /// even when this node refuses the rest).
    pub model: String,
    /// The entry, or why this node refuses it.
    pub spec: Result<StreamConfig, String>,
}

/// The keys under the prefix, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Node(String),
    Stream(String),
    Owner(String),
    Other,
}

impl Key {
    pub fn parse(prefix: &str, key: &str) -> Key {
        let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
            return Key::Other;
        };
        match rest.split_once('/') {
            Some((_, name)) if name.is_empty() || name.contains('/') => Key::Other,
            Some(("nodes", n)) => Key::Node(n.into()),
            Some(("streams", n)) => Key::Stream(n.into()),
            Some(("owners", n)) => Key::Owner(n.into()),
            _ => Key::Other,
        }
    }
}

/// The fleet as seen from here.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub prefix: String,
    pub nodes: BTreeMap<String, Registration>,
    pub cameras: BTreeMap<String, Camera>,
    pub owners: BTreeMap<String, String>,
}

/// What this node should do now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Steps {
    /// Cameras to claim: assigned here, owned by nobody.
    pub claim: Vec<String>,
    /// Cameras to let go of: owned here, assigned elsewhere (or gone),
    /// and no longer running here.
    pub release: Vec<String>,
    /// The fleet cameras this node runs: owned here and still assigned here.
    pub run: BTreeMap<String, StreamConfig>,
}

impl View {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
            ..Default::default()
        }
    }

    /// A key was put (`Some(value)`) or deleted (`None`); `base` is this
    /// node's file, which a camera's spec is checked against.
    pub fn apply(&mut self, key: &str, value: Option<&str>, base: &Config) {
        match (Key::parse(&self.prefix, key), value) {
            (Key::Node(n), Some(v)) => {
                // A registration this version cannot read still counts as
                // a live node with no limit and no models.
                let r = serde_json::from_str(v).unwrap_or_default();
                self.nodes.insert(n, r);
            }
            (Key::Node(n), None) => {
                self.nodes.remove(&n);
            }
            (Key::Stream(n), Some(v)) => {
                let camera = self.camera(key, &n, v, base);
                self.cameras.insert(n, camera);
            }
            (Key::Stream(n), None) => {
                self.cameras.remove(&n);
            }
            (Key::Owner(n), Some(v)) => {
                self.owners.insert(n, v.into());
            }
            (Key::Owner(n), None) => {
                self.owners.remove(&n);
            }
            (Key::Other, _) => {}
        }
    }

    fn camera(&self, key: &str, name: &str, value: &str, base: &Config) -> Camera {
        let model = serde_yaml::from_str::<serde_yaml::Value>(value)
            .ok()
            .and_then(|v| v.get("model")?.as_str().map(String::from))
            .unwrap_or_default();
        let spec = crate::config::parse_stream(key, name, value, base).map_err(|e| e.to_string());
        Camera {
            text: value.into(),
            model,
            spec,
        }
    }

    /// Checks every camera again against a new file (after a reload).
    pub fn recheck(&mut self, base: &Config) {
        let prefix = self.prefix.clone();
        let texts: Vec<(String, String)> = self
            .cameras
            .iter()
            .map(|(n, c)| (n.clone(), c.text.clone()))
            .collect();
        for (name, text) in texts {
            let key = format!("{prefix}/streams/{name}");
            let camera = self.camera(&key, &name, &text, base);
            self.cameras.insert(name, camera);
        }
    }

    /// Cameras this node refuses: its checks say no.
    pub fn refused_here(&self) -> BTreeSet<String> {
        self.cameras
            .iter()
            .filter(|(_, c)| c.spec.is_err())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The steps for node `me`, which runs `running` of the fleet's cameras
    /// now. `me` counts as a member only while registered.
    pub fn steps(&self, me: &str, running: &BTreeSet<String>) -> Steps {
        let members: Vec<Member> = self
            .nodes
            .iter()
            .map(|(name, r)| Member {
                name: name.clone(),
                max_streams: r.max_streams,
                models: r.models.clone(),
                refused: r.refused.clone(),
            })
            .collect();
        let cameras: BTreeMap<String, String> = self
            .cameras
            .iter()
            .map(|(n, c)| (n.clone(), c.model.clone()))
            .collect();
        let live_owners: BTreeMap<String, String> = self
            .owners
            .iter()
            .filter(|(_, o)| self.nodes.contains_key(*o))
            .map(|(c, o)| (c.clone(), o.clone()))
            .collect();
        let plan = assign(&members, &cameras, &live_owners);
        let mine = |c: &str| plan.get(c).is_some_and(|n| n == me);
        let mut steps = Steps::default();
        for (name, camera) in &self.cameras {
            let owner = self.owners.get(name);
            match (owner, &camera.spec) {
                (None, Ok(_)) if mine(name) => steps.claim.push(name.clone()),
                (Some(o), Ok(spec)) if o == me && mine(name) => {
                    steps.run.insert(name.clone(), spec.clone());
                }
                _ => {}
            }
        }
        steps.release = self
            .owners
            .iter()
            .filter(|(c, o)| *o == me && !steps.run.contains_key(*c) && !running.contains(*c))
            .map(|(c, _)| c.clone())
            .collect();
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        serde_yaml::from_str("mqtt: {}\nmodels:\n  - name: coco\n    path: /m.onnx\n")
            .expect("base")
    }

    fn register(v: &mut View, node: &str) {
        let r = Registration {
            models: ["coco".to_string()].into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&r).expect("json");
        v.apply(&format!("/v/nodes/{node}"), Some(&json), &base());
    }

    fn camera(v: &mut View, name: &str, text: &str) {
        v.apply(&format!("/v/streams/{name}"), Some(text), &base());
    }

    const CAM: &str = r#"{"source": "test://", "model": "coco", "fps": 2}"#;

    #[test]
    fn keys_are_sorted_by_kind() {
        assert_eq!(Key::parse("/v", "/v/nodes/a"), Key::Node("a".into()));
        assert_eq!(Key::parse("/v", "/v/owners/c1"), Key::Owner("c1".into()));
        assert_eq!(Key::parse("/v", "/v/streams/c1"), Key::Stream("c1".into()));
        for other in [
            "/v/streams/",
            "/v/streams/a/b",
            "/vx/nodes/a",
            "/v/else/a",
            "/v",
        ] {
            assert_eq!(Key::parse("/v", other), Key::Other, "{other}");
        }
    }

    #[test]
    fn a_camera_is_claimed_run_then_released_when_it_moves() {
        let mut v = View::new("/v");
        register(&mut v, "a");
        camera(&mut v, "c1", CAM);
        let none = BTreeSet::new();
        let s = v.steps("a", &none);
        assert_eq!(s.claim, ["c1"]);
        assert!(s.run.is_empty());
        // b registers; still a's (it runs there, within its share).
        v.apply("/v/owners/c1", Some("a"), &base());
        register(&mut v, "b");
        let s = v.steps("a", &none);
        assert!(s.claim.is_empty() && s.release.is_empty());
        assert!(s.run.contains_key("c1"));
        assert!(v.steps("b", &none) == Steps::default());
        // The key goes: a stops it, then lets the owner key go.
        v.apply("/v/streams/c1", None, &base());
        let running: BTreeSet<String> = ["c1".to_string()].into();
        let s = v.steps("a", &running);
        assert!(s.run.is_empty() && s.release.is_empty(), "{s:?}");
        assert_eq!(v.steps("a", &none).release, ["c1"]);
    }

    #[test]
    fn a_dead_owner_leaves_its_camera_to_the_others() {
        let mut v = View::new("/v");
        register(&mut v, "a");
        register(&mut v, "b");
        camera(&mut v, "c1", CAM);
        camera(&mut v, "c2", CAM);
        v.apply("/v/owners/c1", Some("a"), &base());
        v.apply("/v/owners/c2", Some("b"), &base());
        // b's lease ends: its node key goes, its owner key with it.
        v.apply("/v/nodes/b", None, &base());
        assert!(
            v.steps("a", &BTreeSet::new()).claim.is_empty(),
            "owner key still there"
        );
        v.apply("/v/owners/c2", None, &base());
        assert_eq!(v.steps("a", &BTreeSet::new()).claim, ["c2"]);
    }

    #[test]
    fn an_invalid_spec_is_refused_and_not_claimed() {
        let mut v = View::new("/v");
        register(&mut v, "a");
        camera(
            &mut v,
            "bad",
            r#"{"source": "test://", "model": "coco", "fps": -1}"#,
        );
        camera(
            &mut v,
            "nomodel",
            r#"{"source": "test://", "model": "yolo"}"#,
        );
        assert!(v.steps("a", &BTreeSet::new()).claim.is_empty());
        assert_eq!(
            v.refused_here(),
            ["bad".to_string(), "nomodel".to_string()].into()
        );
        let why = v.cameras["bad"].spec.as_ref().expect_err("refused");
        assert!(why.starts_with("/v/streams/bad:1:"), "{why}");
    }

    #[test]
    fn an_unregistered_node_claims_nothing() {
        let mut v = View::new("/v");
        camera(&mut v, "c1", CAM);
        assert_eq!(v.steps("a", &BTreeSet::new()), Steps::default());
    }
}
