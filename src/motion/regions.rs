//! Where the model looks: squares of at least the model's own input size,
//! in source pixels, around clusters of motion and of moving objects'
//! predicted boxes, so that a small far object reaches the model at 1:1
//! instead of squeezed with the whole frame; and the merge of what the
//! model found in them back into one list for the frame.
//!
//! A region is never smaller than the model's input (a crop is scaled
//! down to it or taken 1:1, never scaled up past what the model needs),
//! lies inside the frame, and when the regions would cover most of the
//! frame, or be too many, the frame is analysed whole instead.

use crate::frame::{BBox, Crop, Detection, Look};

/// How regions are made.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSettings {
    /// The model's input side in pixels (300 for SSD-MobileNetV2).
    pub model_side: u32,
    /// Room around a cluster: the region's side is at least the cluster's
    /// longer side times this.
    pub margin: f32,
    /// More regions than this in one frame: the whole frame instead.
    pub max_regions: usize,
    /// Regions covering more than this share of the frame: the whole
    /// frame instead (one pass costs less than several that see it all).
    pub whole_above: f32,
}

impl Default for RegionSettings {
    fn default() -> Self {
        Self {
            model_side: 300,
            margin: 1.2,
            max_regions: 4,
            whole_above: 0.35,
        }
    }
}

/// The regions for `boxes` (motion boxes and moving objects' predicted
/// boxes, normalised to the frame) in a `width` x `height` frame.
pub fn plan(boxes: &[BBox], width: u32, height: u32, s: &RegionSettings) -> Look {
    let (fw, fh) = (width as f32, height as f32);
    let short = width.min(height);
    if boxes.is_empty() {
        return Look::Nothing;
    }
    // A frame no larger than the model's input is analysed whole.
    if short <= s.model_side {
        return Look::Whole;
    }
    let pixels: Vec<Span> = boxes
        .iter()
        .filter(|b| b.w > 0.0 && b.h > 0.0)
        .map(|b| Span {
            x0: b.x * fw,
            y0: b.y * fh,
            x1: (b.x + b.w) * fw,
            y1: (b.y + b.h) * fh,
        })
        .collect();
    let clusters = cluster(pixels, s);
    // A cluster wider than the frame is high would not fit in a square.
    if clusters.iter().any(|c| c.side() * s.margin > short as f32) {
        return Look::Whole;
    }
    let regions: Vec<Crop> = clusters
        .iter()
        .map(|c| square(c, width, height, s))
        .collect();
    let covered: f32 = regions
        .iter()
        .map(|r| r.width as f32 * r.height as f32)
        .sum();
    if regions.len() > s.max_regions || covered > s.whole_above * fw * fh {
        Look::Whole
    } else if regions.is_empty() {
        Look::Nothing
    } else {
        Look::Regions(regions)
    }
}

/// A box in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
}

impl Span {
    fn union(&self, o: &Span) -> Span {
        Span {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }

    fn side(&self) -> f32 {
        (self.x1 - self.x0).max(self.y1 - self.y0)
    }
}

/// Boxes joined while one region of the model's size (with the margin)
/// still holds them together, or while they overlap; then, while there are
/// more than `max_regions`, the two whose union is smallest: a larger
/// region scaled down to the model still sees small things larger than
/// the whole frame squeezed into it.
fn cluster(spans: Vec<Span>, s: &RegionSettings) -> Vec<Span> {
    let mut spans = join_near(spans, s);
    while spans.len() > s.max_regions.max(1) {
        let mut best = (f32::INFINITY, 0, 1);
        for i in 0..spans.len() {
            for j in i + 1..spans.len() {
                let side = spans[i].union(&spans[j]).side();
                if side < best.0 {
                    best = (side, i, j);
                }
            }
        }
        let (_, i, j) = best;
        spans[i] = spans[i].union(&spans[j]);
        spans.swap_remove(j);
        spans = join_near(spans, s);
    }
    spans
}

fn join_near(mut spans: Vec<Span>, s: &RegionSettings) -> Vec<Span> {
    loop {
        let mut joined = false;
        'pairs: for i in 0..spans.len() {
            for j in i + 1..spans.len() {
                let (a, b) = (spans[i], spans[j]);
                let u = a.union(&b);
                let overlap = a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
                if overlap || u.side() * s.margin <= s.model_side as f32 {
                    spans[i] = u;
                    spans.swap_remove(j);
                    joined = true;
                    break 'pairs;
                }
            }
        }
        if !joined {
            return spans;
        }
    }
}

/// The square around a cluster: at least the model's side, the cluster's
/// side with the margin, at most the frame's shorter side; centred on the
/// cluster and shifted inside the frame.
fn square(c: &Span, width: u32, height: u32, s: &RegionSettings) -> Crop {
    let short = width.min(height) as f32;
    let side = (c.side() * s.margin)
        .max(s.model_side as f32)
        .min(short)
        .round();
    let cx = (c.x0 + c.x1) / 2.0;
    let cy = (c.y0 + c.y1) / 2.0;
    let x = (cx - side / 2.0).clamp(0.0, width as f32 - side);
    let y = (cy - side / 2.0).clamp(0.0, height as f32 - side);
    Crop {
        x: x.round() as u32,
        y: y.round() as u32,
        width: side as u32,
        height: side as u32,
    }
}

/// Detections of one region, in the region's own normalised coordinates,
/// moved to the frame's.
pub fn to_frame(dets: &mut [Detection], region: &Crop, width: u32, height: u32) {
    let (fw, fh) = (width as f32, height as f32);
    let (rx, ry) = (region.x as f32 / fw, region.y as f32 / fh);
    let (rw, rh) = (region.width as f32 / fw, region.height as f32 / fh);
    for d in dets {
        d.bbox = BBox {
            x: rx + d.bbox.x * rw,
            y: ry + d.bbox.y * rh,
            w: d.bbox.w * rw,
            h: d.bbox.h * rh,
        };
    }
}

/// Two detections of one label are one object when the smaller lies this
/// much inside the larger: an object cut by a region's edge is seen whole
/// in one region and in part in the other.
const SAME_OBJECT: f32 = 0.6;

/// The detections of every region (in frame coordinates, one list per
/// region) as one list: of two from different regions that are one
/// object, the larger view is kept (the cut one is part of it); within a
/// region the model's own list stands (an occluded object stays), and
/// neighbours that only touch stay two.
pub fn merge(per_region: Vec<Vec<Detection>>) -> Vec<Detection> {
    let area = |b: &BBox| b.w.max(0.0) * b.h.max(0.0);
    let mut all: Vec<(usize, Detection)> = per_region
        .into_iter()
        .enumerate()
        .flat_map(|(r, dets)| dets.into_iter().map(move |d| (r, d)))
        .collect();
    all.sort_by(|a, b| area(&b.1.bbox).total_cmp(&area(&a.1.bbox)));
    let mut kept: Vec<(usize, Detection)> = Vec::with_capacity(all.len());
    for (r, d) in all {
        let smaller = area(&d.bbox);
        let seen = kept.iter().any(|(kr, k)| {
            *kr != r
                && k.label == d.label
                && smaller > 0.0
                && intersection(&k.bbox, &d.bbox) / smaller >= SAME_OBJECT
        });
        if !seen {
            kept.push((r, d));
        }
    }
    let mut out: Vec<Detection> = kept.into_iter().map(|(_, d)| d).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

fn intersection(a: &BBox, b: &BBox) -> f32 {
    let ix = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
    let iy = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
    if ix > 0.0 && iy > 0.0 { ix * iy } else { 0.0 }
}

#[cfg(test)]
#[path = "regions_tests.rs"]
mod tests;
