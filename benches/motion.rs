//! What the motion stage costs a frame: the 720p (and 1080p) luma plane
//! averaged down to at most 100 rows, then found against the background
//! (normalise, blur, difference, dilate, regions), on a textured scene
//! with camera-like noise and a square moving across it.
//!
//!   cargo bench --bench motion
//!
//! Goal (issue 24): under 0.5 ms a frame at 720p, on one core.

use std::time::{Duration, Instant};

use visiond::motion::{Gray, MotionDetector, MotionSettings};

/// Frames of `w` x `h` luma: texture, noise of +-6 levels, a bright square
/// (a tenth of the height) moving right.
fn frames(w: usize, h: usize, n: usize) -> Vec<Vec<u8>> {
    let mut seed = 12345u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    let side = h / 10;
    (0..n)
        .map(|i| {
            let mut f = vec![0u8; w * h];
            for y in 0..h {
                for x in 0..w {
                    let texture = 40 + ((x / 16 + y / 16) % 7) as i32 * 15;
                    let noise = (rnd() % 13) as i32 - 6;
                    f[y * w + x] = (texture + noise).clamp(0, 255) as u8;
                }
            }
            let (sx, sy) = ((i * w / n).min(w - side), h / 2);
            for y in sy..sy + side {
                f[y * w + sx..y * w + sx + side].fill(230);
            }
            f
        })
        .collect()
}

fn main() {
    println!(
        "| frame | grey image | ms a frame (median of 5 runs of 200) | of which the luma average |"
    );
    println!("|---|---|---|---|");
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let clip = frames(w, h, 50);
        let mut totals = Vec::new();
        let mut luma = Vec::new();
        let mut size = (0, 0);
        for _ in 0..5 {
            let mut d = MotionDetector::new(MotionSettings::default(), Vec::new());
            let (mut all, mut down) = (Duration::ZERO, Duration::ZERO);
            for i in 0..200 {
                let f = &clip[i % clip.len()];
                let t = Instant::now();
                let g = Gray::from_luma(f, w, 1, w as u32, h as u32, 100);
                down += t.elapsed();
                let m = d.frame(&g);
                all += t.elapsed();
                size = (g.width, g.height);
                std::hint::black_box(m);
            }
            totals.push(all.as_secs_f64() * 1e3 / 200.0);
            luma.push(down.as_secs_f64() * 1e3 / 200.0);
        }
        totals.sort_by(f64::total_cmp);
        luma.sort_by(f64::total_cmp);
        println!(
            "| {w}x{h} | {}x{} | {:.3} | {:.3} |",
            size.0, size.1, totals[2], luma[2]
        );
    }
}
