//! How a lost broker is retried, apart from the connection loop.

use std::time::Duration;

use crate::backoff::Backoff;

/// How a lost broker is retried: capped, jittered backoff from 0.5 s to
/// 30 s, reset by a connect, and one log line per incident (a retry failing
/// the same way says nothing new).
#[derive(Debug)]
pub struct Retry {
    backoff: Backoff,
    last_error: Option<String>,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            last_error: None,
        }
    }
}

impl Retry {
    /// The error to log (when it is new) and the delay before the next try;
    /// `unit` in [0, 1) draws the jitter.
    pub fn failed(&mut self, error: String, unit: f64) -> (Option<String>, Duration) {
        let delay = self.backoff.delay_with(unit);
        if self.last_error.as_ref() == Some(&error) {
            return (None, delay);
        }
        self.last_error = Some(error.clone());
        (Some(error), delay)
    }

    pub fn connected(&mut self) {
        self.last_error = None;
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_broker_is_logged_once_per_incident_and_retried_with_capped_backoff() {
        let mut r = Retry::default();
        let refused = || "connection refused".to_string();
        let (log, first) = r.failed(refused(), 1.0);
        assert_eq!(log.as_deref(), Some("connection refused"));
        assert_eq!(first, Duration::from_millis(500));
        let delays: Vec<Duration> = (0..10)
            .map(|_| {
                let (log, d) = r.failed(refused(), 1.0);
                assert_eq!(log, None, "the same failure again says nothing");
                d
            })
            .collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(delays.last(), Some(&Duration::from_secs(30)));
        // Jitter keeps reconnecting clients apart: at least half the base.
        assert_eq!(r.failed(refused(), 0.0).1, Duration::from_secs(15));
        // Another error is news.
        assert!(r.failed("timed out".into(), 0.5).0.is_some());
        r.connected();
        let (log, d) = r.failed(refused(), 1.0);
        assert!(log.is_some(), "after a connect a failure is a new incident");
        assert_eq!(d, Duration::from_millis(500));
    }
}
