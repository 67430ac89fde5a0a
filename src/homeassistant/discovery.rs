//! Discovery configs from resolved settings: pure functions, one device per
//! stream and one for the node, so every payload can be checked alone.

use std::collections::BTreeMap;

use super::schema::{Availability, Component, Device, DeviceConfig, Origin};
use crate::publish::{Topics, level};
use crate::tracking::Tally;

/// Who publishes the configs: `o.name`, and how visiond finds its own.
pub const ORIGIN: &str = "visiond";
const SUPPORT_URL: &str = "https://github.com/visiond/visiond";
/// Every state `P/N/S/status` can say (PRODUCT.md).
pub const STATES: [&str; 6] = [
    "starting",
    "playing",
    "paused",
    "reconnecting",
    "failed",
    "stopped",
];
/// Counts and occupancy mean something only while frames are analysed.
const PLAYING: &str = "{{ 'online' if value_json.state == 'playing' else 'offline' }}";

/// Where discovery goes and what it points at.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// Home Assistant's discovery prefix.
    pub prefix: String,
    pub node: String,
    /// visiond's own topics (`P/N/...`).
    pub topics: Topics,
}

/// What one stream's device shows, resolved from its config and its model.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntities {
    pub name: String,
    pub model: String,
    /// Labels with counts, occupancy and snapshots; empty for a stream that
    /// does not track (it publishes no counts).
    pub labels: Vec<String>,
    /// Zones and the labels counted in each.
    pub zones: Vec<(String, Vec<String>)>,
    /// The detector's labels that `classify` rules name more finely: a
    /// sensor each with the latest sub-label.
    pub sub_labels: Vec<String>,
}

/// A topic level or id as Home Assistant takes it: `[A-Za-z0-9_-]`.
pub fn object_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An entity id part: lowercase `[a-z0-9_]`, no doubled, leading or
/// trailing underscore (Home Assistant refuses those).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    out.trim_end_matches('_').to_string()
}

impl Discovery {
    /// `visiond_N`: the node's device.
    pub fn node_id(&self) -> String {
        format!("visiond_{}", self.node)
    }

    /// `visiond_N_S`: a stream's device.
    pub fn stream_id(&self, stream: &str) -> String {
        format!("visiond_{}_{}", self.node, stream)
    }

    pub fn device_topic(&self, object_id: &str) -> String {
        format!("{}/device/{object_id}/config", self.prefix)
    }

    /// Where Home Assistant announces itself (`online`).
    pub fn birth_topic(&self) -> String {
        format!("{}/status", self.prefix)
    }

    /// Every device config, node first, as retained messages.
    pub fn configs(&self, streams: &[StreamEntities]) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![self.node_config()];
        out.extend(streams.iter().map(|s| self.stream_config(s)));
        out.into_iter()
            .map(|(topic, config)| {
                // Plain data: serialising it cannot fail.
                let body = serde_json::to_vec(&config).unwrap_or_default();
                (topic, body)
            })
            .collect()
    }

    fn origin(&self) -> Origin {
        Origin {
            name: ORIGIN.into(),
            sw_version: env!("CARGO_PKG_VERSION").into(),
            support_url: SUPPORT_URL.into(),
        }
    }

    fn online(&self) -> Vec<Availability> {
        vec![Availability {
            topic: self.topics.available(),
            value_template: None,
        }]
    }

    pub fn node_config(&self) -> (String, DeviceConfig) {
        let id = self.node_id();
        let online = Component {
            platform: "binary_sensor".into(),
            name: "Online".into(),
            unique_id: format!("{id}_online"),
            default_entity_id: format!("binary_sensor.{}_online", slug(&id)),
            state_topic: Some(self.topics.available()),
            payload_on: Some("online".into()),
            payload_off: Some("offline".into()),
            device_class: Some("connectivity".into()),
            entity_category: Some("diagnostic".into()),
            // Its own state is the availability: never unavailable itself.
            availability: Vec::new(),
            ..Component::default()
        };
        let config = DeviceConfig {
            device: Device {
                identifiers: vec![id.clone()],
                name: self.node.clone(),
                manufacturer: "visiond".into(),
                model: "visiond node".into(),
                sw_version: env!("CARGO_PKG_VERSION").into(),
                via_device: None,
            },
            origin: self.origin(),
            components: BTreeMap::from([("online".to_string(), online)]),
            qos: 1,
        };
        (self.device_topic(&id), config)
    }

    pub fn stream_config(&self, s: &StreamEntities) -> (String, DeviceConfig) {
        let id = self.stream_id(&s.name);
        let mut c = Components::new(&id);
        self.counts(&mut c, s);
        self.pictures_and_names(&mut c, s);
        self.controls(&mut c, s);
        let config = DeviceConfig {
            device: Device {
                identifiers: vec![id.clone()],
                name: s.name.clone(),
                manufacturer: "visiond".into(),
                model: format!("visiond stream ({})", s.model),
                sw_version: env!("CARGO_PKG_VERSION").into(),
                via_device: Some(self.node_id()),
            },
            origin: self.origin(),
            components: c.done(),
            qos: 1,
        };
        (self.device_topic(&id), config)
    }

    /// Occupancy and count per label, in the whole view and per zone:
    /// available only while the stream is analysed.
    fn counts(&self, c: &mut Components, s: &StreamEntities) {
        let status = self.topics.status(&s.name);
        let analysed = {
            let mut a = self.online();
            a.push(Availability {
                topic: status.clone(),
                value_template: Some(PLAYING.into()),
            });
            a
        };
        let count_topic = |zone: Option<&str>, label: &str| {
            let label = label.into();
            let t = match zone {
                None => Tally::Objects { label, count: 0 },
                Some(z) => Tally::Zone {
                    zone: z.into(),
                    label,
                    count: 0,
                },
            };
            self.topics.tally(&s.name, &t)
        };
        let counted = |c: &mut Components, zone: Option<&str>, label: &str| {
            let (key, name) = match zone {
                None => (object_id(label), capitalise(label)),
                Some(z) => (
                    format!("zone_{}_{}", object_id(z), object_id(label)),
                    capitalise(&format!("{z} {label}")),
                ),
            };
            let topic = count_topic(zone, label);
            c.add(
                &format!("{key}_occupancy"),
                Component {
                    platform: "binary_sensor".into(),
                    name: format!("{name} occupancy"),
                    availability: analysed.clone(),
                    availability_mode: Some("all".into()),
                    state_topic: Some(topic.clone()),
                    value_template: Some("{{ 'ON' if value_json.count > 0 else 'OFF' }}".into()),
                    device_class: Some("occupancy".into()),
                    ..Component::default()
                },
            );
            c.add(
                &format!("{key}_count"),
                Component {
                    platform: "sensor".into(),
                    name: format!("{name} count"),
                    availability: analysed.clone(),
                    availability_mode: Some("all".into()),
                    state_topic: Some(topic),
                    value_template: Some("{{ value_json.count }}".into()),
                    state_class: Some("measurement".into()),
                    icon: Some("mdi:counter".into()),
                    ..Component::default()
                },
            );
        };
        for label in &s.labels {
            counted(c, None, label);
        }
        for (zone, labels) in &s.zones {
            for label in labels {
                counted(c, Some(zone), label);
            }
        }
    }

    /// A snapshot per label, a sub-label sensor per classified label.
    fn pictures_and_names(&self, c: &mut Components, s: &StreamEntities) {
        let stream_topics = self.topics.stream(&s.name);
        for label in &s.labels {
            c.add(
                &format!("{}_snapshot", object_id(label)),
                Component {
                    platform: "image".into(),
                    name: format!("{} snapshot", capitalise(label)),
                    // The last view stays worth seeing while paused.
                    availability: self.online(),
                    image_topic: Some(format!("{stream_topics}snapshot/{}", level(label))),
                    content_type: Some("image/jpeg".into()),
                    ..Component::default()
                },
            );
        }
        for label in &s.sub_labels {
            c.add(
                &format!("{}_sub_label", object_id(label)),
                Component {
                    platform: "sensor".into(),
                    name: format!("{} sub-label", capitalise(label)),
                    // The last one named stays worth seeing while paused.
                    availability: self.online(),
                    state_topic: Some(self.topics.sub_label(&s.name, label)),
                    value_template: Some("{{ value_json.label }}".into()),
                    json_attributes_topic: Some(self.topics.sub_label(&s.name, label)),
                    icon: Some("mdi:tag-search".into()),
                    ..Component::default()
                },
            );
        }
    }

    /// The detect switch, the state and the frame rates.
    fn controls(&self, c: &mut Components, s: &StreamEntities) {
        let stream_topics = self.topics.stream(&s.name);
        let status = self.topics.status(&s.name);
        c.add(
            "detect",
            Component {
                platform: "switch".into(),
                name: "Detection".into(),
                availability: self.online(),
                state_topic: Some(format!("{stream_topics}detect/state")),
                command_topic: Some(format!("{stream_topics}detect/set")),
                payload_on: Some("ON".into()),
                payload_off: Some("OFF".into()),
                icon: Some("mdi:motion-sensor".into()),
                ..Component::default()
            },
        );
        c.add(
            "state",
            Component {
                platform: "sensor".into(),
                name: "State".into(),
                availability: self.online(),
                state_topic: Some(status.clone()),
                value_template: Some("{{ value_json.state }}".into()),
                device_class: Some("enum".into()),
                options: Some(STATES.iter().map(|s| s.to_string()).collect()),
                entity_category: Some("diagnostic".into()),
                ..Component::default()
            },
        );
        for (key, name, field) in [
            ("fps_analysed", "Analysed fps", "fps_analysed"),
            ("fps_in", "Input fps", "fps_in"),
        ] {
            c.add(
                key,
                Component {
                    platform: "sensor".into(),
                    name: name.into(),
                    availability: self.online(),
                    state_topic: Some(status.clone()),
                    value_template: Some(format!("{{{{ value_json.{field} }}}}")),
                    state_class: Some("measurement".into()),
                    unit_of_measurement: Some("fps".into()),
                    suggested_display_precision: Some(1),
                    entity_category: Some("diagnostic".into()),
                    ..Component::default()
                },
            );
        }
    }

    /// Whether a retained config is one this node published: visiond's
    /// origin and the node's device or a device under it. Topics alone
    /// cannot tell (`visiond_a_b` is node `a_b` or stream `b` of node `a`).
    pub fn is_ours(&self, payload: &[u8]) -> bool {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return false;
        };
        let origin = v.get("o").or_else(|| v.get("origin"));
        let origin_name = origin.and_then(|o| o.get("name")).and_then(|n| n.as_str());
        if origin_name != Some(ORIGIN) {
            return false;
        }
        let Some(dev) = v.get("dev").or_else(|| v.get("device")) else {
            return false;
        };
        let node = self.node_id();
        let via = dev.get("via_device").and_then(|d| d.as_str());
        let ids = dev.get("identifiers").or_else(|| dev.get("ids"));
        let is_node = match ids {
            Some(serde_json::Value::String(s)) => *s == node,
            Some(serde_json::Value::Array(a)) => a.iter().any(|i| i.as_str() == Some(&node)),
            _ => false,
        };
        is_node || via == Some(node.as_str())
    }
}

/// The first letter upper case: entity names read as names.
fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A device's components, with ids and entity ids made unique: labels
/// that differ only in characters Home Assistant does not take
/// (`teddy bear`, `teddy_bear`) would otherwise be one entity.
struct Components<'a> {
    device: &'a str,
    map: BTreeMap<String, Component>,
}

impl<'a> Components<'a> {
    fn new(device: &'a str) -> Self {
        Self {
            device,
            map: BTreeMap::new(),
        }
    }

    fn add(&mut self, key: &str, mut c: Component) {
        let mut key = object_id(key);
        if self.map.contains_key(&key) {
            let base = key.clone();
            let mut n = 2;
            while self.map.contains_key(&format!("{base}_{n}")) {
                n += 1;
            }
            key = format!("{base}_{n}");
        }
        c.unique_id = format!("{}_{key}", self.device);
        c.default_entity_id = format!("{}.{}", c.platform, slug(&c.unique_id));
        self.map.insert(key, c);
    }

    fn done(self) -> BTreeMap<String, Component> {
        self.map
    }
}
