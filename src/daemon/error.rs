//! What stops the daemon from starting or a stream from running.

use crate::config::SettingsError;
use crate::inference::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("stream {stream:?}: {message}")]
    Stream { stream: String, message: String },
    #[error("MQTT: {0}")]
    Mqtt(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Labels(Vec<crate::config::Problem>),
}
