//! Home Assistant MQTT discovery (PRODUCT.md, "Home Assistant, snapshots,
//! the status page"): pure functions from resolved settings to retained
//! `(topic, payload)` pairs; the daemon publishes them and keeps them current.
//!
//! One device per stream (`<prefix>/device/visiond_N_S/config`) hangs under
//! one device for the node (`visiond_N`). Unique ids are built from node,
//! stream and entity kind, never from a display name, so renaming a device
//! in Home Assistant keeps its entities and their history.

mod discovery;
mod schema;

#[cfg(test)]
mod tests;

pub use discovery::{Discovery, ORIGIN, STATES, StreamEntities, object_id, slug};
pub use schema::{Availability, Component, Device, DeviceConfig, Origin};

use crate::config::{HomeAssistantConfig, StreamConfig, Task};

/// The labels a stream that lists none gets entities for, those of them its
/// model has: what a home camera is mostly asked about. A stream's
/// `labels` replace the list.
pub const DEFAULT_LABELS: [&str; 4] = ["person", "car", "dog", "cat"];

impl Discovery {
    pub fn new(ha: &HomeAssistantConfig, node: &str, topics: crate::publish::Topics) -> Self {
        Self {
            prefix: ha.prefix.trim_end_matches('/').to_string(),
            node: node.to_string(),
            topics,
        }
    }
}

/// The labels a stream counts and shows: its own, or the default list cut
/// to what the model knows.
pub fn stream_labels(s: &StreamConfig, model_labels: &[String]) -> Vec<String> {
    match &s.labels {
        Some(l) => l.clone(),
        None => DEFAULT_LABELS
            .iter()
            .filter(|d| model_labels.iter().any(|m| m == *d))
            .map(|d| d.to_string())
            .collect(),
    }
}

/// What a stream's device shows. A stream that does not track publishes
/// no counts or snapshots: its device has the switch and diagnostics only.
/// The discovery a config asks for and each stream's entities, where it
/// has `homeassistant`; `model` gives a model's task and labels (a stream
/// on a model that is not there gets none).
pub fn setup(
    loaded: &crate::config::Loaded,
    model: impl Fn(&str) -> Option<(Task, Vec<String>)>,
) -> Option<(Discovery, Vec<StreamEntities>)> {
    let c = &loaded.config;
    let ha = c.homeassistant.as_ref()?;
    let topics = crate::publish::Topics::new(&c.mqtt.prefix, &loaded.node);
    let streams = c
        .streams
        .iter()
        .filter_map(|s| {
            let (task, labels) = model(&s.model)?;
            Some(entities(s, task, &labels))
        })
        .collect();
    Some((Discovery::new(ha, &loaded.node, topics), streams))
}

pub fn entities(s: &StreamConfig, task: Task, model_labels: &[String]) -> StreamEntities {
    let tracks = task == Task::Detection && s.track.enabled();
    let labels = if tracks {
        stream_labels(s, model_labels)
    } else {
        Vec::new()
    };
    let mut all = labels.clone();
    let zones = if tracks {
        s.zones
            .iter()
            .map(|z| {
                let zl: Vec<String> = match &z.labels {
                    Some(l) => l.iter().map(|x| x.to_string()).collect(),
                    None => labels.clone(),
                };
                for l in &zl {
                    if !all.contains(l) {
                        all.push(l.clone());
                    }
                }
                (z.name.to_string(), zl)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut sub_labels: Vec<String> = Vec::new();
    if tracks {
        for l in s.classify.iter().flat_map(|r| &r.labels) {
            if !sub_labels.contains(l) {
                sub_labels.push(l.clone());
            }
        }
    }
    StreamEntities {
        name: s.name.clone(),
        model: s.model.clone(),
        labels: all,
        zones,
        sub_labels,
    }
}
