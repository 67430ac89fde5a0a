//! Zones and lines as configured (normalised coordinates, origin top-left),
//! their validation, and the plane geometry the tracker needs: point in
//! polygon, distance to an edge, segment intersection, side of a line.

use std::collections::HashSet;
use std::sync::Arc;

/// A point `[x, y]`, normalised to the source frame.
pub type Point = [f32; 2];

/// What a stream watches: its `zones` and `lines`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub lines: Vec<Line>,
}

/// A polygon; an object is in it when its anchor (bottom centre) is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Zone {
    pub name: Arc<str>,
    pub polygon: Vec<Point>,
    /// The labels it applies to; `None`: every label.
    #[serde(default)]
    pub labels: Option<Vec<Arc<str>>>,
}

/// A segment; an anchor crossing it to the side where
/// `(to.x - from.x) * (y - from.y) - (to.y - from.y) * (x - from.x) > 0`
/// is `in` (for `from: [0.5, 0]`, `to: [0.5, 1]`: right half to left half).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Line {
    pub name: Arc<str>,
    pub from: Point,
    pub to: Point,
    #[serde(default)]
    pub labels: Option<Vec<Arc<str>>>,
}

pub(crate) fn applies(labels: &Option<Vec<Arc<str>>>, label: &str) -> bool {
    labels
        .as_ref()
        .is_none_or(|ls| ls.iter().any(|l| &**l == label))
}

impl Zone {
    pub fn applies_to(&self, label: &str) -> bool {
        applies(&self.labels, label)
    }
}

impl Line {
    pub fn applies_to(&self, label: &str) -> bool {
        applies(&self.labels, label)
    }
}

/// Problems with a geometry, each as (path, message); paths are relative to
/// the stream entry: `zones[1].polygon[2]`, `lines[0].name`. Empty: valid.
///
/// Zones: a name `[A-Za-z0-9_-]+` unique among the zones, at least 3
/// points, every coordinate finite and in [0, 1], no point repeating the one
/// before it, some area, no two edges crossing or touching (other than
/// neighbours at their shared corner). Lines: a name unique among the lines,
/// two distinct points in [0, 1]. Labels: not empty.
pub fn validate(geometry: &Geometry) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut names = HashSet::new();
    for (i, z) in geometry.zones.iter().enumerate() {
        let at = |f: &str| format!("zones[{i}].{f}");
        name_problems(&z.name, &mut names, at("name"), &mut problems);
        labels_problems(&z.labels, &at("labels"), &mut problems);
        let mut coords_ok = true;
        for (j, p) in z.polygon.iter().enumerate() {
            if !in_unit(*p) {
                coords_ok = false;
                problems.push((
                    format!("zones[{i}].polygon[{j}]"),
                    "coordinates must be numbers between 0 and 1".into(),
                ));
            }
        }
        if z.polygon.len() < 3 {
            problems.push((at("polygon"), "a zone needs at least 3 points".into()));
            continue;
        }
        if !coords_ok {
            continue;
        }
        let n = z.polygon.len();
        let mut repeats = false;
        for j in 0..n {
            if z.polygon[j] == z.polygon[(j + 1) % n] {
                repeats = true;
                problems.push((
                    format!("zones[{i}].polygon[{}]", (j + 1) % n),
                    "repeats the point before it".into(),
                ));
            }
        }
        if repeats {
            continue;
        }
        if area(&z.polygon).abs() < 1e-9 {
            problems.push((at("polygon"), "the polygon has no area".into()));
        } else if let Some((a, b)) = self_intersection(&z.polygon) {
            problems.push((
                at("polygon"),
                format!("the polygon crosses itself (edges {a} and {b})"),
            ));
        }
    }
    let mut names = HashSet::new();
    for (i, l) in geometry.lines.iter().enumerate() {
        let at = |f: &str| format!("lines[{i}].{f}");
        name_problems(&l.name, &mut names, at("name"), &mut problems);
        labels_problems(&l.labels, &at("labels"), &mut problems);
        let mut ok = true;
        for (f, p) in [("from", l.from), ("to", l.to)] {
            if !in_unit(p) {
                ok = false;
                problems.push((at(f), "coordinates must be numbers between 0 and 1".into()));
            }
        }
        if ok && l.from == l.to {
            problems.push((at("to"), "a line needs two distinct points".into()));
        }
    }
    problems
}

fn name_problems<'a>(
    name: &'a str,
    names: &mut HashSet<&'a str>,
    path: String,
    problems: &mut Vec<(String, String)>,
) {
    let ok_chars = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(ok_chars) {
        problems.push((
            path,
            format!("name {name:?} must be letters, digits, '_' or '-'"),
        ));
    } else if !names.insert(name) {
        problems.push((path, format!("duplicate name {name:?}")));
    }
}

fn labels_problems(
    labels: &Option<Vec<Arc<str>>>,
    path: &str,
    problems: &mut Vec<(String, String)>,
) {
    for (j, l) in labels.iter().flatten().enumerate() {
        if l.trim().is_empty() {
            problems.push((format!("{path}[{j}]"), "a label must not be empty".into()));
        }
    }
}

fn in_unit(p: Point) -> bool {
    p.iter().all(|c| c.is_finite() && (0.0..=1.0).contains(c))
}

fn area(poly: &[Point]) -> f64 {
    let n = poly.len();
    (0..n)
        .map(|i| {
            let (a, b) = (poly[i], poly[(i + 1) % n]);
            a[0] as f64 * b[1] as f64 - b[0] as f64 * a[1] as f64
        })
        .sum::<f64>()
        / 2.0
}

/// The first two edges (by index of their first point) that cross or touch,
/// neighbours excepted at their shared corner; a neighbour folding back
/// over its edge counts.
fn self_intersection(poly: &[Point]) -> Option<(usize, usize)> {
    let n = poly.len();
    let edge = |i: usize| (poly[i], poly[(i + 1) % n]);
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = edge(i);
            let (c, d) = edge(j);
            let neighbours = j == i + 1 || (i == 0 && j == n - 1);
            if neighbours {
                // Sharing a corner is fine; folding back along the edge is not.
                let (shared, p, q) = if j == i + 1 { (b, a, d) } else { (a, b, c) };
                if cross(shared, p, q) == 0.0 && dot(shared, p, q) > 0.0 {
                    return Some((i, j));
                }
            } else if segments_intersect(a, b, c, d) {
                return Some((i, j));
            }
        }
    }
    None
}

/// `(b - a) x (c - a)`, in f64 so that nearly collinear points are decided
/// the same way every time.
fn cross(a: Point, b: Point, c: Point) -> f64 {
    (b[0] as f64 - a[0] as f64) * (c[1] as f64 - a[1] as f64)
        - (b[1] as f64 - a[1] as f64) * (c[0] as f64 - a[0] as f64)
}

fn dot(o: Point, a: Point, b: Point) -> f64 {
    (a[0] as f64 - o[0] as f64) * (b[0] as f64 - o[0] as f64)
        + (a[1] as f64 - o[1] as f64) * (b[1] as f64 - o[1] as f64)
}

fn on_segment(a: Point, b: Point, p: Point) -> bool {
    p[0] >= a[0].min(b[0])
        && p[0] <= a[0].max(b[0])
        && p[1] >= a[1].min(b[1])
        && p[1] <= a[1].max(b[1])
}

/// Whether segments `a-b` and `c-d` have a point in common (touching counts).
pub(crate) fn segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool {
    let (d1, d2) = (cross(c, d, a), cross(c, d, b));
    let (d3, d4) = (cross(a, b, c), cross(a, b, d));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(c, d, a))
        || (d2 == 0.0 && on_segment(c, d, b))
        || (d3 == 0.0 && on_segment(a, b, c))
        || (d4 == 0.0 && on_segment(a, b, d))
}

/// The signed distance of `p` from the infinite line through `from -> to`:
/// positive on the `in` side, where
/// `(to.x - from.x) * (y - from.y) - (to.y - from.y) * (x - from.x) > 0`
/// (PRODUCT.md). 0 for a degenerate line.
pub(crate) fn side(from: Point, to: Point, p: Point) -> f32 {
    let len = ((to[0] - from[0]).powi(2) + (to[1] - from[1]).powi(2)).sqrt();
    if len.is_nan() || len <= 0.0 {
        return 0.0;
    }
    (cross(from, to, p) / len as f64) as f32
}

/// Whether `p` is inside `poly` (even-odd rule).
pub(crate) fn contains(poly: &[Point], p: Point) -> bool {
    let n = poly.len();
    if n < 3 {
        return false;
    }
    let mut inside = false;
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                inside = !inside;
            }
        }
        j = i;
    }
    inside
}

/// The distance from `p` to the polygon's outline, positive inside, negative
/// outside. NaN in, a NaN or garbage out, never a panic.
pub(crate) fn signed_distance(poly: &[Point], p: Point) -> f32 {
    let n = poly.len();
    let mut best = f32::INFINITY;
    for i in 0..n {
        best = best.min(segment_distance(poly[i], poly[(i + 1) % n], p));
    }
    if contains(poly, p) { best } else { -best }
}

fn segment_distance(a: Point, b: Point, p: Point) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (a[0] + t * dx, a[1] + t * dy);
    ((p[0] - x).powi(2) + (p[1] - y).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, polygon: Vec<Point>) -> Zone {
        Zone {
            name: name.into(),
            polygon,
            labels: None,
        }
    }

    fn line(name: &str, from: Point, to: Point) -> Line {
        Line {
            name: name.into(),
            from,
            to,
            labels: None,
        }
    }

    #[test]
    fn valid_geometry_has_no_problems() {
        let g = Geometry {
            zones: vec![zone(
                "driveway",
                vec![[0.1, 0.5], [0.6, 0.5], [0.6, 1.0], [0.1, 1.0]],
            )],
            lines: vec![line("gate", [0.5, 0.0], [0.5, 1.0])],
        };
        assert!(validate(&g).is_empty(), "{:?}", validate(&g));
    }

    #[test]
    fn problems_are_reported_by_path() {
        let g = Geometry {
            zones: vec![
                zone("a", vec![[0.1, 0.1], [0.2, 0.2]]),
                zone(
                    "bow tie",
                    vec![[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]],
                ),
                zone("a", vec![[0.0, 0.0], [1.5, 0.0], [f32::NAN, 1.0]]),
                zone("flat", vec![[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]),
                zone("rep", vec![[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]),
            ],
            lines: vec![
                line("gate", [0.5, 0.5], [0.5, 0.5]),
                line("gate", [0.5, -0.1], [0.5, 0.5]),
            ],
        };
        let paths: Vec<String> = validate(&g).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "zones[0].polygon",
                "zones[1].name",
                "zones[1].polygon",
                "zones[2].name",
                "zones[2].polygon[1]",
                "zones[2].polygon[2]",
                "zones[3].polygon",
                "zones[4].polygon[1]",
                "lines[0].to",
                "lines[1].name",
                "lines[1].from",
            ]
        );
    }

    #[test]
    fn a_polygon_folding_back_on_itself_is_refused() {
        // The last edge runs back along the first one.
        let g = Geometry {
            zones: vec![zone(
                "z",
                vec![[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.5, 0.2]],
            )],
            lines: vec![],
        };
        assert_eq!(validate(&g).len(), 1, "{:?}", validate(&g));
    }

    #[test]
    fn side_follows_product_md() {
        // from [0.5, 0] to [0.5, 1]: the left half is the `in` side.
        assert!(side([0.5, 0.0], [0.5, 1.0], [0.2, 0.5]) > 0.0);
        assert!(side([0.5, 0.0], [0.5, 1.0], [0.8, 0.5]) < 0.0);
    }

    #[test]
    fn distance_is_signed() {
        let sq = [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]];
        assert!((signed_distance(&sq, [0.5, 0.3]) - 0.1).abs() < 1e-6);
        assert!((signed_distance(&sq, [0.5, 0.1]) + 0.1).abs() < 1e-6);
        assert!(!contains(&sq, [f32::NAN, 0.5]));
    }
}
