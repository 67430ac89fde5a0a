//! A stream's health as published on `P/N/S/status`.

use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    Starting,
    Playing,
    /// Analysis switched off (`detect/set OFF`); the source keeps running.
    Paused,
    Reconnecting,
    Failed,
    Stopped,
}

impl StreamState {
    /// Every state, in the order a stream usually goes through them.
    pub const ALL: [StreamState; 6] = [
        Self::Starting,
        Self::Playing,
        Self::Paused,
        Self::Reconnecting,
        Self::Failed,
        Self::Stopped,
    ];

    /// Its name in the contract: the status payload, `/metrics`, the page.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Playing => "playing",
            Self::Paused => "paused",
            Self::Reconnecting => "reconnecting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
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
    pub fn new(state: StreamState, since: SystemTime) -> Self {
        Self {
            state,
            since,
            error: None,
            fps_in: 0.0,
            fps_analysed: 0.0,
        }
    }
}
