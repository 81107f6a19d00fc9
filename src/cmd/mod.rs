//! The subcommands, one file each: [`list`], [`snapshot`], [`serve`] and [`hash_password`].
//!
//! A command takes the parsed flags ([`crate::cli`]), turns them into validated settings
//! ([`crate::settings`]) and runs. The conversion lives here, not in either of those modules, so
//! that `cli` depends on `settings` (for value types and parsers) and never the other way round.

pub mod hash_password;
pub mod list;
pub mod serve;
pub mod snapshot;

use crate::cli::SourceArgs;
use crate::settings::SourceSettings;

/// The source settings of `snapshot` and `serve`; every value was checked by its flag's parser.
pub fn source_settings(a: &SourceArgs) -> SourceSettings {
    SourceSettings {
        spec: a.source.clone(),
        size: a.size,
        fps: a.fps,
        quality: a.quality,
        format: a.format,
        timeout: a.timeout,
    }
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
