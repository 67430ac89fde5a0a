//! Zone membership of one track with entry and exit hysteresis.
//!
//! The anchor must be clearly inside (at least the edge band deep) on
//! `zone_frames` observations in a row spanning at least `zone_s` of stream
//! time to enter, and clearly outside likewise to exit. An observation in the
//! band, or clearly on the current side, starts the count again. An anchor
//! jittering on the edge by less than the band therefore never changes state,
//! and a larger jitter must hold for several frames to do so.

use super::geometry::{Point, Zone, signed_distance};

/// Thresholds for [`ZoneState::observe`], in stream nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hysteresis {
    pub frames: u32,
    pub min_ns: u64,
}

/// Where one track stands with one zone.
#[derive(Debug, Clone, Default)]
pub(crate) struct ZoneState {
    /// The debounced geometric state: anchor inside the polygon.
    pub inside: bool,
    /// Observations in a row clearly on the other side, and when the first was.
    votes: u32,
    vote_since: u64,
    /// Stream time of the last change of `inside` to true.
    pub inside_since: u64,
    /// What the events say: `inside` and the zone applying to the label.
    pub in_zone: bool,
    /// Stream time `in_zone` last became true (loitering).
    pub in_since: u64,
}

impl ZoneState {
    /// Takes one observed anchor; `band` is the edge dead band for this box.
    /// True when the debounced state changed.
    pub fn observe(
        &mut self,
        zone: &Zone,
        anchor: Point,
        band: f32,
        now: u64,
        h: Hysteresis,
    ) -> bool {
        let d = signed_distance(&zone.polygon, anchor);
        // Clearly on the side other than the current state's.
        let opposite = if self.inside { d <= -band } else { d >= band };
        if !opposite {
            self.votes = 0;
            return false;
        }
        if self.votes == 0 {
            self.vote_since = now;
        }
        self.votes = self.votes.saturating_add(1);
        if self.votes >= h.frames.max(1) && now.saturating_sub(self.vote_since) >= h.min_ns {
            self.inside = !self.inside;
            self.votes = 0;
            if self.inside {
                // The stay began with the first observation clearly inside.
                self.inside_since = self.vote_since;
            }
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Zone {
        Zone {
            name: "z".into(),
            polygon: vec![[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]],
            labels: None,
        }
    }

    const H: Hysteresis = Hysteresis {
        frames: 2,
        min_ns: 200_000_000,
    };

    #[test]
    fn entering_needs_frames_and_time() {
        let z = square();
        let mut s = ZoneState::default();
        assert!(!s.observe(&z, [0.5, 0.5], 0.01, 0, H));
        assert!(!s.observe(&z, [0.5, 0.5], 0.01, 100_000_000, H));
        assert!(s.observe(&z, [0.5, 0.5], 0.01, 200_000_000, H));
        assert!(s.inside);
        assert_eq!(s.inside_since, 0);
    }

    #[test]
    fn the_band_blocks_a_change() {
        let z = square();
        let mut s = ZoneState::default();
        for i in 0..100u64 {
            // Just inside the left edge, within the band.
            assert!(!s.observe(&z, [0.205, 0.5], 0.01, i * 200_000_000, H));
        }
        assert!(!s.inside);
    }
}
