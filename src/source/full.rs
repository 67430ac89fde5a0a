//! Decoded frames at the source's full size, kept by reference for
//! snapshots and the status page.
//!
//! The fps gate's probe (before the scaler) takes a reference to every
//! kept decoded buffer: a refcount, no copy. It travels with the frame's
//! metadata; only a snapshot or a request for the status page's image
//! converts pixels, and then only the crop it needs, straight to the
//! size it needs (GStreamer's `VideoConverter`, any raw format).
//!
//! A reference keeps the decoder's buffer out of its pool until dropped,
//! so few are held: the frame in the channel, the one in the model, the
//! stream's latest analysed frame and at most one waiting snapshot per
//! label (see `snapshot`).

use std::sync::atomic::{AtomicU64, Ordering};

use gstreamer as gst;
use gstreamer_video as gst_video;

use crate::frame::{Crop, FrameError, FullFrame, Image};

/// Decoded frames referenced now, all streams together (`/metrics`).
static HELD: AtomicU64 = AtomicU64::new(0);

pub fn held() -> u64 {
    HELD.load(Ordering::Relaxed)
}

pub struct GstFull {
    buffer: gst::Buffer,
    info: gst_video::VideoInfo,
}

impl GstFull {
    pub fn new(buffer: gst::Buffer, info: gst_video::VideoInfo) -> Self {
        HELD.fetch_add(1, Ordering::Relaxed);
        Self { buffer, info }
    }
}

impl Drop for GstFull {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FullFrame for GstFull {
    fn width(&self) -> u32 {
        self.info.width()
    }

    fn height(&self) -> u32 {
        self.info.height()
    }

    fn rgb(&self, crop: Crop, width: u32, height: u32) -> Result<Image, FrameError> {
        let convert = |e: gst::glib::BoolError| FrameError::Convert(e.to_string());
        let (fw, fh) = (self.info.width(), self.info.height());
        if fw == 0 || fh == 0 || width == 0 || height == 0 {
            return Err(FrameError::Convert(format!(
                "cannot scale a {fw}x{fh} frame to {width}x{height}"
            )));
        }
        let x = crop.x.min(fw - 1);
        let y = crop.y.min(fh - 1);
        let w = crop.width.clamp(1, fw - x);
        let h = crop.height.clamp(1, fh - y);
        let int = |v: u32| i32::try_from(v).map_err(|_| FrameError::TooLarge { width, height });
        let out_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
            .fps(self.info.fps())
            .interlace_mode(self.info.interlace_mode())
            .build()
            .map_err(convert)?;
        let mut config = gst_video::VideoConverterConfig::new();
        config.set_src_x(int(x)?);
        config.set_src_y(int(y)?);
        config.set_src_width(Some(int(w)?));
        config.set_src_height(Some(int(h)?));
        // Bilinear is plenty for a picture people look at, and cheap.
        config.set_resampler_method(gst_video::VideoResamplerMethod::Linear);
        let converter =
            gst_video::VideoConverter::new(&self.info, &out_info, Some(config)).map_err(convert)?;
        // Checks the buffer against the frame's layout (its video meta, if
        // any): a short buffer is an error here, not a read past its end.
        let src = gst_video::VideoFrame::from_buffer_readable(self.buffer.clone(), &self.info)
            .map_err(|_| {
                FrameError::Convert("the decoded buffer does not match its caps".into())
            })?;
        let out = gst::Buffer::with_size(out_info.size()).map_err(convert)?;
        let mut dest = gst_video::VideoFrame::from_buffer_writable(out, &out_info)
            .map_err(|_| FrameError::Convert("cannot map the output buffer".into()))?;
        converter.frame(&src, &mut dest);
        let stride = usize::try_from(out_info.stride()[0]).unwrap_or(0);
        let mapped = dest
            .into_buffer()
            .into_mapped_buffer_readable()
            .map_err(|_| FrameError::Convert("cannot read the output buffer".into()))?;
        let image = Image {
            width,
            height,
            stride,
            data: Box::new(mapped),
        };
        image.check()?;
        Ok(image)
    }
}
