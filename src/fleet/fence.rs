//! The fence: a fleet camera's messages leave this node only while its
//! lease is surely alive at etcd. A node frozen (SIGSTOP, a VM paused) or
//! cut off wakes up with frames in flight; by the time its fleet loop has
//! stopped them, a successor may run the same camera. Checked on every
//! message, the fence keeps the two from publishing side by side.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::publish::{Message, Sink};

/// Until when the lease is surely alive, as this node can tell.
///
/// etcd counts a lease's time to live from when it handled the last
/// keep-alive, which is after this node sent it: `sent + ttl` is a bound
/// the lease outlives. The guard leaves time to stop before that bound.
#[derive(Debug)]
pub struct Fence {
    base: Instant,
    /// Milliseconds after `base`; 0: closed.
    until_ms: AtomicU64,
    /// Fleet cameras: every one this node has run, and those it may publish
    /// now with when each was allowed (a frame delivered before that is
    /// from an earlier run of the camera here, still in the model). On the
    /// monotonic clock: a wall clock stepped back by NTP would make such a
    /// frame look new.
    cameras: Mutex<(BTreeSet<String>, BTreeMap<String, Instant>)>,
    /// Messages held back.
    pub dropped: AtomicU64,
}

/// The margin kept before the lease's bound: a fifth of it, at least 1 s.
pub fn guard(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_secs(1)).min(ttl / 2)
}

impl Fence {
    pub fn new(base: Instant) -> Self {
        Self {
            base,
            until_ms: AtomicU64::new(0),
            cameras: Mutex::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// A keep-alive sent at `sent` was answered with `ttl`.
    pub fn renewed(&self, sent: Instant, ttl: Duration) {
        self.extend_to(sent + ttl.saturating_sub(guard(ttl)));
    }

    /// Open until `at` at least (never moved back: answers arrive out of order).
    pub fn extend_to(&self, at: Instant) {
        let ms = self.ms(at).max(1);
        self.until_ms.fetch_max(ms, Ordering::SeqCst);
    }

    /// The lease is gone: closed until a new one is renewed.
    pub fn close(&self) {
        self.until_ms.store(0, Ordering::SeqCst);
    }

    pub fn is_open(&self, now: Instant) -> bool {
        self.ms(now) < self.until_ms.load(Ordering::SeqCst)
    }

    /// How long it stays open from `now` (zero when closed).
    pub fn left(&self, now: Instant) -> Duration {
        let until = self.until_ms.load(Ordering::SeqCst);
        Duration::from_millis(until.saturating_sub(self.ms(now)))
    }

    /// The fleet cameras this node runs now (or is starting or stopping):
    /// a fleet camera not among them publishes nothing from here, even
    /// with the lease alive (a frame still in the model when it moved).
    pub fn allow(&self, names: BTreeSet<String>) {
        let mut c = crate::sync::locked(&self.cameras);
        c.0.extend(names.iter().cloned());
        let now = Instant::now();
        let before = std::mem::take(&mut c.1);
        c.1 = names
            .into_iter()
            .map(|n| {
                let since = before.get(&n).copied().unwrap_or(now);
                (n, since)
            })
            .collect();
    }

    /// `names` are streams of the file now: never fenced again.
    pub fn forget(&self, names: BTreeSet<String>) {
        let mut c = crate::sync::locked(&self.cameras);
        c.0.retain(|n| !names.contains(n));
    }

    /// Whether messages of `stream` (of a frame its source delivered at
    /// `delivered`) may leave now: a stream of the file always, a fleet
    /// camera while the lease lives and it runs here.
    pub fn passes(&self, stream: &str, delivered: Option<Instant>) -> bool {
        let c = crate::sync::locked(&self.cameras);
        let since = c.1.get(stream);
        let pass = !c.0.contains(stream)
            || (since.is_some_and(|s| delivered.is_none_or(|t| t >= *s))
                && self.is_open(Instant::now()));
        if !pass
            && self
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(100)
        {
            tracing::debug!(
                stream,
                allowed = since.is_some(),
                "fleet: fence holds a message back"
            );
        }
        pass
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_millis() as u64
    }
}

/// A sink in front of `next` that holds fleet cameras' messages back while
/// the fence is closed. Clearing always passes: it clears what this node
/// retained for a camera it no longer runs.
pub struct Fenced {
    pub next: Arc<dyn Sink>,
    pub fence: Arc<Fence>,
}

impl Sink for Fenced {
    fn publish(&self, m: Message) {
        if self.fence.passes(&m.stream, m.delivered) {
            self.next.publish(m);
        }
    }
    fn clear(&self, stream: &str, prefix: &str) {
        self.next.clear(stream, prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_closes_a_guard_before_the_lease_can_end() {
        let t0 = Instant::now();
        let f = Fence::new(t0);
        assert!(!f.is_open(t0));
        f.renewed(t0, Duration::from_secs(10));
        assert!(f.is_open(t0 + Duration::from_millis(7900)));
        assert!(!f.is_open(t0 + Duration::from_secs(8)));
        // An older answer does not move it back.
        f.renewed(t0 - Duration::from_secs(5), Duration::from_secs(10));
        assert_eq!(f.left(t0), Duration::from_secs(8));
        f.close();
        assert!(!f.is_open(t0));
        assert_eq!(guard(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(guard(Duration::from_secs(60)), Duration::from_secs(12));
    }

    #[test]
    fn only_fleet_cameras_are_fenced() {
        let f = Fence::new(Instant::now());
        f.allow(["cam1".to_string()].into());
        assert!(!f.passes("cam1", None));
        assert!(f.passes("local", None));
        f.extend_to(Instant::now() + Duration::from_secs(60));
        assert!(f.passes("cam1", None));
        // A frame from before it was allowed: an earlier run's.
        let old = Instant::now() - Duration::from_secs(1);
        assert!(!f.passes("cam1", Some(old)));
        assert!(f.passes("cam1", Some(Instant::now())));
        // Moved away: its stragglers stay here, lease or not.
        f.allow(BTreeSet::new());
        assert!(!f.passes("cam1", None));
        assert!(f.passes("local", Some(old)));
    }
}
