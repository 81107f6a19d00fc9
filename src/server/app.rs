//! The state every part of the server shares: settings, the latest-frame slot, metrics, the
//! source's status, viewer admission and authentication.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;

use crossbeam_channel::{Receiver, Sender};

use crate::capture::{ControlRequest, SourceStatus, CONTROL_QUEUE};
use crate::metrics::Metrics;
use crate::server::auth;
use crate::server::permit::Counter;
use crate::server::viewers::Admission;
use crate::settings::ServeSettings;
use crate::slot::FrameSlot;

/// What every handler can see.
pub struct App {
    pub settings: ServeSettings,
    pub slot: Arc<FrameSlot>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Mutex<SourceStatus>>,
    pub admission: Arc<Admission>,
    pub auth: auth::Auth,
    pub started: Instant,
    /// `/controls` requests to the capture thread, which owns the camera.
    pub controls: Sender<ControlRequest>,
    /// Held by each worker that waits for an answer from the capture thread (a few ms between
    /// frames, up to 2 s with a stalled camera): at most all workers but one, so a stalled
    /// camera or a flood of control requests always leaves a worker for everything else.
    pub control_waiter: Counter,
    /// Their receiving end, for the capture loop.
    pub control_requests: Receiver<ControlRequest>,
}

impl App {
    /// The shared state for `settings`: metrics, an empty slot, admission, authentication.
    pub fn new(settings: ServeSettings) -> Result<App> {
        let auth = auth::Auth::load(settings.auth_file.as_deref(), settings.auth_env.as_deref())?;
        let metrics = Arc::new(Metrics::new()?);
        metrics.viewers_max.set(settings.max_clients as i64);
        let (controls, control_requests) = crossbeam_channel::bounded(CONTROL_QUEUE);
        Ok(App {
            controls,
            control_waiter: Counter::limited(settings.workers.saturating_sub(1).max(1), None),
            control_requests,
            admission: Admission::new(
                settings.max_clients,
                settings.max_clients_per_ip,
                metrics.viewers.clone(),
            ),
            auth,
            settings,
            slot: Arc::new(FrameSlot::new()),
            metrics,
            status: Arc::default(),
            started: Instant::now(),
        })
    }
}
