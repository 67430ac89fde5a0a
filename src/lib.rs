//! visiond: camera streams in, MobileNet-family inference, MQTT events out.
//!
//! The stages, each in its own module, meet at plain data types ([`frame`]):
//! [`source`] (GStreamer) -> one bounded channel per stream, frames and
//! statuses in band -> [`inference`] (ONNX Runtime) -> the stream's
//! [`route`] ([`tracking`], [`cascade`], [`snapshot`]) -> [`publish`] (MQTT).
//! [`daemon`] wires them from a [`config`].

pub mod backoff;
pub mod bench;
pub mod cascade;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod evaluate;
pub mod fleet;
pub mod frame;
pub mod homeassistant;
pub mod http;
pub mod inference;
pub mod limits;
pub mod motion;
pub mod notify;
pub mod page;
pub mod password;
pub mod publish;
pub mod redact;
pub mod render;
pub mod route;
pub mod snapshot;
pub mod source;
pub mod stats;
pub mod status;
pub mod sync;
pub mod tls;
pub mod tracking;
