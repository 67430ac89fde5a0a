//! Box overlap and optimal assignment of detections to tracks.
//!
//! The weight of a (track, detection) pair is its IoU in integer ten
//! thousandths, 0 for a pair that may not match (other class group, IoU
//! under the gate). The matching maximises the total weight
//! (`pathfinding::kuhn_munkres`); pairs of weight 0 in it are no match. The
//! pairs that may match fall apart into small groups of overlapping boxes,
//! each solved on its own: the result is the same optimum, at a fraction of
//! the cost of one big matrix.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

use crate::frame::BBox;

/// Intersection over union; 0 for empty or invalid boxes.
pub(crate) fn iou(a: &BBox, b: &BBox) -> f32 {
    let finite =
        |b: &BBox| b.x.is_finite() && b.y.is_finite() && b.w.is_finite() && b.h.is_finite();
    if !(finite(a) && finite(b)) {
        return 0.0;
    }
    let ix = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
    let iy = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
    if !(ix > 0.0 && iy > 0.0) {
        return 0.0;
    }
    let inter = ix * iy;
    let union = a.w * a.h + b.w * b.h - inter;
    if union <= 0.0 {
        return 0.0;
    }
    (inter / union).clamp(0.0, 1.0)
}

/// `b` grown by `r` of its width and height on every side (the buffered IoU
/// of C-BIoU: tolerance for motion the prediction did not foresee).
pub(crate) fn expand(b: &BBox, r: f32) -> BBox {
    BBox {
        x: b.x - r * b.w,
        y: b.y - r * b.h,
        w: b.w * (1.0 + 2.0 * r),
        h: b.h * (1.0 + 2.0 * r),
    }
}

/// The weight of an IoU at or above `gate`, else 0.
pub(crate) fn weight(iou: f32, gate: f32) -> i64 {
    if iou >= gate && iou > 0.0 {
        ((iou * 10_000.0).round() as i64).max(1)
    } else {
        0
    }
}

/// A maximum-weight matching of `rows` x `cols` with `weight(r, c)` (> 0:
/// may match); the matched (row, col) pairs, sorted by row.
pub(crate) fn assign(
    rows: usize,
    cols: usize,
    mut weight: impl FnMut(usize, usize) -> i64,
) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let w = weight(r, c);
            if w > 0 {
                edges.push((r, c, w));
            }
        }
    }
    if edges.is_empty() {
        return Vec::new();
    }
    // Connected groups over rows (0..rows) and columns (rows..rows + cols).
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(r, c, _) in &edges {
        let (a, b) = (find(&mut parent, r), find(&mut parent, rows + c));
        if a != b {
            parent[a] = b;
        }
    }
    type Edges = Vec<(usize, usize, i64)>;
    let mut groups: Vec<(usize, Edges)> = Vec::new();
    for &(r, c, w) in &edges {
        let root = find(&mut parent, r);
        match groups.iter_mut().find(|(g, _)| *g == root) {
            Some((_, es)) => es.push((r, c, w)),
            None => groups.push((root, vec![(r, c, w)])),
        }
    }
    let mut out = Vec::new();
    for (_, es) in groups {
        out.extend(match_group(&es));
    }
    out.sort_unstable();
    out
}

/// The maximum-weight matching of one connected group of edges (row,
/// column, weight), by the Hungarian method on the group's own small matrix.
fn match_group(es: &[(usize, usize, i64)]) -> Vec<(usize, usize)> {
    if es.len() == 1 {
        return vec![(es[0].0, es[0].1)];
    }
    let mut rs: Vec<usize> = es.iter().map(|e| e.0).collect();
    let mut cs: Vec<usize> = es.iter().map(|e| e.1).collect();
    rs.sort_unstable();
    rs.dedup();
    cs.sort_unstable();
    cs.dedup();
    let transpose = rs.len() > cs.len();
    let (nr, nc) = if transpose {
        (cs.len(), rs.len())
    } else {
        (rs.len(), cs.len())
    };
    let mut m = Matrix::new(nr, nc, 0i64);
    for &(r, c, w) in es {
        let (i, j) = (
            rs.binary_search(&r).unwrap_or(0),
            cs.binary_search(&c).unwrap_or(0),
        );
        if transpose {
            m[(j, i)] = w;
        } else {
            m[(i, j)] = w;
        }
    }
    let (_, to) = kuhn_munkres(&m);
    let mut out = Vec::new();
    for (i, &j) in to.iter().enumerate() {
        if m[(i, j)] > 0 {
            out.push(if transpose {
                (rs[j], cs[i])
            } else {
                (rs[i], cs[j])
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&b(0.0, 0.0, 1.0, 1.0), &b(0.0, 0.0, 1.0, 1.0)), 1.0);
        assert!((iou(&b(0.0, 0.0, 0.2, 0.2), &b(0.1, 0.0, 0.2, 0.2)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&b(0.0, 0.0, 0.1, 0.1), &b(0.5, 0.5, 0.1, 0.1)), 0.0);
        assert_eq!(
            iou(&b(f32::NAN, 0.0, 0.1, 0.1), &b(0.0, 0.0, 0.1, 0.1)),
            0.0
        );
    }

    #[test]
    fn optimal_not_greedy() {
        // Greedy takes (0, 0) = 9 and leaves 1 for (1, 1): 10. Optimal: 8 + 8.
        let w = [[9, 8], [8, 1]];
        assert_eq!(assign(2, 2, |r, c| w[r][c]), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn more_rows_than_columns_and_zero_weights() {
        let w = [[0, 5], [7, 0], [3, 6]];
        assert_eq!(assign(3, 2, |r, c| w[r][c]), vec![(1, 0), (2, 1)]);
        assert!(assign(3, 0, |_, _| 1).is_empty());
    }
}
