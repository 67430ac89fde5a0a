//! Pictures for people: an RGB canvas to draw boxes, zones, lines and
//! labels on, encoded as JPEG. Text uses embedded-graphics' built-in bitmap
//! font (no font file to ship); lines and rectangles are drawn here.

pub mod overlay;

use embedded_graphics::mono_font::MonoTextStyleBuilder;
use embedded_graphics::mono_font::ascii::FONT_10X20;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, RgbColor, Size};
use embedded_graphics::text::{Baseline, Text};
use embedded_graphics::{Drawable, Pixel};

use crate::frame::{FrameError, Image};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("JPEG: {0}")]
    Jpeg(String),
}

/// An RGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour(pub u8, pub u8, pub u8);

/// Packed RGB pixels, no row padding.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// The height of a line of text, in pixels.
pub const TEXT_HEIGHT: u32 = 20;

impl Canvas {
    /// A copy of `image` without its row padding; a buffer shorter than its
    /// size is an error.
    pub fn from_image(image: &Image) -> Result<Self, FrameError> {
        image.check()?;
        let mut pixels = Vec::with_capacity(image.row_len() * image.height as usize);
        for y in 0..image.height as usize {
            // check() proved every row is there.
            pixels.extend_from_slice(image.row(y).unwrap_or_default());
        }
        Ok(Self {
            width: image.width,
            height: image.height,
            pixels,
        })
    }

    pub fn put(&mut self, x: i64, y: i64, c: Colour) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        if let Some(p) = self.pixels.get_mut(i..i + 3) {
            p.copy_from_slice(&[c.0, c.1, c.2]);
        }
    }

    /// A line `thickness` pixels wide (a square brush along Bresenham's path).
    pub fn line(&mut self, from: (f32, f32), to: (f32, f32), thickness: u32, c: Colour) {
        let (mut x0, mut y0) = (from.0.round() as i64, from.1.round() as i64);
        let (x1, y1) = (to.0.round() as i64, to.1.round() as i64);
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        let t = i64::from(thickness.max(1));
        let (lo, hi) = (-(t / 2), (t - 1) / 2);
        // A line off the canvas by millions of pixels is not walked.
        let limit = 4 * (i64::from(self.width) + i64::from(self.height)) + 8;
        for _ in 0..=(dx - dy).min(limit) {
            for oy in lo..=hi {
                for ox in lo..=hi {
                    self.put(x0 + ox, y0 + oy, c);
                }
            }
            if x0 == x1 && y0 == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x0 += sx;
            }
            if e2 <= dx {
                err += dx;
                y0 += sy;
            }
        }
    }

    /// The outline of a rectangle, drawn inside its bounds.
    pub fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, thickness: u32, c: Colour) {
        let inset = thickness as f32 / 2.0;
        let (l, t) = (x + inset, y + inset);
        let (r, b) = ((x + w - inset).max(l), (y + h - inset).max(t));
        self.line((l, t), (r, t), thickness, c);
        self.line((r, t), (r, b), thickness, c);
        self.line((r, b), (l, b), thickness, c);
        self.line((l, b), (l, t), thickness, c);
    }

    /// A closed polygon's outline.
    pub fn polygon(&mut self, points: &[(f32, f32)], thickness: u32, c: Colour) {
        for (i, p) in points.iter().enumerate() {
            let q = points[(i + 1) % points.len()];
            self.line(*p, q, thickness, c);
        }
    }

    /// One line of text on a filled background, its top-left at `(x, y)`
    /// (moved inside the canvas where it would stick out). Characters the
    /// font lacks show as `?`.
    pub fn label(&mut self, x: f32, y: f32, text: &str, fg: Colour, bg: Colour) {
        let chars = text.chars().count() as u32;
        let w = (chars * 10) as i64;
        let x = (x.round() as i64).clamp(0, (i64::from(self.width) - w).max(0));
        let y =
            (y.round() as i64).clamp(0, (i64::from(self.height) - i64::from(TEXT_HEIGHT)).max(0));
        let style = MonoTextStyleBuilder::new()
            .font(&FONT_10X20)
            .text_color(Rgb888::new(fg.0, fg.1, fg.2))
            .background_color(Rgb888::new(bg.0, bg.1, bg.2))
            .build();
        let at = Point::new(x as i32, y as i32);
        // Drawing on a canvas cannot fail (`Infallible`).
        let _ = Text::with_baseline(text, at, style, Baseline::Top).draw(self);
    }

    /// The picture as a baseline JPEG.
    pub fn jpeg(&self, quality: u8) -> Result<Vec<u8>, RenderError> {
        let too_big = || RenderError::Jpeg(format!("{}x{} is too large", self.width, self.height));
        let w = u16::try_from(self.width).map_err(|_| too_big())?;
        let h = u16::try_from(self.height).map_err(|_| too_big())?;
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
        // Full-resolution colour: thin coloured lines keep their colour.
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
        encoder
            .encode(&self.pixels, w, h, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| RenderError::Jpeg(e.to_string()))?;
        Ok(out)
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            self.put(i64::from(p.x), i64::from(p.y), Colour(c.r(), c.g(), c.b()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(w: u32, h: u32) -> Canvas {
        Canvas {
            width: w,
            height: h,
            pixels: vec![0; (w * h * 3) as usize],
        }
    }

    fn at(c: &Canvas, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * c.width + x) * 3) as usize;
        [c.pixels[i], c.pixels[i + 1], c.pixels[i + 2]]
    }

    #[test]
    fn rectangles_lines_and_text_land_where_they_are_drawn() {
        let red = Colour(255, 0, 0);
        let mut c = blank(100, 60);
        c.rect(10.0, 10.0, 30.0, 20.0, 2, red);
        assert_eq!(at(&c, 10, 20), [255, 0, 0], "left edge");
        assert_eq!(at(&c, 25, 29), [255, 0, 0], "bottom edge");
        assert_eq!(at(&c, 25, 20), [0, 0, 0], "inside stays");
        assert_eq!(at(&c, 45, 20), [0, 0, 0], "outside stays");
        c.line((0.0, 59.0), (99.0, 59.0), 1, Colour(0, 0, 255));
        assert_eq!(at(&c, 50, 59), [0, 0, 255]);
        let before = c.pixels.clone();
        // 40 px of text at x = 80 would stick out: it is moved to x = 60.
        c.label(80.0, 0.0, "id-1", Colour(255, 255, 255), Colour(0, 128, 0));
        assert_ne!(c.pixels, before, "text drew something");
        assert_ne!(at(&c, 99, 0), [0, 0, 0], "up to the edge");
        assert_eq!(at(&c, 59, 0), [0, 0, 0], "and no further left");
        // Far off the canvas: nothing drawn, nothing walked for ever.
        c.line((-1e9, -1e9), (1e9, 1e9), 3, red);
        c.polygon(&[(5.0, 5.0), (90.0, 5.0), (50.0, 50.0)], 1, Colour(1, 2, 3));
        assert_eq!(at(&c, 50, 5), [1, 2, 3]);
    }

    #[test]
    fn a_canvas_encodes_as_a_jpeg_of_its_size() {
        let mut c = blank(64, 48);
        c.rect(0.0, 0.0, 64.0, 48.0, 4, Colour(0, 255, 0));
        let jpeg = c.jpeg(80).expect("encodes");
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG's start of image");
        let mut d = jpeg_decoder::Decoder::new(&jpeg[..]);
        let pixels = d.decode().expect("decodes");
        let info = d.info().expect("info");
        assert_eq!((info.width, info.height), (64, 48));
        assert!(pixels[1] > 200 && pixels[0] < 60, "green at the corner");
        let huge = Canvas {
            width: 70_000,
            height: 1,
            pixels: Vec::new(),
        };
        assert!(huge.jpeg(80).is_err());
    }

    #[test]
    fn a_short_image_is_an_error() {
        let short = Image::from_vec(4, 4, 12, vec![0; 10]);
        assert!(Canvas::from_image(&short).is_err());
        let ok = Image::from_vec(2, 1, 8, vec![1, 2, 3, 4, 5, 6, 0, 0]);
        assert_eq!(
            Canvas::from_image(&ok).expect("fits").pixels,
            [1, 2, 3, 4, 5, 6]
        );
    }
}
