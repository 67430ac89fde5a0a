//! How to reach the broker and what to publish under: resolved once by the
//! config, read by the connection and the publisher.

use std::path::PathBuf;
use std::time::Duration;

use super::Topics;

/// MQTT 3.1.1 or 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    V311,
    V5,
}

#[derive(Clone, PartialEq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub topics: Topics,
    /// QoS of `detections`.
    pub qos: u8,
    pub node: String,
    /// mqtts://: CA, and optionally a client certificate and key (PEM files).
    pub tls: Option<TlsFiles>,
    pub protocol: Protocol,
    /// MQTT 5: message expiry of detections (zero: none).
    pub expiry: Duration,
    /// Folder of the QoS 1 spool; `None` keeps it in memory.
    pub spool: Option<PathBuf>,
    pub spool_max_bytes: usize,
}

impl std::fmt::Debug for MqttSettings {
    /// Everything but the password, which must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("keep_alive", &self.keep_alive)
            .field("topics", &self.topics)
            .field("qos", &self.qos)
            .field("node", &self.node)
            .field("tls", &self.tls)
            .field("protocol", &self.protocol)
            .field("expiry", &self.expiry)
            .field("spool", &self.spool)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_holds_the_password() {
        let s = MqttSettings {
            host: "h".into(),
            port: 1,
            client_id: "c".into(),
            username: Some("u".into()),
            password: Some("hunter2-secret".into()),
            keep_alive: Duration::from_secs(30),
            topics: Topics::new("p", "n"),
            qos: 0,
            node: "n".into(),
            tls: None,
            protocol: Protocol::V311,
            expiry: Duration::ZERO,
            spool: None,
            spool_max_bytes: 1,
        };
        let text = format!("{s:?} {s:#?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("***"));
    }
}
