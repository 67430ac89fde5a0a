//! The footage an evaluation runs on: a clip (any file GStreamer decodes) or
//! a folder of photographs, decoded to RGB at each model's input size by the
//! same elements the daemon uses (`videoscale ! videoconvert`).

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::frame::Image;

#[derive(Debug, thiserror::Error)]
pub enum FootageError {
    #[error("{path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path}: no photographs (.jpg, .jpeg, .png) in the folder")]
    Empty { path: PathBuf },
    #[error("{path}: decoding failed: {message}")]
    Decode { path: PathBuf, message: String },
}

/// One decoded frame, at every size asked for, in the order asked.
pub type Views = Vec<Image>;

/// What to read: every `every`-th frame of the clip(s), at most `limit` in all.
#[derive(Debug, Clone, Copy)]
pub struct Pick {
    pub every: usize,
    pub limit: usize,
}

/// The files of the footage: the clip itself, or the folder's photographs by name.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, FootageError> {
    let open = |e: std::io::Error| FootageError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(open)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(open)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(FootageError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Decodes `file` and hands each picked frame to `each`, at every size of
/// `sizes`; `each` returns `false` to stop. Returns the frames handed over.
pub fn decode(
    file: &Path,
    sizes: &[(u32, u32)],
    pick: Pick,
    each: &mut dyn FnMut(Views) -> bool,
) -> Result<usize, FootageError> {
    let fail = |message: String| FootageError::Decode {
        path: file.to_path_buf(),
        message,
    };
    gst::init().map_err(|e| fail(e.to_string()))?;
    let abs = std::fs::canonicalize(file).map_err(|e| FootageError::Open {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let uri = url::Url::from_file_path(&abs)
        .map_err(|_| fail("not a file path".into()))?
        .to_string();
    let mut launch = String::from("uridecodebin name=src ! tee name=t");
    for (i, (w, h)) in sizes.iter().enumerate() {
        // Stretched, as the daemon does by default; not live: the sinks wait
        // for the puller, nothing is dropped.
        launch.push_str(&format!(
            " t. ! queue ! videoscale add-borders=false ! videoconvert ! video/x-raw,format=RGB,width={w},height={h} ! appsink name=s{i} sync=false max-buffers=4"
        ));
    }
    let pipeline = gst::parse::launch(&launch)
        .map_err(|e| fail(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| fail("not a pipeline".into()))?;
    let src = pipeline
        .by_name("src")
        .ok_or_else(|| fail("no source".into()))?;
    src.set_property("uri", &uri);
    let sinks: Vec<gst_app::AppSink> = (0..sizes.len())
        .filter_map(|i| pipeline.by_name(&format!("s{i}")))
        .filter_map(|e| e.downcast::<gst_app::AppSink>().ok())
        .collect();
    let stop = |p: &gst::Pipeline| {
        let _ = p.set_state(gst::State::Null);
    };
    if pipeline.set_state(gst::State::Playing).is_err() {
        let why = bus_error(&pipeline).unwrap_or_else(|| "the pipeline refused to start".into());
        stop(&pipeline);
        return Err(fail(why));
    }
    let mut index = 0usize;
    let mut handed = 0usize;
    let result = loop {
        if handed >= pick.limit {
            break Ok(handed);
        }
        let mut views = Vec::with_capacity(sinks.len());
        for sink in &sinks {
            match sink.pull_sample() {
                Ok(s) => views.push(image(&s).map_err(&fail)?),
                Err(_) => break,
            }
        }
        if views.len() < sinks.len() {
            // End of stream, or an error the bus names.
            break match bus_error(&pipeline) {
                Some(e) => Err(fail(e)),
                None => Ok(handed),
            };
        }
        index += 1;
        if !(index - 1).is_multiple_of(pick.every.max(1)) {
            continue;
        }
        handed += 1;
        if !each(views) {
            break Ok(handed);
        }
    };
    stop(&pipeline);
    result
}

fn image(sample: &gst::Sample) -> Result<Image, String> {
    let caps = sample.caps().ok_or("a sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let buffer = sample.buffer_owned().ok_or("a sample without a buffer")?;
    let mapped = buffer
        .into_mapped_buffer_readable()
        .map_err(|_| "an unreadable buffer")?;
    let image = Image {
        width: info.width(),
        height: info.height(),
        stride: info.stride()[0].max(0) as usize,
        data: Box::new(mapped),
    };
    image.check().map_err(|e| e.to_string())?;
    Ok(image)
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(e.error().to_string());
        }
    }
    None
}
