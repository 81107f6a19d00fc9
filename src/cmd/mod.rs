//! The subcommands, one file each: [`list`], [`snapshot`], [`serve`], [`controls`] and
//! [`hash_password`].
//!
//! A command takes the parsed flags ([`crate::cli`]), turns them into validated settings
//! ([`crate::settings`]) and runs. The conversion lives here, not in either of those modules, so
//! that `cli` depends on `settings` (for value types and parsers) and never the other way round.

pub mod controls;
pub mod hash_password;
pub mod list;
pub mod serve;
pub mod snapshot;

use crate::cli::SourceArgs;
use crate::settings::{SourceSettings, SourceSpec};
use crate::source::camera;
use crate::source::controls as ctl;

/// The source settings of `snapshot` and `serve`; every value was checked by its flag's parser.
pub fn source_settings(a: &SourceArgs) -> SourceSettings {
    SourceSettings {
        spec: a.source.clone(),
        size: a.size,
        fps: a.fps,
        quality: a.quality,
        format: a.format,
        timeout: a.timeout,
        controls: a.control.clone(),
    }
}

/// Checks `--control` against the camera when it is there at start: an unknown name or a value
/// out of range is a usage error naming the control and what is valid. A camera that cannot be
/// opened now is checked when it opens (a warning then), so that serve can start before it.
pub fn check_controls(s: &SourceSettings) -> Result<(), String> {
    if s.controls.is_empty() {
        return Ok(());
    }
    let SourceSpec::Camera(sel) = &s.spec else {
        return Err(format!(
            "--control needs a camera source; {} has no controls",
            s.spec
        ));
    };
    let checked = camera::open_for_controls(sel).and_then(|(path, dev)| {
        let all = ctl::query(&dev)
            .map_err(|e| anyhow::anyhow!("cannot read the controls of {}: {e}", path.display()))?;
        Ok((path, all))
    });
    let (path, all) = match checked {
        Ok(v) => v,
        Err(e) => {
            log::warn!("--control is checked when the camera opens: {e:#}");
            return Ok(());
        }
    };
    for a in &s.controls {
        ctl::resolve(&all, a)
            .map_err(|m| format!("--control {a}: {m} (camera {})", path.display()))?;
    }
    Ok(())
}

/// Flags that contradict each other, found after parsing: `main` reports it like clap's own
/// usage errors (exit 2), under the subcommand's name.
#[derive(Debug)]
pub struct UsageError {
    /// The subcommand whose flags conflict, e.g. `serve`.
    pub command: &'static str,
    pub message: String,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}
