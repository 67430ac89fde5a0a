//! The daemon's own sections: the broker, Home Assistant, the status page,
//! the fleet.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

/// The fleet this node belongs to: its cameras are etcd keys
/// `PREFIX/streams/NAME`, each run by one live node.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd endpoints, `http://host:port` (or `https://` with `ca_file`).
    pub etcd: Vec<String>,
    /// The key prefix, e.g. `/visiond` (default).
    #[serde(default = "default_cluster_prefix")]
    pub prefix: String,
    /// Seconds a silent node keeps its cameras (2 to 3600, default 10).
    #[serde(default = "default_lease_s")]
    pub lease_s: u64,
    /// The most fleet cameras this node takes; absent: no limit.
    #[serde(default)]
    pub max_streams: Option<usize>,
    /// https: the CA that signed etcd's certificate (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// https: a client certificate (PEM), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// https: the client certificate's key (PEM), with `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn default_cluster_prefix() -> String {
    "/visiond".into()
}
fn default_lease_s() -> u64 {
    10
}

/// Home Assistant MQTT discovery (Home Assistant 2024.11 and later).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// The discovery prefix Home Assistant listens on (default
    /// `homeassistant`); no MQTT wildcards.
    #[serde(default = "default_ha_prefix")]
    pub prefix: String,
}

fn default_ha_prefix() -> String {
    "homeassistant".into()
}

/// The HTTP endpoint for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpConfig {
    /// host:port, e.g. 127.0.0.1:9464.
    pub listen: String,
    /// Seconds a stream may be starting or reconnecting before /healthz
    /// says 503 (default 30, at most 86400).
    #[serde(default = "default_grace")]
    pub grace: u64,
    /// Who may see the status page and its pictures (HTTP Basic). With
    /// users, `/` and `/streams/*` ask for a password wherever the page
    /// listens. Listening beyond loopback needs at least one user, or
    /// `open: true`.
    #[serde(default)]
    pub users: Vec<HttpUser>,
    /// Serve HTTPS with this certificate. A reload (SIGHUP) reads both
    /// files again, so a renewed certificate is taken without a restart.
    pub tls: Option<HttpTls>,
    /// `/metrics` asks for `Authorization: Bearer <token>` (Prometheus:
    /// `authorization: {credentials: ...}`). Without it, `/metrics` is open
    /// on loopback and asks for a user's password beyond it.
    pub metrics_token: Option<String>,
    /// The token's file instead (its first line), e.g. a systemd credential.
    pub metrics_token_file: Option<PathBuf>,
    /// The status page shows every camera's latest frame. Listening
    /// beyond loopback (0.0.0.0, a LAN address) without `users` is refused
    /// unless this is true: then anyone who reaches the port sees every
    /// camera, and every start logs a warning (default false).
    #[serde(default)]
    pub open: bool,
}

/// A user of the status page.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpUser {
    /// The name asked for by the browser (no `:`).
    pub name: String,
    /// An argon2 hash (`$argon2id$v=19$...`) as `visiond passwd` prints it;
    /// never the password itself.
    pub password_hash: Option<String>,
    /// The hash's file instead (its first line), e.g.
    /// /run/credentials/visiond.service/admin.
    pub password_hash_file: Option<PathBuf>,
}

/// The status page's certificate and key, PEM files.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpTls {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Both files' contents, read when the config is loaded: a renewed
    /// certificate makes a reload see a changed `http` section.
    #[serde(skip)]
    #[schemars(skip)]
    pub pem: TlsPem,
}

/// PEM text of a certificate chain and its key; the key never printed.
#[derive(Clone, Default, PartialEq)]
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsPem({} + {} bytes)", self.cert.len(), self.key.len())
    }
}

fn default_grace() -> u64 {
    30
}

/// The MQTT broker and the session with it.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]`, or `mqtts://` for TLS (needs `ca_file`).
    #[serde(default = "default_mqtt_url")]
    pub url: String,
    /// Default: `visiond-<node>`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name for the broker.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for the broker; write `${VAR}` to take it from the
    /// environment (it never appears in logs).
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (first line), e.g. a systemd credential.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// mqtts://: the CA that signed the broker's certificate (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// mqtts://: a client certificate (PEM), for brokers that ask; with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// mqtts://: the client certificate's key (PEM); with `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// First level of every topic; no MQTT wildcards.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// QoS of `detections` messages (0 or 1); events always use QoS 1.
    #[serde(default)]
    pub qos: u8,
    /// Folder where QoS 1 messages wait while the broker is unreachable
    /// (kept across restarts); without it they wait in memory.
    #[serde(default)]
    pub spool: Option<PathBuf>,
    /// The spool's bound in MiB (default 64): beyond it the oldest messages
    /// are dropped.
    #[serde(default = "default_spool_max_mb")]
    pub spool_max_mb: u64,
    /// Seconds between MQTT keep-alive pings (default 30, 1 to 65535).
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u64,
    /// MQTT protocol version: `3.1.1` (default) or `5`.
    #[serde(default = "default_protocol", deserialize_with = "text_or_number")]
    #[schemars(schema_with = "protocol_schema")]
    pub protocol: String,
    /// MQTT 5: seconds after which the broker discards an undelivered
    /// detections message (default 300; 0: never).
    #[serde(default = "default_expiry")]
    pub expiry: u64,
}

fn default_spool_max_mb() -> u64 {
    64
}
fn default_protocol() -> String {
    "3.1.1".into()
}
fn default_expiry() -> u64 {
    300
}

/// `protocol: 5` is a number in YAML, `protocol: 3.1.1` a string.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected 3.1.1 or 5, found {other:?}"
        ))),
    }
}

fn protocol_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "enum": ["3.1.1", "5", 5] })
}

fn default_mqtt_url() -> String {
    "mqtt://127.0.0.1:1883".into()
}
fn default_prefix() -> String {
    "visiond".into()
}
fn default_keep_alive() -> u64 {
    30
}
