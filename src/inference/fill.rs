//! Pre-processing: a frame's packed RGB rows into the model's input tensor.

use super::spec::{Colour, InputSpec, Layout};
use crate::frame::{FrameError, Image};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the input tensor holds {len} values, a {width}x{height} frame needs {needed}")]
    Tensor {
        width: u32,
        height: u32,
        needed: usize,
        len: usize,
    },
}

/// Checks the frame and that `out` holds its pixels; returns (w, h).
fn sizes(image: &Image, out_len: usize) -> Result<(usize, usize), FillError> {
    image.check()?;
    let (w, h) = (image.width as usize, image.height as usize);
    let needed = w
        .checked_mul(h)
        .and_then(|n| n.checked_mul(3))
        .ok_or(FrameError::TooLarge {
            width: image.width,
            height: image.height,
        })?;
    if out_len < needed {
        return Err(FillError::Tensor {
            width: image.width,
            height: image.height,
            needed,
            len: out_len,
        });
    }
    Ok((w, h))
}

/// Row `y` of a checked image (`check` passed, so it is there).
fn row(image: &Image, y: usize) -> Result<&[u8], FillError> {
    image.row(y).ok_or(FillError::Frame(FrameError::TooLarge {
        width: image.width,
        height: image.height,
    }))
}

/// Channel order of a pixel as the model wants it.
fn channels(colour: Colour) -> [usize; 3] {
    match colour {
        Colour::Rgb => [0, 1, 2],
        Colour::Bgr => [2, 1, 0],
    }
}

/// Copies packed RGB rows (skipping stride padding) into a uint8 tensor.
pub fn fill_u8(
    image: &Image,
    layout: Layout,
    colour: Colour,
    out: &mut [u8],
) -> Result<(), FillError> {
    let (w, h) = sizes(image, out.len())?;
    if w == 0 || h == 0 {
        return Ok(());
    }
    let order = channels(colour);
    match (layout, colour) {
        (Layout::Nhwc, Colour::Rgb) => {
            for (y, dst) in out.chunks_exact_mut(w * 3).take(h).enumerate() {
                dst.copy_from_slice(row(image, y)?);
            }
        }
        (Layout::Nhwc, Colour::Bgr) => {
            for (y, dst) in out.chunks_exact_mut(w * 3).take(h).enumerate() {
                for (d, px) in dst.chunks_exact_mut(3).zip(row(image, y)?.chunks_exact(3)) {
                    d.copy_from_slice(&[px[2], px[1], px[0]]);
                }
            }
        }
        (Layout::Nchw, _) => {
            let plane = w * h;
            for y in 0..h {
                for (x, px) in row(image, y)?.chunks_exact(3).enumerate() {
                    for (c, &src) in order.iter().enumerate() {
                        out[c * plane + y * w + x] = px[src];
                    }
                }
            }
        }
    }
    Ok(())
}

/// Fills a float tensor with (pixel - mean) / std, mean and std given in
/// the model's channel order.
pub fn fill_f32(image: &Image, spec: &InputSpec, out: &mut [f32]) -> Result<(), FillError> {
    let (w, h) = sizes(image, out.len())?;
    let order = channels(spec.colour);
    let inv: [f32; 3] = std::array::from_fn(|c| 1.0 / spec.std[c]);
    let plane = w * h;
    for y in 0..h {
        for (x, px) in row(image, y)?.chunks_exact(3).enumerate() {
            for (c, &src) in order.iter().enumerate() {
                let v = (f32::from(px[src]) - spec.mean[c]) * inv[c];
                let i = match spec.layout {
                    Layout::Nhwc => (y * w + x) * 3 + c,
                    Layout::Nchw => c * plane + y * w + x,
                };
                out[i] = v;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{DType, ResizeMode};

    /// A 3x2 image with 4-byte-aligned rows (9 bytes of pixels + 3 of padding).
    fn image() -> Image {
        let mut data = Vec::new();
        for y in 0..2u8 {
            for x in 0..3u8 {
                data.extend_from_slice(&[10 * y + x, 100 + x, 200 + y]);
            }
            data.extend_from_slice(&[0xEE; 3]);
        }
        Image::from_vec(3, 2, 12, data)
    }

    fn spec() -> InputSpec {
        InputSpec {
            name: "x".into(),
            width: 3,
            height: 2,
            layout: Layout::Nchw,
            dtype: DType::F32,
            colour: Colour::Rgb,
            resize: ResizeMode::Stretch,
            mean: [0.0, 100.0, 200.0],
            std: [2.0, 1.0, 0.5],
        }
    }

    #[test]
    fn nhwc_u8_skips_row_padding() {
        let mut out = vec![0u8; 18];
        fill_u8(&image(), Layout::Nhwc, Colour::Rgb, &mut out).unwrap();
        assert_eq!(&out[..9], &[0, 100, 200, 1, 101, 200, 2, 102, 200]);
        assert_eq!(&out[9..], &[10, 100, 201, 11, 101, 201, 12, 102, 201]);
    }

    #[test]
    fn nchw_u8_is_planar() {
        let mut out = vec![0u8; 18];
        fill_u8(&image(), Layout::Nchw, Colour::Rgb, &mut out).unwrap();
        assert_eq!(&out[..6], &[0, 1, 2, 10, 11, 12]);
        assert_eq!(&out[6..12], &[100, 101, 102, 100, 101, 102]);
        assert_eq!(&out[12..], &[200, 200, 200, 201, 201, 201]);
    }

    #[test]
    fn bgr_swaps_channels_in_both_layouts() {
        let mut out = vec![0u8; 18];
        fill_u8(&image(), Layout::Nhwc, Colour::Bgr, &mut out).unwrap();
        assert_eq!(&out[..6], &[200, 100, 0, 200, 101, 1]);
        fill_u8(&image(), Layout::Nchw, Colour::Bgr, &mut out).unwrap();
        assert_eq!(&out[..6], &[200, 200, 200, 201, 201, 201]);
        assert_eq!(&out[12..], &[0, 1, 2, 10, 11, 12]);
    }

    #[test]
    fn float_normalises_per_channel() {
        let mut out = vec![0f32; 18];
        fill_f32(&image(), &spec(), &mut out).unwrap();
        assert_eq!(&out[..6], &[0.0, 0.5, 1.0, 5.0, 5.5, 6.0]);
        assert_eq!(&out[6..9], &[0.0, 1.0, 2.0]);
        assert_eq!(&out[15..], &[2.0, 2.0, 2.0]);
    }

    #[test]
    fn a_short_frame_or_tensor_is_an_error_not_a_panic() {
        let short = Image::from_vec(3, 2, 12, vec![0; 20]);
        let mut out = vec![0u8; 18];
        for layout in [Layout::Nhwc, Layout::Nchw] {
            for colour in [Colour::Rgb, Colour::Bgr] {
                let e = fill_u8(&short, layout, colour, &mut out);
                assert!(matches!(e, Err(FillError::Frame(_))), "{e:?}");
            }
        }
        let mut f = vec![0f32; 18];
        assert!(fill_f32(&short, &spec(), &mut f).is_err());
        let mut small = vec![0u8; 17];
        assert!(matches!(
            fill_u8(&image(), Layout::Nhwc, Colour::Rgb, &mut small),
            Err(FillError::Tensor { needed: 18, .. })
        ));
        assert!(fill_f32(&image(), &spec(), &mut [0f32; 5]).is_err());
    }
}
