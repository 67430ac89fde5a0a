//! A stream's health as published on `P/N/S/status`.

use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    Starting,
    Playing,
    /// Analysis switched off (`detect/set OFF`); the source keeps running.
    Paused,
    Reconnecting,
    Failed,
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamStatus {
    pub state: StreamState,
    pub since: SystemTime,
    pub error: Option<String>,
    pub fps_in: f64,
    pub fps_analysed: f64,
}

impl StreamStatus {
    pub fn new(state: StreamState) -> Self {
        Self {
            state,
            since: SystemTime::now(),
            error: None,
            fps_in: 0.0,
            fps_analysed: 0.0,
        }
    }
}
