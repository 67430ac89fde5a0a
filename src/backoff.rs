//! Capped exponential backoff with jitter, for reconnecting sources and brokers.

use std::time::Duration;

use rand::Rng;

/// Capped exponential backoff with jitter: each delay is drawn from
/// [base/2, base], base doubling from `min` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    base: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            base: min,
        }
    }

    /// The next delay; `unit` is a number in [0, 1) (random in the daemon).
    pub fn delay_with(&mut self, unit: f64) -> Duration {
        let base = self.base;
        self.base = (self.base * 2).min(self.max);
        base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    pub fn next_delay(&mut self) -> Duration {
        self.delay_with(rand::rng().random::<f64>())
    }

    pub fn reset(&mut self) {
        self.base = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let full: Vec<u64> = (0..7).map(|_| b.delay_with(1.0).as_secs()).collect();
        assert_eq!(full, vec![1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.delay_with(1.0), Duration::from_secs(1));
    }

    #[test]
    fn backoff_jitter_stays_within_half_to_full() {
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(4));
        assert_eq!(b.delay_with(0.0), Duration::from_secs(2));
        assert_eq!(b.delay_with(0.5), Duration::from_secs(3));
        for _ in 0..100 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
    }
}
