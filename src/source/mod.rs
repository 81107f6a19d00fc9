//! Frame sources: where pictures come from. Each source is one module; the capture loop and
//! `snapshot` see them only through [`Source`].

pub mod camera;
pub mod controls;
pub mod file;
pub mod pattern;
pub mod relay;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

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

    /// The device whose controls (focus, exposure…) can be read and set while it streams
    /// (see [`controls`]); `None` for sources without controls (pattern, file, relay).
    fn control_device(&self) -> Option<&v4l::Device> {
        None
    }
}

/// Opens the source the settings name, within `--timeout` like a grab: a source whose opening
/// takes longer (a huge file on a slow disk) fails, and the capture loop shows NO SIGNAL.
pub fn open(settings: &SourceSettings) -> Result<Box<dyn Source>> {
    Ok(match &settings.spec {
        SourceSpec::Pattern => Box::new(pattern::Pattern::new(settings.size)),
        SourceSpec::File(path) => Box::new(file::FileSource::open(path, settings.timeout)?),
        SourceSpec::Camera(sel) => Box::new(camera::Camera::open(sel, settings)?),
        SourceSpec::Relay(url) => Box::new(relay::Relay::open(url, settings)?),
    })
}

/// When long work in an open or a grab gives up: `--timeout` after it began. Sources check it
/// between steps (a 4 MiB read, one image split off a file, one folder file), so one step is
/// all they can overrun it by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// Fails once the deadline has passed, saying what was being done (`doing`, e.g.
    /// "loading file source clip.mjpeg").
    pub fn check(&self, doing: impl FnOnce() -> String) -> Result<()> {
        if Instant::now() < self.at {
            return Ok(());
        }
        bail!("{}: gave up after --timeout {:?}", doing(), self.timeout)
    }
}
