//! A batch's model inputs as the motion stage asked for each frame (its
//! `Look`): the frame whole, regions cut from the decoded frame at the
//! model's input size, or nothing; and each frame's one output from its
//! inputs' outputs (regions mapped back to the frame and merged, so that
//! tracking sees one list per frame, as without motion).

use tracing::debug;

use super::geometry;
use super::spec::InputSpec;
use crate::frame::{Crop, Frame, Image, Look, Output};
use crate::motion::regions;

/// One model input.
pub(super) struct Part {
    /// The frame's index in the batch.
    pub frame: usize,
    /// `None`: the frame whole (its scaled image); else a region and its
    /// pixels at the model's size.
    pub region: Option<(Crop, Image)>,
}

impl Part {
    pub fn image<'a>(&'a self, frames: &'a [&Frame]) -> &'a Image {
        match &self.region {
            Some((_, image)) => image,
            None => &frames[self.frame].image,
        }
    }
}

/// The inputs for `frames`, in order. A region that cannot be cut (no
/// decoded frame kept, a conversion error) makes its frame whole: the
/// model must not miss what motion pointed at.
pub(super) fn parts(frames: &[&Frame], input: &InputSpec) -> Vec<Part> {
    let mut parts = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        match &frame.meta.sight.look {
            Look::Nothing => {}
            Look::Whole => parts.push(Part {
                frame: i,
                region: None,
            }),
            Look::Regions(crops) => match cut(frame, crops, input) {
                Some(cuts) => parts.extend(cuts.into_iter().map(|c| Part {
                    frame: i,
                    region: Some(c),
                })),
                None => parts.push(Part {
                    frame: i,
                    region: None,
                }),
            },
        }
    }
    parts
}

fn cut(frame: &Frame, crops: &[Crop], input: &InputSpec) -> Option<Vec<(Crop, Image)>> {
    let full = frame.meta.full.as_ref()?;
    crops
        .iter()
        .map(|c| match full.0.rgb(*c, input.width, input.height) {
            Ok(image) => Some((*c, image)),
            Err(e) => {
                debug!(stream = %frame.meta.stream, error = %e, "region not cut; the whole frame instead");
                None
            }
        })
        .collect()
}

/// Frame `i`'s look as analysed: regions that could not be cut made it
/// whole, and the message, the counters and the tracker must say so.
pub(super) fn record_fallback(i: usize, frame: &mut Frame, parts: &[Part]) {
    let whole = parts.iter().any(|p| p.frame == i && p.region.is_none());
    if whole && matches!(frame.meta.sight.look, Look::Regions(_)) {
        frame.meta.sight = std::sync::Arc::new(crate::frame::Sight {
            look: Look::Whole,
            motion: frame.meta.sight.motion.clone(),
        });
    }
}

/// Frame `i`'s output from the outputs of `parts` (taken from `outputs`,
/// which lines up with `parts`); no detections where the model was not
/// asked (no motion); `None` where an output is missing (the run failed).
pub(super) fn assemble(
    i: usize,
    frame: &Frame,
    parts: &[Part],
    outputs: &mut [Option<Output>],
    input: &InputSpec,
) -> Option<Output> {
    let source = (frame.meta.source_width, frame.meta.source_height);
    let mut regions: Vec<Vec<crate::frame::Detection>> = Vec::new();
    for (part, output) in parts.iter().zip(outputs.iter_mut()) {
        if part.frame != i {
            continue;
        }
        let mut output = output.take()?;
        match &part.region {
            None => {
                geometry::output_to_source(
                    &mut output,
                    input.resize,
                    source,
                    (input.width, input.height),
                );
                return Some(output);
            }
            Some((crop, _)) => {
                // A region is scaled to the model's input whole (stretch):
                // its boxes are normalised to the region.
                if let Output::Detections(mut d) = output {
                    regions::to_frame(&mut d, crop, source.0, source.1);
                    regions.push(d);
                }
            }
        }
    }
    Some(Output::Detections(regions::merge(regions)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::frame::{BBox, Detection, FrameMeta, RgbFull, Sight};
    use crate::inference::{Colour, DType, Layout, ResizeMode};

    fn input() -> InputSpec {
        InputSpec {
            name: "x".into(),
            width: 300,
            height: 300,
            layout: Layout::Nhwc,
            dtype: DType::U8,
            colour: Colour::Rgb,
            resize: ResizeMode::Stretch,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }

    /// A 1920x1080 frame looked at as `look`, with its full frame kept
    /// when `full`.
    fn frame(look: Look, full: bool) -> Frame {
        let mut meta = FrameMeta::test(0);
        (meta.source_width, meta.source_height) = (1920, 1080);
        meta.full = full.then(|| RgbFull::new(1920, 1080, vec![90; 1920 * 1080 * 3]).view());
        meta.sight = Arc::new(Sight {
            look,
            motion: Vec::new(),
        });
        Frame {
            meta,
            image: Image::from_vec(300, 300, 900, vec![0; 300 * 900]),
        }
    }

    fn person(x: f32, w: f32) -> Detection {
        Detection {
            label: "person".into(),
            label_id: 0,
            score: 0.9,
            bbox: BBox {
                x,
                y: 0.2,
                w,
                h: 0.5,
            },
            track: None,
            sub_label: None,
            held: false,
        }
    }

    fn crop(x: u32) -> Crop {
        Crop {
            x,
            y: 300,
            width: 300,
            height: 300,
        }
    }

    #[test]
    fn each_frame_costs_what_its_look_asks_and_gets_one_list_back() {
        let frames = [
            frame(Look::Nothing, true),
            frame(Look::Whole, true),
            frame(Look::Regions(vec![crop(600), crop(800)]), true),
            // No decoded frame to cut from: the whole frame instead.
            frame(Look::Regions(vec![crop(0)]), false),
        ];
        let refs: Vec<&Frame> = frames.iter().collect();
        let parts = parts(&refs, &input());
        let shape: Vec<(usize, bool)> = parts
            .iter()
            .map(|p| (p.frame, p.region.is_some()))
            .collect();
        assert_eq!(shape, [(1, false), (2, true), (2, true), (3, false)]);
        assert!(parts.iter().all(|p| {
            let i = p.image(&refs);
            (i.width, i.height) == (300, 300)
        }));
        // A person at x 840-990: cut by the first region's edge (900),
        // whole in the second; one box in the frame's coordinates.
        let mut outputs = vec![
            Some(Output::Detections(vec![person(0.1, 0.2)])),
            Some(Output::Detections(vec![person(0.8, 0.2)])),
            Some(Output::Detections(vec![person(40.0 / 300.0, 0.5)])),
            Some(Output::Detections(Vec::new())),
        ];
        let out = |i: usize, outputs: &mut Vec<Option<Output>>| {
            assert_eq!(outputs.len(), parts.len());
            assemble(i, &frames[i], &parts, outputs, &input())
        };
        assert_eq!(out(0, &mut outputs), Some(Output::Detections(Vec::new())));
        assert_eq!(
            out(1, &mut outputs),
            Some(Output::Detections(vec![person(0.1, 0.2)]))
        );
        let Some(Output::Detections(d)) = out(2, &mut outputs) else {
            panic!("detections");
        };
        assert_eq!(d.len(), 1, "{d:?}");
        let b = d[0].bbox;
        let (x0, x1) = (b.x * 1920.0, (b.x + b.w) * 1920.0);
        assert!(
            (x0 - 840.0).abs() < 1.0 && (x1 - 990.0).abs() < 1.0,
            "{b:?}"
        );
        // A part whose run failed fails its frame.
        assert_eq!(out(2, &mut outputs), None, "taken already");
        assert_eq!(out(3, &mut outputs), Some(Output::Detections(Vec::new())));
        // The frame whose regions could not be cut was looked at whole.
        let mut fell_back = frame(Look::Regions(vec![crop(0)]), false);
        record_fallback(3, &mut fell_back, &parts);
        assert_eq!(fell_back.meta.sight.look, Look::Whole);
        let mut cut = frame(Look::Regions(vec![crop(600), crop(800)]), true);
        record_fallback(2, &mut cut, &parts);
        assert!(matches!(cut.meta.sight.look, Look::Regions(_)));
    }
}
