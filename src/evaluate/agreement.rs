//! How closely a variant of a detector agrees with its reference: recall
//! and precision at IoU 0.5, per label, the reference's detections taken as
//! the truth. Pure, so the matching is tested alone.

use std::collections::BTreeMap;

use crate::frame::{BBox, Detection};

/// Overlap at which two boxes of the same label are the same object.
pub const IOU: f32 = 0.5;

/// Counts of one label (or of all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Objects the reference found (the truth).
    pub reference: u64,
    /// Objects the variant found.
    pub variant: u64,
    /// Pairs matched one to one.
    pub matched: u64,
}

impl Counts {
    /// Of the reference's objects, the share the variant found too; 1 when
    /// there were none to find.
    pub fn recall(&self) -> f64 {
        ratio(self.matched, self.reference)
    }

    /// Of the variant's objects, the share the reference found too.
    pub fn precision(&self) -> f64 {
        ratio(self.matched, self.variant)
    }

    fn add(&mut self, o: Counts) {
        self.reference += o.reference;
        self.variant += o.variant;
        self.matched += o.matched;
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// The tally over many frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agreement {
    pub frames: u64,
    pub labels: BTreeMap<String, Counts>,
}

impl Agreement {
    /// Adds one frame: objects at or above `min_score` count, on both sides
    /// (what a subscriber would be told), matched greedily by overlap.
    pub fn add_frame(&mut self, reference: &[Detection], variant: &[Detection], min_score: f32) {
        self.frames += 1;
        let keep = |d: &[Detection]| -> Vec<Detection> {
            d.iter().filter(|d| d.score >= min_score).cloned().collect()
        };
        let (r, v) = (keep(reference), keep(variant));
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (i, a) in r.iter().enumerate() {
            for (j, b) in v.iter().enumerate() {
                let o = iou(&a.bbox, &b.bbox);
                // By name: two models may number their labels differently.
                if a.label == b.label && o >= IOU {
                    pairs.push((o, i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut r_used, mut v_used) = (vec![false; r.len()], vec![false; v.len()]);
        for (_, i, j) in pairs {
            if !r_used[i] && !v_used[j] {
                r_used[i] = true;
                v_used[j] = true;
                self.entry(&r[i].label).matched += 1;
            }
        }
        for d in &r {
            self.entry(&d.label).reference += 1;
        }
        for d in &v {
            self.entry(&d.label).variant += 1;
        }
    }

    fn entry(&mut self, label: &str) -> &mut Counts {
        self.labels.entry(label.to_string()).or_default()
    }

    /// Every label together.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.labels.values() {
            t.add(*c);
        }
        t
    }
}

/// Intersection over union of two boxes (x, y, w, h).
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let w = ((a.x + a.w).min(b.x + b.w) - a.x.max(b.x)).max(0.0);
    let h = ((a.y + a.h).min(b.y + b.h) - a.y.max(b.y)).max(0.0);
    let inter = w * h;
    let union = a.w * a.h + b.w * b.h - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &str, id: u32, score: f32, x: f32) -> Detection {
        Detection {
            label: label.into(),
            label_id: id,
            score,
            bbox: BBox {
                x,
                y: 0.1,
                w: 0.2,
                h: 0.4,
            },
            track: None,
            sub_label: None,
            held: false,
        }
    }

    #[test]
    fn a_model_agrees_with_itself_completely() {
        let d = vec![det("person", 0, 0.9, 0.1), det("cat", 16, 0.7, 0.5)];
        let mut a = Agreement::default();
        a.add_frame(&d, &d, 0.5);
        let t = a.total();
        assert_eq!((t.reference, t.variant, t.matched), (2, 2, 2));
        assert_eq!((t.recall(), t.precision()), (1.0, 1.0));
    }

    #[test]
    fn misses_extras_other_labels_and_far_boxes_count_against() {
        let r = vec![det("person", 0, 0.9, 0.1), det("person", 0, 0.8, 0.6)];
        let v = vec![
            det("person", 0, 0.9, 0.12), // the first, shifted a little
            det("dog", 17, 0.9, 0.6),    // the second's place, another label
            det("person", 0, 0.6, 0.35), // IoU with the first under 0.5
        ];
        let mut a = Agreement::default();
        a.add_frame(&r, &v, 0.5);
        let p = a.labels["person"];
        assert_eq!((p.reference, p.variant, p.matched), (2, 2, 1));
        assert_eq!(a.labels["dog"].variant, 1);
        let t = a.total();
        assert_eq!(t.recall(), 0.5);
        assert!((t.precision() - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_threshold_applies_to_both_sides_and_matches_are_one_to_one() {
        let r = vec![det("person", 0, 0.9, 0.1)];
        // Two boxes on the one object: one match, one extra.
        let v = vec![det("person", 0, 0.9, 0.1), det("person", 0, 0.8, 0.11)];
        let mut a = Agreement::default();
        a.add_frame(&r, &v, 0.5);
        assert_eq!(a.total().matched, 1);
        assert_eq!(a.total().variant, 2);
        // Under the threshold on one side: neither found nor extra.
        let mut b = Agreement::default();
        b.add_frame(&r, &[det("person", 0, 0.4, 0.1)], 0.5);
        let t = b.total();
        assert_eq!((t.reference, t.variant, t.matched), (1, 0, 0));
        assert_eq!(t.precision(), 1.0);
    }

    #[test]
    fn iou_of_boxes() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        };
        assert_eq!(iou(&a, &a), 1.0);
        let half = BBox { w: 0.5, ..a };
        assert!((iou(&a, &half) - 0.5).abs() < 1e-6);
        let far = BBox { x: 2.0, ..a };
        assert_eq!(iou(&a, &far), 0.0);
    }
}
