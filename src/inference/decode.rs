//! Turning model outputs into detections and classes: pure functions over
//! slices, so they are tested without a model.

use std::sync::Arc;

use crate::frame::{BBox, Class, Detection};

/// Labels by output index; a missing label is the index itself.
#[derive(Debug, Clone, Default)]
pub struct Labels(Vec<Arc<str>>);

impl Labels {
    pub fn parse(text: &str) -> Self {
        Labels(text.lines().map(|l| Arc::from(l.trim())).collect())
    }

    pub fn get(&self, i: usize) -> Arc<str> {
        self.0
            .get(i)
            .cloned()
            .unwrap_or_else(|| Arc::from(i.to_string()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every label, by index.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|l| l.to_string()).collect()
    }
}

/// SSD with raw outputs: per-anchor class scores `[A, C]` (already
/// sigmoid/softmax) and boxes `[A, 4]` as (ymin, xmin, ymax, xmax),
/// normalised. Keeps each anchor's best class at or above `min_score`,
/// then per-class non-maximum suppression at `iou`.
pub fn ssd_raw(
    scores: &[f32],
    boxes: &[f32],
    classes: usize,
    min_score: f32,
    iou: f32,
    labels: &Labels,
    out: &mut Vec<Detection>,
) {
    out.clear();
    let anchors = boxes.len() / 4;
    let mut candidates: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for a in 0..anchors.min(scores.len() / classes.max(1)) {
        let row = &scores[a * classes..(a + 1) * classes];
        // Nearly every anchor is below the threshold in every class: a plain
        // compare rules it out at a third of the arg-max's cost.
        if !row.iter().any(|&s| s >= min_score) {
            continue;
        }
        let (best, &score) = row
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .unwrap_or((0, &0.0));
        if score >= min_score {
            let b = &boxes[a * 4..a * 4 + 4];
            candidates.push((best, score, [b[0], b[1], b[2], b[3]]));
        }
    }
    candidates.sort_by(|x, y| y.1.total_cmp(&x.1));
    let mut kept: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for c in candidates {
        if kept
            .iter()
            .all(|k| k.0 != c.0 || box_iou(&k.2, &c.2) <= iou)
        {
            kept.push(c);
        }
    }
    out.extend(kept.into_iter().map(|(class, score, b)| Detection {
        label: labels.get(class),
        label_id: class as u32,
        score,
        bbox: corners_to_box(&b),
        track: None,
        sub_label: None,
        held: false,
    }));
}

/// (ymin, xmin, ymax, xmax), normalised, to a box clamped to the frame.
fn corners_to_box(b: &[f32]) -> BBox {
    let (ymin, xmin) = (b[0].clamp(0.0, 1.0), b[1].clamp(0.0, 1.0));
    let (ymax, xmax) = (b[2].clamp(0.0, 1.0), b[3].clamp(0.0, 1.0));
    BBox {
        x: xmin,
        y: ymin,
        w: (xmax - xmin).max(0.0),
        h: (ymax - ymin).max(0.0),
    }
}

/// SSD with NMS inside the graph (TensorFlow Object Detection API layout):
/// boxes `[N, 4]` as (ymin, xmin, ymax, xmax), class ids `[N]`, scores
/// `[N]`, and how many of the N are valid. Label line = class id - `class_offset`.
#[allow(clippy::too_many_arguments)]
pub fn ssd_postprocessed(
    boxes: &[f32],
    classes: &[f32],
    scores: &[f32],
    count: Option<usize>,
    class_offset: i64,
    min_score: f32,
    labels: &Labels,
    out: &mut Vec<Detection>,
) {
    out.clear();
    let n = count
        .unwrap_or(usize::MAX)
        .min(scores.len())
        .min(classes.len())
        .min(boxes.len() / 4);
    for i in 0..n {
        let score = scores[i];
        if score < min_score {
            continue;
        }
        // The class id is a float from the model and the offset from the
        // config: neither may overflow or wrap into a wrong label.
        let id = (classes[i].round() as i64).saturating_sub(class_offset);
        let (Ok(id), Ok(label_id)) = (usize::try_from(id), u32::try_from(id)) else {
            continue;
        };
        let b = &boxes[i * 4..i * 4 + 4];
        out.push(Detection {
            label: labels.get(id),
            label_id,
            score,
            bbox: corners_to_box(b),
            track: None,
            sub_label: None,
            held: false,
        });
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
}

/// Intersection over union of two (ymin, xmin, ymax, xmax) boxes.
fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ih = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iw = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ih * iw;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// The `k` highest of `probs` at or above `min_score`, best first.
pub fn top_k(probs: &[f32], k: usize, min_score: f32, labels: &Labels) -> Vec<Class> {
    let mut idx: Vec<usize> = (0..probs.len())
        .filter(|&i| probs[i] >= min_score)
        .collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    idx.truncate(k);
    idx.into_iter()
        .map(|i| Class {
            label: labels.get(i),
            label_id: i as u32,
            score: probs[i],
        })
        .collect()
}

/// Softmax in place (for models that output logits).
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        for x in v.iter_mut() {
            *x /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels::parse("person\nbicycle\ncar\n")
    }

    #[test]
    fn ssd_keeps_best_class_and_suppresses_overlaps_per_class() {
        // Four anchors, three classes.
        let scores = [
            0.9, 0.1, 0.0, // person
            0.8, 0.0, 0.1, // person, overlapping the first: suppressed
            0.0, 0.0, 0.7, // car at the same place: another class, kept
            0.2, 0.3, 0.1, // below min_score
        ];
        let boxes = [
            0.1, 0.2, 0.5, 0.6, //
            0.12, 0.2, 0.5, 0.62, //
            0.1, 0.2, 0.5, 0.6, //
            0.0, 0.0, 1.0, 1.0,
        ];
        let mut out = Vec::new();
        ssd_raw(&scores, &boxes, 3, 0.5, 0.5, &labels(), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(&*out[0].label, "person");
        assert_eq!(out[0].score, 0.9);
        let b = out[0].bbox;
        assert!((b.x - 0.2).abs() < 1e-6 && (b.y - 0.1).abs() < 1e-6);
        assert!((b.w - 0.4).abs() < 1e-6 && (b.h - 0.4).abs() < 1e-6);
        assert_eq!(&*out[1].label, "car");
        assert_eq!(out[1].label_id, 2);
    }

    #[test]
    fn ssd_clamps_boxes_to_the_frame() {
        let mut out = Vec::new();
        ssd_raw(
            &[0.9],
            &[-0.1, -0.2, 1.2, 0.5],
            1,
            0.5,
            0.5,
            &labels(),
            &mut out,
        );
        assert_eq!(
            out[0].bbox,
            BBox {
                x: 0.0,
                y: 0.0,
                w: 0.5,
                h: 1.0
            }
        );
    }

    #[test]
    fn hostile_class_ids_and_offsets_are_skipped_not_wrapped() {
        let boxes = [0.0, 0.0, 1.0, 1.0].repeat(4);
        let classes = [f32::MAX, -f32::MAX, f32::NAN, 4.3e9];
        let scores = [0.9; 4];
        let mut out = Vec::new();
        for offset in [i64::MIN, i64::MAX, 1] {
            ssd_postprocessed(
                &boxes,
                &classes,
                &scores,
                None,
                offset,
                0.5,
                &labels(),
                &mut out,
            );
            // None of these is a class: skipped, none wraps into a label.
            assert!(out.iter().all(|d| d.label_id <= 1), "{offset}: {out:?}");
        }
    }

    #[test]
    fn postprocessed_ssd_reads_count_offset_and_score() {
        let boxes = [
            0.1, 0.2, 0.5, 0.6, //
            0.0, 0.0, 1.0, 1.0, //
            0.3, 0.3, 0.4, 0.4, //
            0.0, 0.0, 0.0, 0.0,
        ];
        // 1-based ids: 3 = car, 1 = person; the 4th entry is past the count.
        let classes = [3.0, 1.0, 2.0, 1.0];
        let scores = [0.6, 0.9, 0.2, 0.99];
        let mut out = Vec::new();
        ssd_postprocessed(
            &boxes,
            &classes,
            &scores,
            Some(3),
            1,
            0.5,
            &labels(),
            &mut out,
        );
        let got: Vec<(&str, u32)> = out.iter().map(|d| (&*d.label, d.label_id)).collect();
        assert_eq!(got, vec![("person", 0), ("car", 2)]);
        let b = out[1].bbox;
        assert!(
            (b.x - 0.2).abs() < 1e-6 && (b.y - 0.1).abs() < 1e-6,
            "{b:?}"
        );
        assert!(
            (b.w - 0.4).abs() < 1e-6 && (b.h - 0.4).abs() < 1e-6,
            "{b:?}"
        );
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_boxes() {
        let a = [0.0, 0.0, 1.0, 1.0];
        assert_eq!(box_iou(&a, &a), 1.0);
        assert_eq!(box_iou(&a, &[2.0, 2.0, 3.0, 3.0]), 0.0);
        assert!((box_iou(&a, &[0.0, 0.0, 1.0, 0.5]) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_filters_and_labels() {
        let got = top_k(&[0.1, 0.6, 0.3], 2, 0.2, &labels());
        let names: Vec<&str> = got.iter().map(|c| &*c.label).collect();
        assert_eq!(names, ["bicycle", "car"]);
        assert_eq!(
            top_k(&[0.1, 0.6, 0.3], 5, 0.0, &Labels::default())[2]
                .label
                .as_ref(),
            "0"
        );
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut v = [1.0, 2.0, 3.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0]);
    }
}
