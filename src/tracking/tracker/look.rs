//! The tracker and the motion stage: objects the model was not asked
//! about in a frame (outside the regions it looked at, or every object
//! of a frame it skipped) are held, neither seen nor missed, so that no
//! event ends and no count drops because the model was not asked; and
//! the predicted boxes the motion gate looks at next.

use super::{FrameInfo, FrameOutput, Tracker};
use crate::frame::{BBox, Detection, Look};
use crate::motion::gate::Tracked;

impl Tracker {
    /// Takes one analysed frame and all its detections (including those
    /// under the stream's `min_score`, down to `low_score`).
    pub fn update(&mut self, frame: &FrameInfo, detections: &[Detection]) -> FrameOutput {
        self.update_in(frame, detections, &Look::Whole, (1, 1))
    }

    /// Marks the tracks whose predicted centre lies outside `look` of a
    /// `size` frame as held for this frame. A prediction past the frame's
    /// edge (someone walking out) counts at the edge: where the gate looks
    /// for it (see `lookout`), so that it ends in its lost time.
    pub(super) fn mark_held(&mut self, look: &Look, size: (u32, u32)) {
        let now = self.now;
        for t in &mut self.tracks {
            let b = inside(t.predicted(now, &self.p));
            t.held = !look.covers(b.x + b.w / 2.0, b.y + b.h / 2.0, size.0, size.1);
        }
    }

    /// The confirmed objects held in the latest frame, as detections at
    /// their last box and score (`held`).
    pub fn held(&self) -> Vec<Detection> {
        self.tracks
            .iter()
            .filter(|t| t.held && !t.matched)
            .filter_map(|t| {
                Some(Detection {
                    label: t.label.clone(),
                    label_id: t.label_id,
                    score: t.score,
                    bbox: t.bbox,
                    track: Some(t.id.clone()?),
                    sub_label: t.sub_label.clone(),
                    held: true,
                })
            })
            .collect()
    }

    /// Where the motion gate should look next: the predicted boxes of the
    /// objects that move (tentative ones too: they need a second sighting
    /// to be confirmed) and of those that stand still.
    pub fn lookout(&self) -> Tracked {
        let mut tracked = Tracked::default();
        for t in &self.tracks {
            let b = inside(t.predicted(self.now, &self.p));
            if t.stationary {
                tracked.still.push(b);
            } else {
                tracked.moving.push(b);
            }
        }
        tracked
    }
}

/// `b` moved (not cut) into the frame, at most the frame's size.
fn inside(b: BBox) -> BBox {
    let finite = |v: f32| if v.is_finite() { v } else { 0.0 };
    let (w, h) = (finite(b.w).clamp(0.0, 1.0), finite(b.h).clamp(0.0, 1.0));
    BBox {
        x: finite(b.x).clamp(0.0, 1.0 - w),
        y: finite(b.y).clamp(0.0, 1.0 - h),
        w,
        h,
    }
}
