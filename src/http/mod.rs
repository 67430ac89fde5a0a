//! `http.listen`: `/healthz` and `/metrics` (Prometheus text format) for
//! monitoring systems, and the status page for people (`page`), behind
//! its users' passwords (`auth`) and optionally TLS (`tls`).

pub mod auth;
mod metrics;
mod server;

pub use server::HttpServer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::publish::MqttCounters;
use crate::stats::StreamStats;
use crate::status::StreamState;

/// What the endpoint reports on: the running streams and the MQTT client.
pub struct Monitor {
    streams: Mutex<Vec<(String, Arc<StreamStats>)>>,
    mqtt: Arc<MqttCounters>,
    /// How long a stream may be starting or reconnecting before it counts as down.
    grace: Duration,
    /// The supervisors' clock: states are timed on it.
    clock: Arc<dyn Clock>,
    /// `/` and `/streams/S/latest.jpg`, where the daemon has them.
    page: Mutex<Option<Arc<crate::page::StatusPage>>>,
    /// This node's part in a fleet, where it has one.
    fleet: Mutex<Option<Arc<crate::fleet::FleetState>>>,
}

impl Monitor {
    pub fn new(mqtt: Arc<MqttCounters>, grace: Duration) -> Self {
        Self::with_clock(mqtt, grace, Arc::new(SystemClock))
    }

    /// As [`Monitor::new`], timing the grace period on `clock`, the clock
    /// the streams' supervisors record their states on.
    pub fn with_clock(mqtt: Arc<MqttCounters>, grace: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            streams: Mutex::default(),
            mqtt,
            grace,
            clock,
            page: Mutex::default(),
            fleet: Mutex::default(),
        }
    }

    pub fn set_fleet(&self, fleet: Option<Arc<crate::fleet::FleetState>>) {
        *crate::sync::locked(&self.fleet) = fleet;
    }

    pub fn set_page(&self, page: Option<Arc<crate::page::StatusPage>>) {
        if let Ok(mut p) = self.page.lock() {
            *p = page;
        }
    }

    /// The answer to `GET path` (without its query): code, body, type.
    pub fn respond(&self, path: &str) -> crate::page::Reply {
        let page = self.page.lock().ok().and_then(|p| p.clone());
        match (path, page) {
            ("/metrics", _) => (
                200,
                self.metrics().into_bytes(),
                "text/plain; version=0.0.4",
            ),
            ("/healthz", _) => match self.health() {
                Ok(()) => (200, b"{\"status\":\"ok\"}".to_vec(), "application/json"),
                Err(why) => (503, why.to_string().into_bytes(), "application/json"),
            },
            ("/", Some(page)) => (
                200,
                page.html(&self.streams()).into_bytes(),
                "text/html; charset=utf-8",
            ),
            (p, Some(page)) if p.starts_with("/streams/") => match crate::page::latest_path(p) {
                Some(name) => {
                    let known = self.streams().iter().any(|(n, _)| *n == name);
                    page.latest(&name, known)
                }
                None => (404, b"not found\n".to_vec(), "text/plain"),
            },
            _ => (404, b"not found\n".to_vec(), "text/plain"),
        }
    }

    /// Replaces the streams reported on (at start and after a reload).
    pub fn set_streams(&self, mut streams: Vec<(String, Arc<StreamStats>)>) {
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        if let Ok(mut s) = self.streams.lock() {
            *s = streams;
        }
    }

    fn streams(&self) -> Vec<(String, Arc<StreamStats>)> {
        self.streams.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Healthy when every stream plays, has ended, or is starting or
    /// reconnecting for less than the grace period; else the reasons.
    pub fn health(&self) -> Result<(), serde_json::Value> {
        let now = self.clock.now();
        let mut problems = serde_json::Map::new();
        for (name, stats) in self.streams() {
            let state = stats.state_at.lock().ok().and_then(|s| *s);
            let down = match state {
                Some((StreamState::Failed, _)) => Some("failed".to_string()),
                Some((s @ (StreamState::Reconnecting | StreamState::Starting), since))
                    if now.saturating_duration_since(since) >= self.grace =>
                {
                    let what = if s == StreamState::Starting {
                        "starting"
                    } else {
                        "reconnecting"
                    };
                    let secs = now.saturating_duration_since(since).as_secs();
                    Some(format!("{what} for {secs} s"))
                }
                _ => None,
            };
            if let Some(d) = down {
                problems.insert(name, d.into());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(serde_json::json!({ "status": "unhealthy", "streams": problems }))
        }
    }

    /// The Prometheus text exposition.
    pub fn metrics(&self) -> String {
        let fleet = crate::sync::locked(&self.fleet).clone();
        metrics::text(self.streams(), self.mqtt.clone(), fleet)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Instant;

    use crate::status::StreamStatus;

    use crossbeam_channel::Receiver;

    use super::*;

    /// Time that moves only when told.
    struct SimClock(Mutex<Instant>);

    impl SimClock {
        fn advance(&self, d: Duration) {
            if let Ok(mut t) = self.0.lock() {
                *t += d;
            }
        }
    }

    impl Clock for SimClock {
        fn wall(&self) -> std::time::SystemTime {
            // A fixed date: these tests time intervals, not dates.
            std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        }

        fn now(&self) -> Instant {
            self.0.lock().map(|t| *t).unwrap_or_else(|_| Instant::now())
        }
        fn sleep(&self, d: Duration, _: &Receiver<()>) -> bool {
            self.advance(d);
            false
        }
    }

    fn monitor() -> (Monitor, Arc<SimClock>, Arc<StreamStats>, Arc<StreamStats>) {
        let clock = Arc::new(SimClock(Mutex::new(Instant::now())));
        let m = Monitor::with_clock(
            Arc::default(),
            Duration::from_secs(30),
            clock.clone() as Arc<dyn Clock>,
        );
        let (cam, other) = (
            Arc::new(StreamStats::default()),
            Arc::new(StreamStats::default()),
        );
        m.set_streams(vec![
            ("cam".into(), cam.clone()),
            ("other".into(), other.clone()),
        ]);
        (m, clock, cam, other)
    }

    #[test]
    fn health_waits_the_grace_period_in_the_clock_it_is_given() {
        let (m, clock, cam, other) = monitor();
        assert_eq!(m.health(), Ok(()), "no state yet: nothing to report");
        cam.set_state(
            &StreamStatus::new(StreamState::Starting, std::time::SystemTime::now()),
            clock.now(),
        );
        other.set_state(
            &StreamStatus::new(StreamState::Playing, std::time::SystemTime::now()),
            clock.now(),
        );
        clock.advance(Duration::from_millis(29_999));
        assert_eq!(m.health(), Ok(()), "starting, within the grace");
        clock.advance(Duration::from_millis(1));
        let why = m.health().unwrap_err();
        assert_eq!(why["status"], "unhealthy");
        assert_eq!(why["streams"]["cam"], "starting for 30 s");
        assert!(why["streams"].get("other").is_none(), "{why}");
        // It plays: healthy again at once.
        cam.set_state(
            &StreamStatus::new(StreamState::Playing, std::time::SystemTime::now()),
            clock.now(),
        );
        assert_eq!(m.health(), Ok(()));
        // The camera goes: a grace period again, counted from the loss.
        clock.advance(Duration::from_secs(600));
        cam.set_state(
            &StreamStatus::new(StreamState::Reconnecting, std::time::SystemTime::now()),
            clock.now(),
        );
        clock.advance(Duration::from_secs(29));
        assert_eq!(m.health(), Ok(()));
        clock.advance(Duration::from_secs(16));
        assert_eq!(
            m.health().unwrap_err()["streams"]["cam"],
            "reconnecting for 45 s"
        );
        // A failed stream is down at once; a stopped one (a file's end) is fine.
        cam.set_state(
            &StreamStatus::new(StreamState::Failed, std::time::SystemTime::now()),
            clock.now(),
        );
        assert_eq!(m.health().unwrap_err()["streams"]["cam"], "failed");
        cam.set_state(
            &StreamStatus::new(StreamState::Stopped, std::time::SystemTime::now()),
            clock.now(),
        );
        assert_eq!(m.health(), Ok(()));
    }

    #[test]
    fn a_state_from_the_future_of_the_clock_is_not_unhealthy() {
        let (m, clock, cam, _) = monitor();
        cam.set_state(
            &StreamStatus::new(StreamState::Reconnecting, std::time::SystemTime::now()),
            clock.now() + Duration::from_secs(5),
        );
        assert_eq!(m.health(), Ok(()));
    }

    #[test]
    fn metrics_count_failures_panics_and_inference_time() {
        let (m, _, cam, _) = monitor();
        cam.frames_failed.fetch_add(2, Relaxed);
        cam.inference_panics.fetch_add(1, Relaxed);
        cam.inference.observe(12.5);
        cam.inference.observe(40.0);
        let text = m.metrics();
        for line in [
            "visiond_frames_failed_total{stream=\"cam\"} 2",
            "visiond_inference_panics_total{stream=\"cam\"} 1",
            "visiond_inference_ms_bucket{stream=\"cam\",le=\"10\"} 0",
            "visiond_inference_ms_bucket{stream=\"cam\",le=\"20\"} 1",
            "visiond_inference_ms_bucket{stream=\"cam\",le=\"50\"} 2",
            "visiond_inference_ms_bucket{stream=\"cam\",le=\"+Inf\"} 2",
            "visiond_inference_ms_sum{stream=\"cam\"} 52.5",
            "visiond_inference_ms_count{stream=\"cam\"} 2",
            "visiond_inference_ms_count{stream=\"other\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
