//! Time, for every loop that waits or dates something: the monotonic
//! clock the loops' timers run on (a clock NTP can step must not fire or
//! hold back a retry, a health check, a flush), passed in so that tests
//! run them in simulated time; and the wall clock's milliseconds for what
//! people read.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

/// Monotonic time as a loop sees it: the system's in the daemon,
/// simulated in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// Waits `d`, or less if `stop` closes; returns whether it closed.
    fn sleep(&self, d: Duration, stop: &Receiver<()>) -> bool;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, d: Duration, stop: &Receiver<()>) -> bool {
        stop.recv_timeout(d).is_err_and(|e| e.is_disconnected())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
