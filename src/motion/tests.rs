//! The motion detector on synthetic frames: a textured still scene, with
//! camera-like noise, and a square that moves across it.

use super::*;

const W: u32 = 160;
const H: u32 = 90;

/// A small deterministic generator, so each run sees the same noise.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    /// Uniform in -a..=a.
    fn noise(&mut self, a: i32) -> i32 {
        (self.next() % (2 * a as u32 + 1)) as i32 - a
    }
}

/// A still scene with texture (levels 40 to 150), plus noise of up to
/// `noise` levels, and a bright square of side 12 at `square` if given.
fn scene(rng: &mut Lcg, noise: i32, square: Option<(u32, u32)>) -> Gray {
    let mut data = Vec::with_capacity((W * H) as usize);
    for y in 0..H {
        for x in 0..W {
            let base = 40 + ((x * 7 + y * 13) % 23) * 3 + ((x / 20 + y / 15) % 3) * 15;
            let mut v = base as i32 + rng.noise(noise);
            if let Some((sx, sy)) = square
                && (sx..sx + 12).contains(&x)
                && (sy..sy + 12).contains(&y)
            {
                v = 230;
            }
            data.push(v.clamp(0, 255) as u8);
        }
    }
    Gray {
        width: W,
        height: H,
        data,
    }
}

fn warmed(d: &mut MotionDetector, rng: &mut Lcg) {
    for _ in 0..10 {
        let m = d.frame(&scene(rng, 6, None));
        assert!(m.boxes.is_empty(), "a still scene moved: {m:?}");
    }
}

#[test]
fn a_moving_square_is_found_where_it_is() {
    let mut rng = Lcg(1);
    let mut d = MotionDetector::new(MotionSettings::default(), Vec::new());
    assert!(
        d.frame(&scene(&mut rng, 6, None)).recalibrated,
        "first frame"
    );
    warmed(&mut d, &mut rng);
    for step in 0..20u32 {
        let (sx, sy) = (20 + step * 5, 40);
        let m = d.frame(&scene(&mut rng, 6, Some((sx, sy))));
        assert_eq!(m.boxes.len(), 1, "step {step}: {m:?}");
        let b = m.boxes[0];
        // The box holds the square (dilation adds a little around it).
        let (cx, cy) = ((sx as f32 + 6.0) / W as f32, (sy as f32 + 6.0) / H as f32);
        assert!(
            b.x <= cx && cx <= b.x + b.w && b.y <= cy && cy <= b.y + b.h,
            "step {step}: {b:?} misses the square's centre"
        );
        assert!(b.w * W as f32 <= 40.0, "step {step}: {b:?} too wide");
    }
}

#[test]
fn sensor_noise_moves_nothing() {
    let mut rng = Lcg(2);
    let mut d = MotionDetector::new(MotionSettings::default(), Vec::new());
    for i in 0..200 {
        let m = d.frame(&scene(&mut rng, 12, None));
        assert!(m.boxes.is_empty(), "frame {i}: {m:?}");
    }
}

#[test]
fn a_brightness_step_over_the_whole_scene_moves_nothing() {
    let mut rng = Lcg(3);
    let mut d = MotionDetector::new(MotionSettings::default(), Vec::new());
    d.frame(&scene(&mut rng, 6, None));
    warmed(&mut d, &mut rng);
    // The camera re-exposes: a gain and an offset on every pixel.
    for i in 0..30 {
        let mut f = scene(&mut rng, 6, None);
        for p in &mut f.data {
            *p = (f32::from(*p) * 1.3 + 20.0).min(255.0) as u8;
        }
        let m = d.frame(&f);
        assert!(m.boxes.is_empty(), "frame {i} after the step: {m:?}");
    }
}

#[test]
fn a_change_of_the_whole_scene_recalibrates_instead_of_firing() {
    let mut rng = Lcg(4);
    let mut d = MotionDetector::new(MotionSettings::default(), Vec::new());
    d.frame(&scene(&mut rng, 6, None));
    warmed(&mut d, &mut rng);
    // The IR mode: the picture's levels turn over.
    let turned = |rng: &mut Lcg| {
        let mut f = scene(rng, 6, None);
        for p in &mut f.data {
            *p = 255 - *p;
        }
        f
    };
    let m = d.frame(&turned(&mut rng));
    assert!(m.recalibrated && m.boxes.is_empty(), "{m:?}");
    assert!(m.changed > 0.6, "{m:?}");
    for i in 0..10 {
        let m = d.frame(&turned(&mut rng));
        assert!(m.boxes.is_empty() && !m.recalibrated, "frame {i}: {m:?}");
    }
}

#[test]
fn a_scene_that_changes_over_several_frames_is_looked_at_whole_then_moves_again() {
    let mut rng = Lcg(8);
    let mut d = MotionDetector::new(MotionSettings::default(), Vec::new());
    d.frame(&scene(&mut rng, 6, None));
    warmed(&mut d, &mut rng);
    // Another picture settling in over three frames, different on each
    // (the IR mode switching, an exposure settling): each of the three is a
    // change of the whole scene (looked at whole), then the settling
    // frames; never a motion box.
    let settling = |rng: &mut Lcg, step: u32, square: Option<(u32, u32)>| {
        let mut f = scene(rng, 6, None);
        for (i, p) in f.data.iter_mut().enumerate() {
            let (x, y) = (i as u32 % W, i as u32 / W);
            let texture = ((x / 8 + y / 6 + step) % 2) * 150 + 50;
            let inside = square
                .is_some_and(|(sx, sy)| (sx..sx + 12).contains(&x) && (sy..sy + 12).contains(&y));
            *p = if inside {
                250
            } else {
                (texture as i32 + rng.noise(6)) as u8
            };
        }
        f
    };
    let mut recalibrations = 0;
    for step in 1..=8u32 {
        let f = settling(&mut rng, step.min(3), None);
        let m = d.frame(&f);
        recalibrations += u32::from(m.recalibrated);
        assert!(m.boxes.is_empty(), "frame {step} of the change: {m:?}");
    }
    assert_eq!(recalibrations, 3);
    // Settled: the new scene is the background, and what moves in it is
    // found again.
    for _ in 0..3 {
        assert!(d.frame(&settling(&mut rng, 3, None)).boxes.is_empty());
    }
    let m = d.frame(&settling(&mut rng, 3, Some((100, 40))));
    assert_eq!(m.boxes.len(), 1, "{m:?}");
}

#[test]
fn a_mask_hides_motion_under_it_and_only_there() {
    let mut rng = Lcg(5);
    let left = vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]];
    let mut d = MotionDetector::new(MotionSettings::default(), vec![left]);
    d.frame(&scene(&mut rng, 6, None));
    warmed(&mut d, &mut rng);
    for step in 0..5u32 {
        let m = d.frame(&scene(&mut rng, 6, Some((10 + step * 5, 40))));
        assert!(m.boxes.is_empty(), "masked, step {step}: {m:?}");
    }
    for step in 0..5u32 {
        let m = d.frame(&scene(&mut rng, 6, Some((110 + step * 5, 40))));
        assert_eq!(m.boxes.len(), 1, "unmasked, step {step}: {m:?}");
        assert!(m.boxes[0].x >= 0.5, "{m:?}");
    }
}

#[test]
fn a_bad_frame_is_no_motion_not_a_panic() {
    let mut d = MotionDetector::new(MotionSettings::default(), Vec::new());
    let short = Gray {
        width: 100,
        height: 100,
        data: vec![0; 10],
    };
    assert_eq!(d.frame(&short), Motion::default());
    let empty = Gray {
        width: 0,
        height: 0,
        data: Vec::new(),
    };
    assert_eq!(d.frame(&empty), Motion::default());
}

#[test]
fn the_luma_plane_is_averaged_down_in_square_blocks() {
    // 8x4 luma with a stride of 10 (padding holds 255, never read).
    let mut plane = vec![255u8; 10 * 4];
    for y in 0..4 {
        for x in 0..8 {
            plane[y * 10 + x] = (x * 10 + y) as u8;
        }
    }
    let g = Gray::from_luma(&plane, 10, 1, 8, 4, 2);
    assert_eq!((g.width, g.height), (4, 2));
    // Block (0,0): x 0-1, y 0-1 -> (0 + 1 + 10 + 11) / 4 = 5.
    assert_eq!(g.data[0], 5);
    // Block (3,1): x 6-7, y 2-3 -> (62 + 63 + 72 + 73) / 4 = 67.
    assert_eq!(g.data[7], 67);
    // 720p to at most 100 rows: blocks of 8, 160x90.
    let hd = vec![128u8; 1280 * 720];
    let g = Gray::from_luma(&hd, 1280, 1, 1280, 720, 100);
    assert_eq!((g.width, g.height, g.data[0]), (160, 90, 128));
    // A plane too short for its size is no image, not a panic.
    let g = Gray::from_luma(&hd[..100], 1280, 1, 1280, 720, 100);
    assert_eq!((g.width, g.height), (0, 0));
    // Packed YUY2 (Y U Y V ...): only every other byte is luma.
    let mut packed = vec![0u8; 16 * 4];
    for y in 0..4 {
        for x in 0..8 {
            packed[y * 16 + x * 2] = (x * 10 + y) as u8;
            packed[y * 16 + x * 2 + 1] = 255;
        }
    }
    let g = Gray::from_luma(&packed, 16, 2, 8, 4, 2);
    assert_eq!((g.width, g.height, g.data[0], g.data[7]), (4, 2, 5, 67));
}
