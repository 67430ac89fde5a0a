//! When to run the classifier on an object, and when its answers agree
//! enough to name it. Pure: the cascade feeds it views and answers.
//!
//! - Never below `min_size`, never while stationary (the view does not
//!   change, nor would the answer), never once named, never past
//!   `max_attempts`.
//! - First on the first frame it is confirmed in, then only when the view
//!   is clearly better than the best one tried: a box larger by a fifth,
//!   or a detector score higher by [`BETTER_SCORE`]; attempts at least
//!   [`GAP_NS`] apart in stream time.
//! - Named when [`MIN_VOTES`] answers at or above `min_score` agree and
//!   they are at least [`AGREE`] (3/5) of all attempts (Frigate's rule asks for
//!   3; 2 here, because views must differ to count, and a bird at a feeder
//!   rarely gives three). Once named, it stays: no flapping.

/// A larger view counts as better from this ratio of areas on.
pub const BETTER_AREA: f32 = 1.2;
/// A detector score this much above the best attempt's is a better view.
pub const BETTER_SCORE: f32 = 0.05;
/// Attempts on one object at least this far apart (stream ns).
pub const GAP_NS: u64 = 500_000_000;
/// Agreeing answers needed, and their share of all attempts (3/5).
pub const MIN_VOTES: usize = 2;
pub const AGREE: (usize, usize) = (3, 5);

/// A rule's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Pixels on the box's longer side.
    pub min_size: u32,
    pub max_attempts: u32,
    /// An answer counts from this probability on.
    pub min_score: f32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            min_size: 64,
            max_attempts: 5,
            min_score: 0.4,
        }
    }
}

/// An object in one frame, in the source's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub long_side: f32,
    pub area: f32,
    /// The detector's score.
    pub score: f32,
    pub stationary: bool,
}

/// One object's attempts so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attempts {
    made: u32,
    best_area: f32,
    best_score: f32,
    last_ns: Option<u64>,
    /// Answers at or above `min_score`: class index and probability.
    votes: Vec<(u32, f32)>,
    named: bool,
}

impl Attempts {
    pub fn made(&self) -> u32 {
        self.made
    }

    /// Whether to classify the object in this frame.
    pub fn due(&self, v: &View, l: &Limits, now_ns: u64) -> bool {
        if self.named || self.made >= l.max_attempts || v.stationary {
            return false;
        }
        if v.long_side < l.min_size as f32 {
            return false;
        }
        match self.last_ns {
            None => true,
            Some(last) if now_ns.saturating_sub(last) < GAP_NS => false,
            Some(_) => {
                v.area >= self.best_area * BETTER_AREA || v.score >= self.best_score + BETTER_SCORE
            }
        }
    }

    /// Records one attempt's answer (the best class within the rule's
    /// subset, `None` when the subset is empty); the name, when the
    /// answers now agree.
    pub fn record(
        &mut self,
        v: &View,
        answer: Option<(u32, f32)>,
        l: &Limits,
        now_ns: u64,
    ) -> Option<(u32, f32)> {
        self.made += 1;
        self.last_ns = Some(now_ns);
        self.best_area = self.best_area.max(v.area);
        self.best_score = self.best_score.max(v.score);
        if let Some((class, p)) = answer
            && p >= l.min_score
        {
            self.votes.push((class, p));
        }
        let (class, votes, sum) = self.leader()?;
        let agreed = votes >= MIN_VOTES && votes * AGREE.1 >= self.made as usize * AGREE.0;
        if !agreed {
            return None;
        }
        self.named = true;
        Some((class, sum / votes as f32))
    }

    /// The class with the most votes (ties: the higher summed probability).
    fn leader(&self) -> Option<(u32, usize, f32)> {
        let mut tally: Vec<(u32, usize, f32)> = Vec::new();
        for &(c, p) in &self.votes {
            match tally.iter_mut().find(|t| t.0 == c) {
                Some(t) => {
                    t.1 += 1;
                    t.2 += p;
                }
                None => tally.push((c, 1, p)),
            }
        }
        tally
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn view(side: f32, score: f32) -> View {
        View {
            long_side: side,
            area: side * side,
            score,
            stationary: false,
        }
    }

    #[test]
    fn first_look_then_only_better_views_apart_in_time() {
        let (l, mut a) = (Limits::default(), Attempts::default());
        assert!(!a.due(&view(63.0, 0.9), &l, 0), "below min_size");
        assert!(a.due(&view(100.0, 0.6), &l, 0));
        a.record(&view(100.0, 0.6), Some((7, 0.9)), &l, 0);
        // Same view, later: not better.
        assert!(!a.due(&view(100.0, 0.6), &l, 3 * S));
        // Larger by a fifth, but too soon.
        assert!(!a.due(&view(110.0, 0.6), &l, S / 4));
        assert!(a.due(&view(110.0, 0.6), &l, S));
        // A better score counts as a better view; a slightly better one not.
        assert!(!a.due(&view(100.0, 0.64), &l, S));
        assert!(a.due(&view(100.0, 0.66), &l, S));
        let still = View {
            stationary: true,
            ..view(200.0, 0.9)
        };
        assert!(!a.due(&still, &l, 5 * S), "never while stationary");
    }

    #[test]
    fn named_when_two_agree_and_they_are_most_of_the_attempts() {
        let l = Limits::default();
        let mut a = Attempts::default();
        assert_eq!(a.record(&view(100.0, 0.6), Some((11, 0.8)), &l, 0), None);
        let (class, score) = a
            .record(&view(130.0, 0.6), Some((11, 0.6)), &l, S)
            .expect("named");
        assert_eq!(class, 11);
        assert!((score - 0.7).abs() < 1e-6, "the mean of the votes: {score}");
        assert!(!a.due(&view(400.0, 0.99), &l, 9 * S), "named: done");

        // 11, 12, 11: two of three agree (0.67 >= 0.6).
        let mut a = Attempts::default();
        a.record(&view(100.0, 0.6), Some((11, 0.9)), &l, 0);
        assert_eq!(a.record(&view(130.0, 0.6), Some((12, 0.9)), &l, S), None);
        assert_eq!(
            a.record(&view(170.0, 0.6), Some((11, 0.5)), &l, 2 * S)
                .map(|n| n.0),
            Some(11)
        );

        // Weak answers are attempts but not votes: 2 of 4 is not enough.
        let mut a = Attempts::default();
        for (i, p) in [0.3, 0.9, 0.2, 0.9].into_iter().enumerate() {
            let got = a.record(&view(100.0, 0.6), Some((11, p)), &l, i as u64 * S);
            assert_eq!(got, None, "attempt {i}");
        }
        assert_eq!(
            a.record(&view(100.0, 0.6), Some((11, 0.9)), &l, 5 * S)
                .map(|n| n.0),
            Some(11),
            "3 of 5"
        );
    }

    #[test]
    fn the_budget_bounds_the_calls_and_an_empty_subset_never_names() {
        let l = Limits {
            max_attempts: 3,
            ..Limits::default()
        };
        let mut a = Attempts::default();
        let mut side = 100.0;
        for i in 0..10u64 {
            if a.due(&view(side, 0.6), &l, i * S) {
                assert_eq!(a.record(&view(side, 0.6), None, &l, i * S), None);
            }
            side *= 1.5;
        }
        assert_eq!(a.made(), 3);
    }
}
