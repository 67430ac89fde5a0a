//! Per frame, what the model is asked: nothing, regions, or the whole
//! frame. Regions cover what moves (motion boxes, and the tracker's
//! predicted boxes of moving objects); still objects are looked at again
//! only every `still_every`, so that they are not re-detected every frame
//! yet are found gone; and the whole frame every `full_every`, which
//! catches what appeared without motion. A frame whose scene changed as a
//! whole (the background started again) is analysed whole.
//!
//! A plain state machine on the stream's time (the frames' timestamps, so
//! that a file analysed faster than real time is checked as often per
//! minute of video as a camera): tested in simulated time, no clock of
//! its own.

use std::time::Duration;

use super::Motion;
use super::regions::{RegionSettings, plan};
use crate::frame::{BBox, Look};

/// How often the gate looks beyond motion.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    /// Still objects' boxes join the regions this often.
    pub still_every: Duration,
    /// The whole frame this often, whatever moves.
    pub full_every: Duration,
    pub regions: RegionSettings,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            // A parked car checked every 5 s: an end is late by 5 s at most
            // (the tracker's own lost time covers that), at a fifth of the
            // model calls of `fps: 5` on a still scene with one object.
            still_every: Duration::from_secs(5),
            full_every: Duration::from_secs(30),
            regions: RegionSettings::default(),
        }
    }
}

/// One stream's gate.
#[derive(Debug)]
pub struct MotionGate {
    settings: GateSettings,
    last_full: Option<Duration>,
    last_still: Option<Duration>,
}

/// What the tracker knows of a frame to come: predicted boxes, normalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tracked {
    /// Objects that move.
    pub moving: Vec<BBox>,
    /// Objects that stand still.
    pub still: Vec<BBox>,
    /// The stream tracks its objects (else the rest says nothing).
    pub tracking: bool,
    /// The timestamp (ns) of the latest frame the tracker took.
    pub through: Option<u64>,
}

impl MotionGate {
    pub fn new(settings: GateSettings) -> Self {
        Self {
            settings,
            last_full: None,
            last_still: None,
        }
    }

    /// What to analyse of a `width` x `height` frame at `now` that showed
    /// `motion`, with the tracker's objects `tracked`.
    pub fn look(
        &mut self,
        now: Duration,
        motion: &Motion,
        tracked: &Tracked,
        width: u32,
        height: u32,
    ) -> Look {
        let s = &self.settings;
        // Time that went back (a looped file, a camera's new timeline)
        // makes every check due.
        let due = |last: Option<Duration>, every: Duration| {
            last.is_none_or(|t| now.checked_sub(t).is_none_or(|d| d >= every))
        };
        if motion.recalibrated || due(self.last_full, s.full_every) {
            self.last_full = Some(now);
            self.last_still = Some(now);
            return Look::Whole;
        }
        // The tracker runs a frame or two behind the source: until it has
        // taken the last whole frame, what that frame found (a parked car at
        // start-up) is known to nobody. Look whole again meanwhile.
        let behind = tracked.tracking
            && self.last_full.is_some_and(|full| {
                tracked
                    .through
                    .is_none_or(|t| Duration::from_nanos(t) < full)
            });
        if behind {
            return Look::Whole;
        }
        let mut boxes: Vec<BBox> = motion.boxes.clone();
        boxes.extend(&tracked.moving);
        if !tracked.still.is_empty() && due(self.last_still, s.still_every) {
            boxes.extend(&tracked.still);
            self.last_still = Some(now);
        }
        let look = plan(&boxes, width, height, &s.regions);
        if look == Look::Whole {
            self.last_full = Some(now);
            self.last_still = Some(now);
        }
        look
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 1920;
    const H: u32 = 1080;

    fn at(t0: Duration, ms: u64) -> Duration {
        t0 + Duration::from_millis(ms)
    }

    fn small(x: f32) -> BBox {
        BBox {
            x,
            y: 0.5,
            w: 0.02,
            h: 0.08,
        }
    }

    fn moved(boxes: Vec<BBox>) -> Motion {
        Motion {
            boxes,
            ..Motion::default()
        }
    }

    /// Frames at 5 fps from `from_ms` for `n` frames: how many were whole,
    /// regions, nothing.
    fn run(
        g: &mut MotionGate,
        t0: Duration,
        from_ms: u64,
        n: u64,
        motion: &Motion,
        tracked: &Tracked,
    ) -> (u32, u32, u32) {
        let mut counts = (0, 0, 0);
        for i in 0..n {
            match g.look(at(t0, from_ms + i * 200), motion, tracked, W, H) {
                Look::Whole => counts.0 += 1,
                Look::Regions(_) => counts.1 += 1,
                Look::Nothing => counts.2 += 1,
            }
        }
        counts
    }

    #[test]
    fn a_still_empty_scene_costs_one_whole_frame_every_30_s() {
        let t0 = Duration::ZERO;
        let mut g = MotionGate::new(GateSettings::default());
        // 60 s at 5 fps: the first frame, then 30 s later.
        let counts = run(&mut g, t0, 0, 300, &Motion::default(), &Tracked::default());
        assert_eq!(counts, (2, 0, 298));
    }

    #[test]
    fn motion_is_looked_at_in_regions_every_frame() {
        let t0 = Duration::ZERO;
        let mut g = MotionGate::new(GateSettings::default());
        assert_eq!(
            g.look(t0, &Motion::default(), &Tracked::default(), W, H),
            Look::Whole
        );
        let m = moved(vec![small(0.7)]);
        assert_eq!(
            run(&mut g, t0, 200, 25, &m, &Tracked::default()),
            (0, 25, 0)
        );
        // An object the tracker sees moving, with no motion box this frame
        // (the detector's box runs ahead of the motion): still looked at.
        let tracked = Tracked {
            moving: vec![small(0.3)],
            ..Tracked::default()
        };
        assert_eq!(
            run(&mut g, t0, 5200, 5, &Motion::default(), &tracked),
            (0, 5, 0)
        );
    }

    #[test]
    fn still_objects_are_looked_at_every_5_s_not_every_frame() {
        let t0 = Duration::ZERO;
        let mut g = MotionGate::new(GateSettings::default());
        let parked = Tracked {
            still: vec![small(0.5)],
            ..Tracked::default()
        };
        assert_eq!(g.look(t0, &Motion::default(), &parked, W, H), Look::Whole);
        // 20 s after: at 5, 10, 15 and 20 s, a region around the car.
        let counts = run(&mut g, t0, 200, 100, &Motion::default(), &parked);
        assert_eq!(counts, (0, 4, 96));
    }

    #[test]
    fn until_the_tracker_has_taken_the_whole_frame_the_frame_is_looked_at_whole() {
        let mut g = MotionGate::new(GateSettings::default());
        let t0 = Duration::from_secs(100);
        let behind = Tracked {
            tracking: true,
            through: Some(99_800_000_000),
            ..Tracked::default()
        };
        assert_eq!(g.look(t0, &Motion::default(), &behind, W, H), Look::Whole);
        // Two frames on, the tracker still has not taken the whole one.
        assert_eq!(
            g.look(at(t0, 200), &Motion::default(), &behind, W, H),
            Look::Whole
        );
        let caught_up = Tracked {
            through: Some(100_000_000_000),
            ..behind.clone()
        };
        assert_eq!(
            g.look(at(t0, 400), &Motion::default(), &caught_up, W, H),
            Look::Nothing
        );
        // A stream that does not track never waits.
        let mut g = MotionGate::new(GateSettings::default());
        let untracked = Tracked::default();
        let _ = g.look(t0, &Motion::default(), &untracked, W, H);
        assert_eq!(
            g.look(at(t0, 200), &Motion::default(), &untracked, W, H),
            Look::Nothing
        );
    }

    #[test]
    fn a_change_of_the_whole_scene_is_analysed_whole() {
        let t0 = Duration::ZERO;
        let mut g = MotionGate::new(GateSettings::default());
        let _ = g.look(t0, &Motion::default(), &Tracked::default(), W, H);
        let lights = Motion {
            recalibrated: true,
            changed: 0.9,
            ..Motion::default()
        };
        assert_eq!(
            g.look(at(t0, 1000), &lights, &Tracked::default(), W, H),
            Look::Whole
        );
        // And the 30 s count starts again from there.
        let quiet = run(
            &mut g,
            t0,
            1200,
            140,
            &Motion::default(),
            &Tracked::default(),
        );
        assert_eq!(quiet, (0, 0, 140));
        // A file that starts again at 0: the whole frame, at once.
        assert_eq!(
            g.look(
                Duration::ZERO,
                &Motion::default(),
                &Tracked::default(),
                W,
                H
            ),
            Look::Whole
        );
    }
}
