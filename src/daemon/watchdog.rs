//! systemd's watchdog: `WATCHDOG=1` at half `WATCHDOG_USEC` while no
//! inference worker is stuck on a frame and the MQTT loop turns; a stuck
//! stage stops the pings and systemd restarts the service.
//!
//! Whether a stage is stuck is decided by [`Judge`] from what it observes
//! and a monotonic instant, so it is tested in simulated time. The MQTT loop
//! stamps its turns with the wall clock; comparing that stamp with the wall
//! clock now made a clock step (NTP at boot on a board without a real-time
//! clock) look like hours without a turn, so the judge only asks whether the
//! stamp moved, and measures the time since on its own clock.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::clock::{Clock, SystemClock};
use crate::inference::Heartbeat;
use crate::publish::MqttCounters;

/// The stage that stopped the pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Inference,
    Mqtt,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Inference => "an inference worker",
            Stage::Mqtt => "the MQTT loop",
        }
    }
}

/// What one look at the stages says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ping,
    /// Was stuck, is not any more: ping again.
    Recovered,
    /// Just got stuck: stop pinging.
    Stuck(Stage),
    StillStuck,
}

/// One look at the stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The longest any inference worker has been on its current frame.
    pub busiest: Option<Duration>,
    /// The MQTT loop's turns: only whether the count moves matters.
    pub mqtt_turn: u64,
}

/// Decides stuck or alive from observations and the instants they were
/// made at; it keeps what it needs between looks (when the MQTT stamp last
/// moved, whether it was stuck).
#[derive(Debug)]
pub struct Judge {
    /// A frame this long on a worker is stuck (half the watchdog interval:
    /// systemd is told before it gives up).
    frame_limit: Duration,
    /// The MQTT loop may rest this long (it turns at least every keep-alive).
    mqtt_limit: Duration,
    mqtt_moved: Option<(u64, Instant)>,
    stuck: bool,
}

impl Judge {
    pub fn new(interval: Duration, mqtt_limit: Duration) -> Self {
        Self {
            frame_limit: interval / 2,
            mqtt_limit,
            mqtt_moved: None,
            stuck: false,
        }
    }

    pub fn observe(&mut self, now: Instant, seen: Observation) -> Verdict {
        let moved_at = match self.mqtt_moved {
            Some((turn, at)) if turn == seen.mqtt_turn => at,
            // The first look, or it moved: it turns.
            _ => {
                self.mqtt_moved = Some((seen.mqtt_turn, now));
                now
            }
        };
        let stage = if seen.busiest.is_some_and(|d| d >= self.frame_limit) {
            Some(Stage::Inference)
        } else if now.saturating_duration_since(moved_at) > self.mqtt_limit {
            Some(Stage::Mqtt)
        } else {
            None
        };
        let was = std::mem::replace(&mut self.stuck, stage.is_some());
        match (was, stage) {
            (false, None) => Verdict::Ping,
            (true, None) => Verdict::Recovered,
            (false, Some(s)) => Verdict::Stuck(s),
            (true, Some(_)) => Verdict::StillStuck,
        }
    }
}

/// Where the watchdog looks.
pub trait Probe: Send {
    fn observe(&self) -> Observation;
}

/// The real stages: the engines' heartbeats (replaced on reload) and the
/// MQTT client's counters.
pub struct Stages {
    pub heartbeats: Arc<Mutex<Vec<Arc<Heartbeat>>>>,
    pub mqtt: Arc<MqttCounters>,
}

impl Probe for Stages {
    fn observe(&self) -> Observation {
        let busiest = self
            .heartbeats
            .lock()
            .ok()
            .and_then(|beats| beats.iter().filter_map(|b| b.busy_for()).max());
        Observation {
            busiest,
            mqtt_turn: self.mqtt.turns.load(Relaxed),
        }
    }
}

/// Looks every `period` until `stop` closes; `ping` tells systemd.
pub fn watch(
    judge: &mut Judge,
    period: Duration,
    clock: &dyn Clock,
    probe: &dyn Probe,
    stop: &Receiver<()>,
    ping: &mut dyn FnMut(),
) {
    loop {
        match judge.observe(clock.now(), probe.observe()) {
            Verdict::Ping => ping(),
            Verdict::Recovered => {
                tracing::warn!("no stage is stuck any more; watchdog pings again");
                ping();
            }
            Verdict::Stuck(stage) => {
                tracing::error!("{} is stuck; no more watchdog pings", stage.describe());
            }
            Verdict::StillStuck => {}
        }
        if clock.sleep(period, stop) {
            return;
        }
    }
}

/// The watchdog thread; a no-op without `WATCHDOG_USEC`. It lives for the
/// whole run (a reload hands it the new engines' heartbeats), so what it
/// has seen is not forgotten.
pub struct Watchdog {
    heartbeats: Arc<Mutex<Vec<Arc<Heartbeat>>>>,
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// `WATCHDOG_USEC` as systemd sets it.
pub fn interval_from_env() -> Option<Duration> {
    std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|us| *us > 0)
        .map(Duration::from_micros)
}

impl Watchdog {
    pub fn start(
        interval: Option<Duration>,
        heartbeats: Vec<Arc<Heartbeat>>,
        mqtt: Arc<MqttCounters>,
        mqtt_limit: Duration,
    ) -> std::io::Result<Self> {
        let heartbeats = Arc::new(Mutex::new(heartbeats));
        let Some(interval) = interval else {
            return Ok(Self {
                heartbeats,
                stop: None,
                thread: None,
            });
        };
        let probe = Stages {
            heartbeats: heartbeats.clone(),
            mqtt,
        };
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut judge = Judge::new(interval, mqtt_limit);
                let mut ping = || {
                    crate::notify::notify("WATCHDOG=1");
                };
                watch(
                    &mut judge,
                    interval / 2,
                    &SystemClock,
                    &probe,
                    &stopped,
                    &mut ping,
                );
            })?;
        Ok(Self {
            heartbeats,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The engines changed (a reload): watch these workers from now on.
    pub fn set_heartbeats(&self, beats: Vec<Arc<Heartbeat>>) {
        if let Ok(mut b) = self.heartbeats.lock() {
            *b = beats;
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    const INTERVAL: Duration = Duration::from_secs(10);
    const MQTT_LIMIT: Duration = Duration::from_secs(90);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    fn idle(turn: u64) -> Observation {
        Observation {
            busiest: None,
            mqtt_turn: turn,
        }
    }

    #[test]
    fn a_frame_past_half_the_interval_is_stuck_until_it_finishes() {
        let t0 = Instant::now();
        let mut j = Judge::new(INTERVAL, MQTT_LIMIT);
        let busy = |secs, turn| Observation {
            busiest: Some(Duration::from_secs(secs)),
            mqtt_turn: turn,
        };
        assert_eq!(j.observe(t0, busy(4, 1)), Verdict::Ping);
        assert_eq!(
            j.observe(at(t0, 5), busy(5, 2)),
            Verdict::Stuck(Stage::Inference)
        );
        assert_eq!(j.observe(at(t0, 10), busy(10, 3)), Verdict::StillStuck);
        assert_eq!(j.observe(at(t0, 15), idle(4)), Verdict::Recovered);
        assert_eq!(j.observe(at(t0, 20), idle(5)), Verdict::Ping);
    }

    #[test]
    fn an_mqtt_loop_that_stops_turning_is_stuck_after_its_limit() {
        let t0 = Instant::now();
        let mut j = Judge::new(INTERVAL, MQTT_LIMIT);
        assert_eq!(j.observe(t0, idle(7)), Verdict::Ping);
        assert_eq!(j.observe(at(t0, 90), idle(7)), Verdict::Ping);
        assert_eq!(j.observe(at(t0, 91), idle(7)), Verdict::Stuck(Stage::Mqtt));
        assert_eq!(j.observe(at(t0, 200), idle(7)), Verdict::StillStuck);
        assert_eq!(j.observe(at(t0, 205), idle(8)), Verdict::Recovered);
    }

    #[test]
    fn a_wall_clock_step_is_not_a_stuck_mqtt_loop() {
        // Once: now_ms() - last_turn_ms, both wall clock: NTP stepping the
        // clock an hour on made a loop that turned a second ago look stuck
        // for an hour. The judge takes any stamp that moves (now a count),
        // even one that jumps and goes back; the loop turns every 30 s of
        // real (monotonic) time.
        let t0 = Instant::now();
        let mut j = Judge::new(INTERVAL, MQTT_LIMIT);
        let stamps = [1_000, 31_000, 3_661_000, 3_691_000, 5_000, 35_000];
        for (i, stamp) in stamps.into_iter().enumerate() {
            for tick in 0..6 {
                let now = at(t0, i as u64 * 30 + tick * 5);
                assert_eq!(j.observe(now, idle(stamp)), Verdict::Ping, "{i} {tick}");
            }
        }
    }

    struct SimClock {
        now: Mutex<Instant>,
        /// Closed by the test's script when it runs out.
        end: Mutex<bool>,
    }

    impl Clock for Arc<SimClock> {
        fn wall(&self) -> std::time::SystemTime {
            // A fixed date: these tests time intervals, not dates.
            std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        }

        fn now(&self) -> Instant {
            *self.now.lock().expect("clock")
        }
        fn sleep(&self, d: Duration, _: &Receiver<()>) -> bool {
            *self.now.lock().expect("clock") += d;
            *self.end.lock().expect("clock")
        }
    }

    /// Observations by look, then the end.
    struct Script {
        looks: Mutex<VecDeque<Observation>>,
        clock: Arc<SimClock>,
    }

    impl Probe for Script {
        fn observe(&self) -> Observation {
            let mut looks = self.looks.lock().expect("script");
            let next = looks.pop_front().unwrap_or(idle(0));
            if looks.is_empty() {
                *self.clock.end.lock().expect("clock") = true;
            }
            next
        }
    }

    #[test]
    fn the_loop_pings_at_half_the_interval_and_not_while_stuck() {
        let clock = Arc::new(SimClock {
            now: Mutex::new(Instant::now()),
            end: Mutex::new(false),
        });
        let t0 = clock.now();
        let stuck = Observation {
            busiest: Some(INTERVAL),
            mqtt_turn: 0,
        };
        let script = Script {
            looks: Mutex::new([idle(1), idle(2), stuck, stuck, idle(3), idle(4)].into()),
            clock: clock.clone(),
        };
        let pings = Mutex::new(Vec::new());
        let mut ping = || pings.lock().expect("pings").push(clock.now() - t0);
        let (_stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let mut judge = Judge::new(INTERVAL, MQTT_LIMIT);
        watch(
            &mut judge,
            INTERVAL / 2,
            &clock,
            &script,
            &stopped,
            &mut ping,
        );
        let secs: Vec<u64> = pings
            .into_inner()
            .expect("pings")
            .iter()
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(secs, [0, 5, 20, 25]);
    }
}
