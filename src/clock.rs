//! Time, for every loop that waits or dates something, passed in so that
//! tests run in simulated time: the monotonic clock the timers run on (a
//! clock NTP can step must not fire or hold back a retry, a health check,
//! a flush), and the wall clock for the dates people read (`captured_at`,
//! `since`, an event's `start`), never for measuring an interval.

use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

/// Monotonic time as a loop sees it: the system's in the daemon,
/// simulated in tests.
pub trait Clock: Send + Sync {
    /// Monotonic time, for intervals and timers.
    fn now(&self) -> Instant;
    /// Real time, for dates.
    fn wall(&self) -> SystemTime;
    /// Waits `d`, or less if `stop` closes; returns whether it closed.
    fn sleep(&self, d: Duration, stop: &Receiver<()>) -> bool;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, d: Duration, stop: &Receiver<()>) -> bool {
        stop.recv_timeout(d).is_err_and(|e| e.is_disconnected())
    }
}

/// Milliseconds since the Unix epoch of a wall-clock time.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
