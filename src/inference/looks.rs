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
