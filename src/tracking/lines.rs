//! Line crossings of one track.
//!
//! Each observed anchor is on the `in` side, the `out` side, or in the dead
//! band around the line (closer than the band, which then tells nothing). A
//! crossing is a move from the last anchor clearly on one side to an anchor
//! clearly on the other, along a path segment that meets the line's segment
//! (walking around its end is no crossing). It counts once per direction
//! until the object crosses back: the same direction twice in a row (after
//! going around an end) counts once.

use super::events::Direction;
use super::geometry::{Line, Point, segments_intersect, side};

#[derive(Debug, Clone, Default)]
pub(crate) struct LineState {
    /// +1 `in` side, -1 `out` side, 0 not yet known.
    side: i8,
    /// The last anchor clearly on `side`.
    last: Point,
    /// The direction of the last counted crossing.
    last_counted: Option<Direction>,
}

impl LineState {
    /// Takes one observed anchor; `counts` says whether the line applies to
    /// the track's label. Returns the direction of a crossing to count.
    pub fn observe(
        &mut self,
        line: &Line,
        anchor: Point,
        band: f32,
        counts: bool,
    ) -> Option<Direction> {
        let s = side(line.from, line.to, anchor);
        if s.is_nan() || s.abs() < band {
            // In the dead band (or NaN): tells nothing.
            return None;
        }
        let new_side: i8 = if s > 0.0 { 1 } else { -1 };
        let old = std::mem::replace(&mut self.side, new_side);
        let last = std::mem::replace(&mut self.last, anchor);
        if old == 0 || old == new_side || !counts {
            return None;
        }
        if !segments_intersect(last, anchor, line.from, line.to) {
            return None;
        }
        let dir = if new_side > 0 {
            Direction::In
        } else {
            Direction::Out
        };
        if self.last_counted == Some(dir) {
            return None;
        }
        self.last_counted = Some(dir);
        Some(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Line {
        Line {
            name: "gate".into(),
            from: [0.5, 0.0],
            to: [0.5, 1.0],
            labels: None,
        }
    }

    #[test]
    fn right_to_left_is_in_and_back_is_out() {
        let (l, mut s) = (gate(), LineState::default());
        assert_eq!(s.observe(&l, [0.7, 0.5], 0.01, true), None);
        assert_eq!(s.observe(&l, [0.3, 0.5], 0.01, true), Some(Direction::In));
        assert_eq!(s.observe(&l, [0.7, 0.5], 0.01, true), Some(Direction::Out));
    }

    #[test]
    fn going_around_the_end_is_no_crossing() {
        let l = Line {
            to: [0.5, 0.5],
            ..gate()
        };
        let mut s = LineState::default();
        s.observe(&l, [0.7, 0.3], 0.01, true);
        assert_eq!(s.observe(&l, [0.3, 0.3], 0.01, true), Some(Direction::In));
        // Back to the right below the line's end, then in again: not counted.
        assert_eq!(s.observe(&l, [0.3, 0.7], 0.01, true), None);
        assert_eq!(s.observe(&l, [0.7, 0.7], 0.01, true), None);
        assert_eq!(s.observe(&l, [0.7, 0.3], 0.01, true), None);
        assert_eq!(s.observe(&l, [0.3, 0.3], 0.01, true), None);
    }
}
