//! What the pictures show: a stream's frame with its boxes, track IDs,
//! zones and lines, the motion found and the regions the model analysed
//! (the status page), and one object's crop with its box (a snapshot).

use super::{Canvas, Colour, RenderError, TEXT_HEIGHT};
use crate::frame::{BBox, Crop, Detection, FullFrame, Look, Sight};
use crate::tracking::Geometry;

/// Zones: amber. Lines: magenta. Tracked boxes: green; untracked: grey.
pub const ZONE: Colour = Colour(255, 190, 0);
pub const LINE: Colour = Colour(255, 0, 255);
pub const TRACKED: Colour = Colour(0, 230, 60);
pub const UNTRACKED: Colour = Colour(170, 170, 170);
/// Motion: red. The regions the model analysed: blue.
pub const MOTION: Colour = Colour(255, 40, 40);
pub const REGION: Colour = Colour(0, 140, 255);
const INK: Colour = Colour(0, 0, 0);

/// The status page's picture is at most this wide: readable, and cheap.
pub const FRAME_MAX_WIDTH: u32 = 960;

/// A snapshot's short side is at least this (scaled up when the object is
/// small), its long side at most [`SNAPSHOT_MAX`].
pub const SNAPSHOT_MIN: u32 = 256;
pub const SNAPSHOT_MAX: u32 = 640;

/// The frame scaled to at most `max_width`, with everything drawn on it.
pub fn frame(
    full: &dyn FullFrame,
    max_width: u32,
    detections: &[Detection],
    geometry: Option<&Geometry>,
    sight: &Sight,
) -> Result<Canvas, RenderError> {
    let (fw, fh) = (full.width(), full.height());
    let w = fw.clamp(1, max_width.max(1));
    let h = ((u64::from(fh) * u64::from(w)) / u64::from(fw.max(1))).max(1) as u32;
    let all = Crop {
        x: 0,
        y: 0,
        width: fw,
        height: fh,
    };
    let mut c = Canvas::from_image(&full.rgb(all, w, h)?)?;
    let (sw, sh) = (w as f32, h as f32);
    let thick = (w / 320).max(2);
    if let Some(g) = geometry {
        for z in &g.zones {
            let pts: Vec<(f32, f32)> = z.polygon.iter().map(|p| (p[0] * sw, p[1] * sh)).collect();
            c.polygon(&pts, thick, ZONE);
            if let Some(first) = pts.first() {
                c.label(first.0 + 4.0, first.1 + 4.0, &z.name, INK, ZONE);
            }
        }
        for l in &g.lines {
            let (a, b) = (
                (l.from[0] * sw, l.from[1] * sh),
                (l.to[0] * sw, l.to[1] * sh),
            );
            c.line(a, b, thick, LINE);
            let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
            c.label(mid.0 + 4.0, mid.1, &l.name, INK, LINE);
        }
    }
    // What motion saw and where the model looked: what users tune by.
    for m in &sight.motion {
        c.rect(m.x * sw, m.y * sh, m.w * sw, m.h * sh, 1, MOTION);
    }
    if let Look::Regions(regions) = &sight.look {
        let (kx, ky) = (sw / fw.max(1) as f32, sh / fh.max(1) as f32);
        for r in regions {
            let (x, y) = (r.x as f32 * kx, r.y as f32 * ky);
            c.rect(
                x,
                y,
                r.width as f32 * kx,
                r.height as f32 * ky,
                thick,
                REGION,
            );
        }
    }
    for d in detections {
        let colour = if d.track.is_some() {
            TRACKED
        } else {
            UNTRACKED
        };
        let b = d.bbox;
        let (x, y) = (b.x * sw, b.y * sh);
        c.rect(x, y, b.w * sw, b.h * sh, thick, colour);
        let mut text = match (&d.track, &d.sub_label) {
            (Some(id), Some(sub)) => format!("{id} {} ({}) {:.2}", sub.label, d.label, d.score),
            (Some(id), None) => format!("{id} {} {:.2}", d.label, d.score),
            (None, _) => format!("{} {:.2}", d.label, d.score),
        };
        if d.held {
            text.push_str(" held");
        }
        c.label(x, y - TEXT_HEIGHT as f32, &text, INK, colour);
    }
    Ok(c)
}

/// Where a snapshot of `bbox` (normalised) comes from in a `fw` x `fh`
/// frame, and the size it is scaled to: the box with a margin, widened to
/// at most 4:3 either way for some context, kept inside the frame.
pub fn snapshot_crop(bbox: BBox, fw: u32, fh: u32) -> (Crop, u32, u32) {
    let (fwf, fhf) = (fw.max(1) as f32, fh.max(1) as f32);
    let (bw, bh) = ((bbox.w * fwf).max(1.0), (bbox.h * fhf).max(1.0));
    let (mut w, mut h) = (bw * 1.3, bh * 1.3);
    w = w.max(h * 0.75);
    h = h.max(w * 0.75);
    let (w, h) = (w.min(fwf), h.min(fhf));
    let (cx, cy) = ((bbox.x + bbox.w / 2.0) * fwf, (bbox.y + bbox.h / 2.0) * fhf);
    let x = (cx - w / 2.0).clamp(0.0, fwf - w);
    let y = (cy - h / 2.0).clamp(0.0, fhf - h);
    let crop = Crop {
        x: x.round() as u32,
        y: y.round() as u32,
        width: (w.round() as u32).max(1),
        height: (h.round() as u32).max(1),
    };
    let (cw, ch) = (crop.width as f32, crop.height as f32);
    let mut scale = (SNAPSHOT_MIN as f32 / cw.min(ch)).max(1.0);
    if cw.max(ch) * scale > SNAPSHOT_MAX as f32 {
        scale = SNAPSHOT_MAX as f32 / cw.max(ch);
    }
    let out = |v: f32| ((v * scale).round() as u32).max(1);
    (crop, out(cw), out(ch))
}

/// One object's snapshot: its crop with its box and caption drawn.
pub fn snapshot(full: &dyn FullFrame, bbox: BBox, caption: &str) -> Result<Canvas, RenderError> {
    let (fw, fh) = (full.width(), full.height());
    let (crop, w, h) = snapshot_crop(bbox, fw, fh);
    let mut c = Canvas::from_image(&full.rgb(crop, w, h)?)?;
    let sx = w as f32 / crop.width as f32;
    let sy = h as f32 / crop.height as f32;
    let x = (bbox.x * fw as f32 - crop.x as f32) * sx;
    let y = (bbox.y * fh as f32 - crop.y as f32) * sy;
    c.rect(
        x,
        y,
        bbox.w * fw as f32 * sx,
        bbox.h * fh as f32 * sy,
        3,
        TRACKED,
    );
    c.label(x, y - TEXT_HEIGHT as f32, caption, INK, TRACKED);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::RgbFull;
    use crate::tracking::{Line, Zone};

    fn grey(w: u32, h: u32) -> crate::frame::FullView {
        RgbFull::new(w, h, vec![60; (w * h * 3) as usize]).view()
    }

    fn px(c: &Canvas, x: u32, y: u32) -> Colour {
        let i = ((y * c.width + x) * 3) as usize;
        Colour(c.pixels[i], c.pixels[i + 1], c.pixels[i + 2])
    }

    #[test]
    fn a_small_box_is_cropped_with_context_and_scaled_up_to_a_readable_size() {
        // A 64x160 person in a 1280x720 frame.
        let b = BBox {
            x: 0.5,
            y: 0.4,
            w: 0.05,
            h: 160.0 / 720.0,
        };
        let (crop, w, h) = snapshot_crop(b, 1280, 720);
        assert!(crop.width as f32 >= 0.75 * crop.height as f32, "{crop:?}");
        assert!(
            crop.x <= 640 && crop.x + crop.width >= 704,
            "holds the box: {crop:?}"
        );
        assert!(
            w.min(h) >= SNAPSHOT_MIN && w.max(h) <= SNAPSHOT_MAX,
            "{w}x{h}"
        );
        // A box on the frame's edge: the crop stays inside the frame.
        let edge = BBox {
            x: 0.95,
            y: 0.0,
            w: 0.05,
            h: 1.0,
        };
        let (crop, w, h) = snapshot_crop(edge, 1280, 720);
        assert!(
            crop.x + crop.width <= 1280 && crop.y + crop.height <= 720,
            "{crop:?}"
        );
        assert!(w.max(h) <= SNAPSHOT_MAX, "{w}x{h}");
        // Nonsense boxes give a valid crop, not a panic.
        for b in [
            BBox {
                x: f32::NAN,
                y: -5.0,
                w: 0.0,
                h: 9.0,
            },
            BBox {
                x: 2.0,
                y: 2.0,
                w: -1.0,
                h: 0.0,
            },
        ] {
            let (crop, w, h) = snapshot_crop(b, 1280, 720);
            assert!(
                crop.width >= 1 && crop.height >= 1 && w >= 1 && h >= 1,
                "{crop:?}"
            );
            assert!(snapshot(&*grey(64, 36).0, b, "x").is_ok());
        }
    }

    #[test]
    fn the_frame_shows_zones_lines_and_boxes_where_they_lie() {
        let g = Geometry {
            zones: vec![Zone {
                name: "middle".into(),
                polygon: vec![[0.25, 0.0], [0.75, 0.0], [0.75, 1.0], [0.25, 1.0]],
                labels: None,
            }],
            lines: vec![Line {
                name: "gate".into(),
                from: [0.5, 0.0],
                to: [0.5, 1.0],
                labels: None,
            }],
        };
        let det = Detection {
            label: "person".into(),
            label_id: 1,
            score: 0.9,
            bbox: BBox {
                x: 0.05,
                y: 0.5,
                w: 0.1,
                h: 0.4,
            },
            track: Some("cam-1".into()),
            sub_label: None,
            held: false,
        };
        let sight = Sight {
            look: Look::Regions(vec![Crop {
                x: 1200,
                y: 600,
                width: 300,
                height: 300,
            }]),
            motion: vec![BBox {
                x: 0.7,
                y: 0.6,
                w: 0.05,
                h: 0.1,
            }],
        };
        let c = frame(
            &*grey(1920, 1080).0,
            FRAME_MAX_WIDTH,
            &[det],
            Some(&g),
            &sight,
        )
        .expect("renders");
        assert_eq!((c.width, c.height), (960, 540));
        assert_eq!(px(&c, 601, 400), REGION, "the region's left edge");
        assert!(
            [672, 673].iter().any(|x| px(&c, *x, 340) == MOTION),
            "the motion box's left edge"
        );
        assert_eq!(px(&c, 240, 300), ZONE, "the zone's left edge");
        assert_eq!(px(&c, 480, 300), LINE, "the line");
        assert_eq!(px(&c, 49, 400), TRACKED, "the box's left edge");
        assert_eq!(px(&c, 600, 300), Colour(60, 60, 60), "the frame itself");
        let s = snapshot(&*grey(1920, 1080).0, c_box(), "cam-1 person").expect("snapshot");
        assert!(s.width.min(s.height) >= SNAPSHOT_MIN);
        assert!(
            s.pixels.chunks(3).any(|p| p == [0, 230, 60]),
            "the box is drawn"
        );
    }

    fn c_box() -> BBox {
        BBox {
            x: 0.4,
            y: 0.3,
            w: 0.1,
            h: 0.3,
        }
    }
}
