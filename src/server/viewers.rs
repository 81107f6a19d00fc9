//! Admission control and the viewer pool: where a viewer gets a slot or is refused.
//!
//! At most `--max-clients` viewers stream at once. Admission is one atomic step, so the viewer
//! past the limit is refused at once with 503 and `Retry-After`, never queued. Admitted viewers
//! are served by a pool of at most `--max-clients` threads, started as they are first needed and
//! kept for the next viewer.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use crate::server::listener::ConnSlot;
use crate::server::{stream, App};

/// One admitted viewer's place; frees the slot when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.active.fetch_sub(1, Ordering::AcqRel);
        self.admission.gauge.dec();
    }
}

/// Counts viewers against the limit.
pub struct Admission {
    max: usize,
    active: AtomicUsize,
    gauge: prometheus::IntGauge,
}

impl Admission {
    pub fn new(max: usize, gauge: prometheus::IntGauge) -> Arc<Admission> {
        Arc::new(Admission {
            max,
            active: AtomicUsize::new(0),
            gauge,
        })
    }

    /// A slot if one is free.
    pub fn try_admit(self: &Arc<Self>) -> Option<Ticket> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        self.gauge.inc();
        Some(Ticket {
            admission: Arc::clone(self),
        })
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }
}

/// An admitted viewer waiting for a pool thread.
pub struct ViewerJob {
    pub conn: TcpStream,
    pub slot: ConnSlot,
    pub ticket: Ticket,
    pub minor_version: u8,
    pub max_fps: Option<u32>,
}

/// The threads that stream to viewers.
pub struct ViewerPool {
    tx: Sender<ViewerJob>,
    rx: Receiver<ViewerJob>,
    spawned: Mutex<usize>,
    app: Arc<App>,
}

impl ViewerPool {
    pub fn new(app: Arc<App>) -> Arc<ViewerPool> {
        // Never more queued than admitted, and never more admitted than max_clients.
        let (tx, rx) = crossbeam_channel::bounded(app.settings.max_clients);
        Arc::new(ViewerPool {
            tx,
            rx,
            spawned: Mutex::new(0),
            app,
        })
    }

    /// Hands an admitted viewer to a pool thread, starting one if every thread is busy.
    pub fn dispatch(&self, job: ViewerJob) {
        {
            // Keep one thread per admitted viewer: admission already bounds the count.
            let mut spawned = self.spawned.lock().unwrap_or_else(|e| e.into_inner());
            let needed = self
                .app
                .admission
                .active()
                .min(self.app.settings.max_clients);
            while *spawned < needed {
                let (rx, app) = (self.rx.clone(), Arc::clone(&self.app));
                let started = std::thread::Builder::new()
                    .name(format!("viewer-{}", *spawned))
                    .stack_size(256 << 10)
                    .spawn(move || viewer_thread(rx, app));
                match started {
                    Ok(_) => *spawned += 1,
                    Err(e) => {
                        eprintln!("camstream: warning: cannot start a viewer thread: {e}");
                        break;
                    }
                }
            }
        }
        // Capacity is max_clients and each job holds a ticket, so this never blocks for long.
        let _ = self.tx.send(job);
    }
}

fn viewer_thread(rx: Receiver<ViewerJob>, app: Arc<App>) {
    while let Ok(mut job) = rx.recv() {
        if app.shutdown.is_triggered() {
            continue; // drop it: the connection closes
        }
        app.metrics.viewers_accepted.inc();
        let end = stream::serve(&mut job.conn, &app, job.minor_version, job.max_fps);
        if end == stream::End::Evicted {
            app.metrics.viewers_evicted.inc();
        }
        // Dropping the job closes the socket and frees the viewer and connection slots.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let gauge = prometheus::IntGauge::new("v", "v").unwrap();
        let a = Admission::new(2, gauge.clone());
        let t1 = a.try_admit().unwrap();
        let _t2 = a.try_admit().unwrap();
        assert!(a.try_admit().is_none());
        assert_eq!(gauge.get(), 2);
        drop(t1);
        assert_eq!(gauge.get(), 1);
        assert!(a.try_admit().is_some());
    }
}
