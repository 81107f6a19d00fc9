//! Frame sources: where pictures come from. Each source is one module; the capture loop and
//! `snapshot` see them only through [`Source`].

pub mod camera;
pub mod file;
pub mod pattern;
pub mod relay;

use anyhow::Result;

use crate::frame::RawFrame;
use crate::settings::{SourceSettings, SourceSpec};

/// A producer of frames. Implementations do their own blocking (a camera waits for the
/// device) but never longer than the configured timeout.
pub trait Source: Send {
    /// Short description for logs and `/state`, e.g. `pattern 640x480` or `camera /dev/video0`.
    fn describe(&self) -> String;

    /// The next frame.
    fn grab(&mut self) -> Result<RawFrame>;

    /// Advances by one frame without producing pixels, for when nobody watches. Sources that
    /// must drain a device anyway grab and drop.
    fn skip(&mut self) -> Result<()> {
        self.grab().map(drop)
    }

    /// Whether the capture loop must pace this source at `--fps` (a camera paces itself).
    fn needs_pacing(&self) -> bool {
        true
    }

    /// Frames this source found unusable and skipped so far (bad JPEGs in a file).
    fn bad_frames(&self) -> u64 {
        0
    }
}

/// Opens the source the settings name.
pub fn open(settings: &SourceSettings) -> Result<Box<dyn Source>> {
    Ok(match &settings.spec {
        SourceSpec::Pattern => Box::new(pattern::Pattern::new(settings.size)),
        SourceSpec::File(path) => Box::new(file::FileSource::open(path)?),
        SourceSpec::Camera(sel) => Box::new(camera::Camera::open(sel, settings)?),
        SourceSpec::Relay(url) => Box::new(relay::Relay::open(url, settings)?),
    })
}
