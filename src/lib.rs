//! camstream: turn a camera into a bounded, observable MJPEG-over-HTTP service.
//!
//! Where a frame comes from: [`source`] (camera, pattern, file, relay) → [`capture`] (pacing,
//! encoding with [`encoder`], the NO SIGNAL placeholder) → [`slot`] (the latest frame, shared by
//! every viewer). Where a viewer is served or refused: [`server`]. The subcommands: [`cmd`], one
//! file each, fed by [`cli`] (the flags) and [`settings`] (validated values).

pub mod capture;
pub mod cli;
pub mod cmd;
pub mod draw;
pub mod encoder;
pub mod frame;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod slot;
pub mod source;
