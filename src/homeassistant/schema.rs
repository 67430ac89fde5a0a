//! The discovery payload as Home Assistant reads it (device-based
//! discovery, 2024.11 and later): its own types, independent of visiond's
//! domain types, so what goes on the wire is visible in one place.
//!
//! The structural keys use the short forms of Home Assistant's examples
//! (`dev`, `o`, `cmps`, `p`); component options are spelled out. Home
//! Assistant ignores unknown keys without a word, so every key here is
//! one it documents: a typo would fail silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `<prefix>/device/<object_id>/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfig {
    #[serde(rename = "dev")]
    pub device: Device,
    #[serde(rename = "o")]
    pub origin: Origin,
    /// By component id (`[A-Za-z0-9_-]+`, unique within the device).
    #[serde(rename = "cmps")]
    pub components: BTreeMap<String, Component>,
    pub qos: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub identifiers: Vec<String>,
    pub name: String,
    #[serde(default)]
    pub manufacturer: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub sw_version: String,
    /// The node's device: streams hang under the machine that runs them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_device: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub name: String,
    #[serde(default)]
    pub sw_version: String,
    #[serde(default)]
    pub support_url: String,
}

/// One entry of an `availability` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    pub topic: String,
    /// Renders to `payload_available` (`online`) or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_template: Option<String>,
}

/// One entity. Options a platform does not take stay `None` and are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// The platform: binary_sensor, sensor, switch, image.
    #[serde(rename = "p")]
    pub platform: String,
    /// Without the device name: Home Assistant puts it in front.
    pub name: String,
    pub unique_id: String,
    /// `platform.object_id`; replaces the deprecated `object_id`.
    pub default_entity_id: String,
    pub availability: Vec<Availability>,
    /// `all`: every availability topic must say online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_template: Option<String>,
    /// A JSON object's keys as the entity's attributes (score, id, at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_attributes_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_off: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_of_measurement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_display_precision: Option<u8>,
    /// `enum` sensors: every value the state can take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// `diagnostic` only: sensors may never be `config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
}
