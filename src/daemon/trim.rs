//! Gives the memory glibc keeps after frees back to the system, now and
//! then. Decoders and ONNX Runtime free megabytes a frame; glibc keeps the
//! freed pages for reuse, and across a day the process's RSS drifts up to
//! its worst moment. A low fixed mmap threshold would hand them back at
//! every free instead, but costs a page fault per 4 KiB per frame (measured:
//! 4700 faults and about 6 ms of CPU a 720p frame, docs/BENCHMARKS.md).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};

use crate::clock::Clock;

/// How often: the pages a trim frees are faulted in again at most once
/// per period.
pub const EVERY: Duration = Duration::from_secs(20);

/// The trimming thread; stops when dropped.
pub struct Trimmer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Trimmer {
    pub fn start(clock: Arc<dyn Clock>, every: Duration, trim: fn()) -> Self {
        let (tx, rx) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("trim".into())
            .spawn(move || {
                while !clock.sleep(every, &rx) {
                    trim();
                }
            })
            .ok();
        Self {
            stop: Some(tx),
            thread,
        }
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// glibc's `malloc_trim(0)`: free pages anywhere in the heap go back.
pub fn malloc_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: no arguments beyond the padding; safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::Receiver;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    static TRIMS: AtomicUsize = AtomicUsize::new(0);

    /// Time moves only when the trimmer sleeps: `n` sleeps, then the stop.
    struct Ticks(Mutex<u32>, Instant);

    impl Clock for Ticks {
        fn wall(&self) -> std::time::SystemTime {
            // A fixed date: these tests time intervals, not dates.
            std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        }

        fn now(&self) -> Instant {
            self.1
        }
        fn sleep(&self, d: Duration, stop: &Receiver<()>) -> bool {
            assert_eq!(d, EVERY);
            let mut left = self.0.lock().expect("lock");
            if *left == 0 {
                // Out of simulated time: wait for the stop.
                return stop.recv().is_err();
            }
            *left -= 1;
            false
        }
    }

    #[test]
    fn trims_once_a_period_and_stops_when_dropped() {
        let clock = Arc::new(Ticks(Mutex::new(3), Instant::now()));
        let t = Trimmer::start(clock, EVERY, || {
            TRIMS.fetch_add(1, Ordering::SeqCst);
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while TRIMS.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(t);
        assert_eq!(TRIMS.load(Ordering::SeqCst), 3);
    }
}
