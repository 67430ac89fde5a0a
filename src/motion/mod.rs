//! Motion on a small grey image: the part of issue 24 that decides where
//! the model needs to look. Per frame: contrast normalised (so a camera
//! that re-exposes, or a light that changes the whole scene's level, moves
//! nothing), blurred (sensor noise), compared with a running-average
//! background, thresholded, masked, dilated, and cut into connected
//! regions: the motion boxes. A change over most of the image (lights
//! switched, the camera's IR mode, lightning) recalibrates the background
//! instead of firing everywhere.
//!
//! Plain functions over plain pixels: no GStreamer, no model; the stream's
//! route feeds it the luma of each analysed frame.

pub mod gate;
pub mod regions;
pub mod stage;

use crate::frame::BBox;

/// How motion is found. Units are those of the grey image (0-255 levels,
/// its pixels) or frames.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionSettings {
    /// A pixel moved when it differs from the background by more than this
    /// many levels (after contrast normalisation, of 255).
    pub threshold: u8,
    /// Motion boxes with fewer moving pixels of the grey image than this
    /// are noise (a leaf, sensor noise, a compression artefact); counted
    /// before dilation, so scattered pixels do not add up.
    pub min_area: u32,
    /// How fast the background follows the scene: the weight of each new
    /// frame (0.05 at 5 fps forgets a change in about 4 s).
    pub alpha: f32,
    /// A share of moving pixels above this is a change of the whole scene,
    /// not motion: the background starts again from this frame.
    pub recalibrate_above: f32,
    /// Motion in at least this many separate places at once, over at
    /// least `scattered_above` of the image, is a change of light (a lamp,
    /// the sun through clouds, highlights clipping as exposure steps), not
    /// things moving: the background starts again. A crowd that looks
    /// like that is analysed whole anyway.
    pub scattered_boxes: usize,
    pub scattered_above: f32,
    /// Dilation passes (3x3) that join the parts of one moving thing.
    pub dilate: u32,
    /// Frames after a recalibration during which the background follows
    /// the scene at once and nothing counts as motion: a camera's
    /// exposure, a lamp warming up or an encoder's quality settle over
    /// several frames, and each would otherwise fire everywhere.
    pub settle_frames: u32,
}

impl Default for MotionSettings {
    fn default() -> Self {
        Self {
            threshold: 30,
            min_area: 4,
            alpha: 0.05,
            recalibrate_above: 0.6,
            // OpenCV's vtest.avi (up to 8 walkers at 768x576): at most 7
            // places, 6.4 % of the image; a 30 % brightness step on a
            // real photograph: 11 to 15 places, 21 %.
            scattered_boxes: 9,
            scattered_above: 0.1,
            dilate: 2,
            settle_frames: 5,
        }
    }
}

/// A grey image, one byte a pixel, rows packed.
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Gray {
    /// The grey image motion runs on, from a decoded frame's luma plane
    /// (Y of I420 or NV12: `step` 1; of YUY2: 2; `stride` bytes a row):
    /// each output pixel is the mean of a square block, so that the image
    /// is at most `max_height` rows high and keeps the frame's aspect. The
    /// full frame is never converted; about one addition a source pixel.
    pub fn from_luma(
        plane: &[u8],
        stride: usize,
        step: usize,
        width: u32,
        height: u32,
        max_height: u32,
    ) -> Gray {
        let (w, h) = (width as usize, height as usize);
        let row_len = w.saturating_sub(1).saturating_mul(step).saturating_add(1);
        if w == 0
            || h == 0
            || step == 0
            || stride < row_len
            || plane.len() < stride.saturating_mul(h - 1).saturating_add(row_len)
        {
            return Gray {
                width: 0,
                height: 0,
                data: Vec::new(),
            };
        }
        let block = h.div_ceil(max_height.max(1) as usize).max(1);
        let (ow, oh) = (w / block, h / block);
        // Rows are added column by column first (the compiler vectorises
        // that for planar luma), then each block's columns.
        let mut cols = vec![0u32; ow * block];
        let mut data = Vec::with_capacity(ow * oh);
        let area = (block * block) as u32;
        for by in 0..oh {
            cols.iter_mut().for_each(|s| *s = 0);
            for row in plane[by * block * stride..].chunks(stride).take(block) {
                if step == 1 {
                    for (s, &p) in cols.iter_mut().zip(&row[..ow * block]) {
                        *s += u32::from(p);
                    }
                } else {
                    for (s, &p) in cols.iter_mut().zip(row.iter().step_by(step)) {
                        *s += u32::from(p);
                    }
                }
            }
            data.extend(
                cols.chunks_exact(block)
                    .map(|b| (b.iter().sum::<u32>() / area) as u8),
            );
        }
        Gray {
            width: ow as u32,
            height: oh as u32,
            data,
        }
    }
}

/// What one frame showed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Motion {
    /// Boxes around moving regions, normalised to the frame.
    pub boxes: Vec<BBox>,
    /// The share of the image that moved (before masks and dilation).
    pub changed: f32,
    /// The background started again at this frame (the first frame, a new
    /// size, or a change of the whole scene).
    pub recalibrated: bool,
}

/// One stream's motion state: its background.
pub struct MotionDetector {
    settings: MotionSettings,
    /// Pixels where motion is ignored (true), from the masks' polygons.
    mask: Vec<bool>,
    /// Normalised polygons, kept to rebuild `mask` when the size changes.
    polygons: Vec<Vec<[f32; 2]>>,
    background: Vec<f32>,
    size: (u32, u32),
    /// Frames left to settle after a recalibration.
    settling: u32,
}

impl MotionDetector {
    /// `masks`: polygons with normalised corners where motion is ignored.
    pub fn new(settings: MotionSettings, masks: Vec<Vec<[f32; 2]>>) -> Self {
        Self {
            settings,
            mask: Vec::new(),
            polygons: masks,
            background: Vec::new(),
            size: (0, 0),
            settling: 0,
        }
    }

    /// Finds the motion in `frame` against the background, then lets the
    /// background follow it.
    pub fn frame(&mut self, frame: &Gray) -> Motion {
        let (w, h) = (frame.width as usize, frame.height as usize);
        if w == 0 || h == 0 || frame.data.len() < w * h {
            return Motion::default();
        }
        let image = blur(&normalise(&frame.data[..w * h]), w, h);
        if self.size != (frame.width, frame.height) {
            self.size = (frame.width, frame.height);
            self.mask = rasterise(&self.polygons, w, h);
            return self.recalibrate(&image);
        }
        let t = f32::from(self.settings.threshold);
        let mut moved: Vec<bool> = image
            .iter()
            .zip(&self.background)
            .map(|(p, b)| (f32::from(*p) - b).abs() > t)
            .collect();
        // Masked pixels count for nothing, not even for a change of the
        // whole scene (a busy road behind a mask must not recalibrate).
        for (m, masked) in moved.iter_mut().zip(&self.mask) {
            *m &= !masked;
        }
        let open = self.mask.iter().filter(|m| !**m).count().max(1);
        let changed = moved.iter().filter(|m| **m).count() as f32 / open as f32;
        if self.settling > 0 {
            // Settling: follow the scene, report nothing. A change of the
            // whole scene again is looked at whole again: a scene that
            // keeps changing (a camera panning) is analysed as without
            // motion, never left unlooked.
            self.settling -= 1;
            if changed > self.settings.recalibrate_above {
                return self.changed_whole(&image, changed);
            }
            self.background = image.iter().map(|p| f32::from(*p)).collect();
            return Motion {
                changed,
                ..Motion::default()
            };
        }
        if changed > self.settings.recalibrate_above {
            return self.changed_whole(&image, changed);
        }
        let mut joined = moved.clone();
        for _ in 0..self.settings.dilate {
            joined = dilate(&joined, w, h);
        }
        let boxes: Vec<BBox> = components(&joined, &moved, w, h)
            .into_iter()
            .filter(|b| b.area >= self.settings.min_area)
            .map(|b| b.normalised(w, h))
            .collect();
        if boxes.len() >= self.settings.scattered_boxes && changed >= self.settings.scattered_above
        {
            return self.changed_whole(&image, changed);
        }
        let a = self.settings.alpha;
        for (b, p) in self.background.iter_mut().zip(&image) {
            *b += a * (f32::from(*p) - *b);
        }
        Motion {
            boxes,
            changed,
            recalibrated: false,
        }
    }

    /// The scene changed as a whole: start again from it, and let it settle.
    fn changed_whole(&mut self, image: &[u8], changed: f32) -> Motion {
        self.settling = self.settings.settle_frames;
        Motion {
            changed,
            ..self.recalibrate(image)
        }
    }

    fn recalibrate(&mut self, image: &[u8]) -> Motion {
        self.background = image.iter().map(|p| f32::from(*p)).collect();
        Motion {
            recalibrated: true,
            ..Motion::default()
        }
    }
}

/// Stretches the levels between the 2nd and the 98th percentile to 0-255:
/// a gain or offset applied to the whole image (exposure, a light's level)
/// gives the same result.
fn normalise(data: &[u8]) -> Vec<u8> {
    let mut hist = [0usize; 256];
    for p in data {
        hist[*p as usize] += 1;
    }
    let cut = data.len() / 50;
    let (mut lo, mut seen) = (0usize, 0usize);
    while lo < 255 && seen + hist[lo] <= cut {
        seen += hist[lo];
        lo += 1;
    }
    let (mut hi, mut seen) = (255usize, 0usize);
    while hi > 0 && seen + hist[hi] <= cut {
        seen += hist[hi];
        hi -= 1;
    }
    if hi <= lo {
        // A flat image: nothing to stretch.
        return data.to_vec();
    }
    // At most 8 times: a dark, flat night scene stretched further would
    // turn sensor noise into motion.
    let scale = 255.0 / (hi - lo).max(32) as f32;
    let lut: Vec<u8> = (0..256)
        .map(|v| ((v as f32 - lo as f32) * scale).clamp(0.0, 255.0).round() as u8)
        .collect();
    data.iter().map(|p| lut[*p as usize]).collect()
}

/// A 3x3 box blur, edges clamped.
fn blur(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let at = |x: isize, y: isize| {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        u32::from(data[y * w + x])
    };
    let mut out = vec![0u8; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut sum = 0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    sum += at(x + dx, y + dy);
                }
            }
            out[y as usize * w + x as usize] = (sum / 9) as u8;
        }
    }
    out
}

/// A 3x3 dilation.
fn dilate(m: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = m.to_vec();
    for y in 0..h {
        for x in 0..w {
            if !m[y * w + x] {
                continue;
            }
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    out[ny * w + nx] = true;
                }
            }
        }
    }
    out
}

/// A connected region's bounds, in pixels, and how many moving pixels it
/// holds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Component {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    area: u32,
}

impl Component {
    fn normalised(&self, w: usize, h: usize) -> BBox {
        BBox {
            x: self.x0 as f32 / w as f32,
            y: self.y0 as f32 / h as f32,
            w: (self.x1 + 1 - self.x0) as f32 / w as f32,
            h: (self.y1 + 1 - self.y0) as f32 / h as f32,
        }
    }
}

/// 8-connected regions of `m`, by an explicit stack (no recursion); each
/// one's area counts the pixels of `raw` in it.
fn components(m: &[bool], raw: &[bool], w: usize, h: usize) -> Vec<Component> {
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !m[start] || seen[start] {
            continue;
        }
        let (sx, sy) = (start % w, start / w);
        let mut c = Component {
            x0: sx,
            y0: sy,
            x1: sx,
            y1: sy,
            area: 0,
        };
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            c.area += u32::from(raw[i]);
            c.x0 = c.x0.min(x);
            c.x1 = c.x1.max(x);
            c.y0 = c.y0.min(y);
            c.y1 = c.y1.max(y);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if m[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        out.push(c);
    }
    out
}

/// The pixels inside any of `polygons` (normalised corners), by the
/// pixel's centre (even-odd rule).
fn rasterise(polygons: &[Vec<[f32; 2]>], w: usize, h: usize) -> Vec<bool> {
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let p = [(x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32];
            out[y * w + x] = polygons.iter().any(|poly| inside(poly, p));
        }
    }
    out
}

fn inside(poly: &[[f32; 2]], p: [f32; 2]) -> bool {
    let mut inside = false;
    let mut j = poly.len().wrapping_sub(1);
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests;
