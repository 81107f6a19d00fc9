//! camstream: turn a camera into a bounded, observable MJPEG-over-HTTP service.
//!
//! Where a frame comes from: [`source`] (camera, pattern, file, relay) → [`capture`] (pacing,
//! encoding with [`encoder`], the NO SIGNAL placeholder) → [`slot`] (the latest frame, shared by
//! every viewer). Where a viewer is served or refused: [`server`].

pub mod capture;
pub mod cli;
pub mod draw;
pub mod encoder;
pub mod frame;
pub mod list;
pub mod metrics;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod slot;
pub mod snapshot;
pub mod source;
