//! How a source frame becomes the model's input (stretch, letterbox,
//! centre crop), and how boxes found in the input map back to the source.

use serde::Deserialize;

use crate::frame::{BBox, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Scale each axis to fit, ignoring the aspect ratio.
    #[default]
    Stretch,
    /// Keep the aspect ratio, pad the rest with black, centred.
    Letterbox,
    /// Keep the aspect ratio, cut the source's excess, centred.
    #[serde(alias = "center-crop")]
    CentreCrop,
}

/// The part of the model input the source fills (letterbox), or the part of
/// the source the model sees (centre crop), as fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

fn window(mode: ResizeMode, source: (u32, u32), input: (u32, u32)) -> Window {
    let full = Window {
        x: 0.0,
        y: 0.0,
        w: 1.0,
        h: 1.0,
    };
    let (sw, sh) = (source.0 as f32, source.1 as f32);
    let (iw, ih) = (input.0 as f32, input.1 as f32);
    if sw <= 0.0 || sh <= 0.0 || iw <= 0.0 || ih <= 0.0 {
        return full;
    }
    match mode {
        ResizeMode::Stretch => full,
        ResizeMode::Letterbox => {
            let scale = (iw / sw).min(ih / sh);
            // The scaler works in whole pixels.
            let (cw, ch) = ((sw * scale).round(), (sh * scale).round());
            Window {
                x: ((iw - cw) / 2.0).floor() / iw,
                y: ((ih - ch) / 2.0).floor() / ih,
                w: cw / iw,
                h: ch / ih,
            }
        }
        ResizeMode::CentreCrop => {
            let (src_ratio, in_ratio) = (sw / sh, iw / ih);
            if src_ratio > in_ratio {
                let w = in_ratio / src_ratio;
                Window {
                    x: (1.0 - w) / 2.0,
                    y: 0.0,
                    w,
                    h: 1.0,
                }
            } else {
                let h = src_ratio / in_ratio;
                Window {
                    x: 0.0,
                    y: (1.0 - h) / 2.0,
                    w: 1.0,
                    h,
                }
            }
        }
    }
}

/// Maps a box normalised to the model input onto the source frame.
pub fn to_source(b: BBox, mode: ResizeMode, source: (u32, u32), input: (u32, u32)) -> BBox {
    let win = window(mode, source, input);
    let (x0, y0, x1, y1) = match mode {
        ResizeMode::Stretch => return b,
        // Input coordinates inside the padded window -> source.
        ResizeMode::Letterbox => (
            (b.x - win.x) / win.w,
            (b.y - win.y) / win.h,
            (b.x + b.w - win.x) / win.w,
            (b.y + b.h - win.y) / win.h,
        ),
        // The input shows only the window of the source.
        ResizeMode::CentreCrop => (
            win.x + b.x * win.w,
            win.y + b.y * win.h,
            win.x + (b.x + b.w) * win.w,
            win.y + (b.y + b.h) * win.h,
        ),
    };
    let (x0, y0) = (x0.clamp(0.0, 1.0), y0.clamp(0.0, 1.0));
    let (x1, y1) = (x1.clamp(0.0, 1.0), y1.clamp(0.0, 1.0));
    BBox {
        x: x0,
        y: y0,
        w: (x1 - x0).max(0.0),
        h: (y1 - y0).max(0.0),
    }
}

/// Maps every box of `output` onto the source frame.
pub fn output_to_source(
    output: &mut Output,
    mode: ResizeMode,
    source: (u32, u32),
    input: (u32, u32),
) {
    if mode == ResizeMode::Stretch {
        return;
    }
    if let Output::Detections(d) = output {
        for det in d {
            det.bbox = to_source(det.bbox, mode, source, input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: BBox, b: BBox) -> bool {
        (a.x - b.x).abs() < 1e-4
            && (a.y - b.y).abs() < 1e-4
            && (a.w - b.w).abs() < 1e-4
            && (a.h - b.h).abs() < 1e-4
    }

    #[test]
    fn stretch_is_identity() {
        let b = BBox {
            x: 0.1,
            y: 0.2,
            w: 0.3,
            h: 0.4,
        };
        assert_eq!(
            to_source(b, ResizeMode::Stretch, (1280, 720), (300, 300)),
            b
        );
    }

    #[test]
    fn letterbox_removes_the_padding() {
        // 1280x720 into 300x300: content 300x169, 65 px of black above.
        let whole_content = BBox {
            x: 0.0,
            y: 65.0 / 300.0,
            w: 1.0,
            h: 169.0 / 300.0,
        };
        let got = to_source(
            whole_content,
            ResizeMode::Letterbox,
            (1280, 720),
            (300, 300),
        );
        assert!(
            close(
                got,
                BBox {
                    x: 0.0,
                    y: 0.0,
                    w: 1.0,
                    h: 1.0
                }
            ),
            "{got:?}"
        );
        // A box in the top padding maps to nothing.
        let pad = BBox {
            x: 0.2,
            y: 0.0,
            w: 0.2,
            h: 0.1,
        };
        assert_eq!(
            to_source(pad, ResizeMode::Letterbox, (1280, 720), (300, 300)).h,
            0.0
        );
    }

    #[test]
    fn centre_crop_adds_back_the_cut_sides() {
        // 1280x720 cropped to 720x720 in the middle: x from 280/1280.
        let whole_input = BBox {
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        };
        let got = to_source(whole_input, ResizeMode::CentreCrop, (1280, 720), (224, 224));
        assert!(
            close(
                got,
                BBox {
                    x: 280.0 / 1280.0,
                    y: 0.0,
                    w: 720.0 / 1280.0,
                    h: 1.0
                }
            ),
            "{got:?}"
        );
        // A portrait source loses rows instead.
        let got = to_source(whole_input, ResizeMode::CentreCrop, (480, 640), (224, 224));
        assert!(
            close(
                got,
                BBox {
                    x: 0.0,
                    y: 0.125,
                    w: 1.0,
                    h: 0.75
                }
            ),
            "{got:?}"
        );
    }
}
