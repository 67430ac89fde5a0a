//! A stream's motion stage as the source runs it: per kept frame, the grey
//! image from its luma, the motion in it, and what the model is asked
//! (the gate), with the tracker's latest view fed back by the route.

use std::sync::Mutex;
use std::time::Duration;

use super::gate::{GateSettings, MotionGate, Tracked};
use super::{Gray, MotionDetector, MotionSettings};
use crate::frame::Sight;
use crate::sync::locked;

/// A stream's motion stage, as the config resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionSpec {
    pub detector: MotionSettings,
    /// Polygons (normalised corners) where motion is ignored.
    pub masks: Vec<Vec<[f32; 2]>>,
    pub gate: GateSettings,
    /// Rows of the grey image motion runs on.
    pub height: u32,
}

impl Default for MotionSpec {
    fn default() -> Self {
        Self {
            detector: MotionSettings::default(),
            masks: Vec::new(),
            gate: GateSettings::default(),
            // Frigate's size: a person 40 px tall in 1080p is 4 rows.
            height: 100,
        }
    }
}

/// The tracker's latest view of a stream, for its gate: the route writes
/// it after each frame, the source reads it for the next. (Feedback goes
/// upstream, so it cannot travel in band with the frames.)
#[derive(Debug, Default)]
pub struct Feedback(Mutex<Tracked>);

impl Feedback {
    pub fn set(&self, tracked: Tracked) {
        *locked(&self.0) = tracked;
    }

    pub fn get(&self) -> Tracked {
        locked(&self.0).clone()
    }
}

/// A decoded frame's luma: `step` bytes between pixels (1 in planar
/// formats, 2 in packed 4:2:2), `stride` between rows.
pub struct Luma<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub step: usize,
    pub width: u32,
    pub height: u32,
}

/// One source session's motion state (a new session starts a new
/// background: the camera may have moved while it was away).
pub struct MotionStage {
    detector: MotionDetector,
    gate: MotionGate,
    height: u32,
}

impl MotionStage {
    pub fn new(spec: &MotionSpec) -> Self {
        Self {
            detector: MotionDetector::new(spec.detector.clone(), spec.masks.clone()),
            gate: MotionGate::new(spec.gate.clone()),
            height: spec.height,
        }
    }

    /// What the model is asked about a frame at `now` (stream time) whose
    /// luma is `luma`, with the tracker's view `tracked`.
    pub fn frame(&mut self, luma: &Luma<'_>, tracked: &Tracked, now: Duration) -> Sight {
        let (w, h) = (luma.width, luma.height);
        let gray = Gray::from_luma(luma.data, luma.stride, luma.step, w, h, self.height);
        if gray.data.is_empty() {
            // Nothing to compare: the model looks at everything.
            return Sight::default();
        }
        let motion = self.detector.frame(&gray);
        if motion.recalibrated {
            tracing::debug!(
                changed = motion.changed,
                "motion: the scene changed as a whole; the background starts again"
            );
        }
        let look = self.gate.look(now, &motion, tracked, w, h);
        Sight {
            look,
            motion: motion.boxes,
        }
    }
}
