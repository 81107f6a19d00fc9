//! `camstream serve`: the bounded MJPEG server.
//!
//! A request's journey, by file: [`listener`] accepts and reads the head (its [`conn::Conn`]
//! holds a [`permit::Permit`] under `--max-connections`), a worker (`worker.rs`) answers it through
//! [`routes`] with what [`http`] writes, and [`stream`] senders finish what cannot be written at
//! once; [`viewers`] admits or refuses stream viewers, [`auth`] checks passwords, and [`app`]
//! holds what they share.
//!
//! Threads, a fixed number: the capture thread, one head-reading thread ([`listener`]),
//! `--workers` request workers, and one stream sender per core, at most four ([`stream`]),
//! which write frames to every admitted viewer ([`viewers`]); plus the main thread and the
//! signal-handler thread, and with `--auth-file` one password verifier ([`auth`]). Hence
//! `threads <= workers + senders + 4` (+ 1 with `--auth-file`), whatever arrives, however many
//! viewers.
//!
//! rouille provides the request/response model and routing ([`routes`]); the connection layer
//! is camstream's own, because rouille 3.6 / tiny_http 0.12 spawn a thread per connection without
//! a limit, set no timeouts, buffer streamed bodies in 8 KiB chunks and buffer HTTP/1.0 bodies
//! forever (see the README's architecture section).

pub mod app;
pub mod auth;
pub mod conn;
pub mod http;
pub mod listener;
pub mod permit;
pub mod routes;
pub mod sched;
pub mod stream;
pub mod viewers;
mod worker;

pub use app::App;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::capture;
use crate::server::listener::{Acceptor, Limits};
use crate::server::stream::Senders;
use crate::settings::ServeSettings;
use crate::shutdown::{self, Shutdown};
use crate::source;

/// How long shutdown waits for the threads to finish (streams end, the source is released);
/// what is still stuck then (a camera read, say) ends with the process.
const STOP_WAIT: Duration = Duration::from_millis(900);

/// The most threads `serve` runs with these settings (see the module docs).
pub fn thread_bound(s: &ServeSettings) -> usize {
    // The verifier runs exactly when there are hashed passwords, that is with --auth-file.
    s.workers + stream::sender_count() + 4 + usize::from(s.auth_file.is_some())
}

/// A running server; dropping it does not stop it, [`Server::stop`] does.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: Shutdown,
    waker: Arc<mio::Waker>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    senders: Option<Arc<Senders>>,
    capture: Option<JoinHandle<()>>,
    verifier: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds, starts the capture loop and every thread, and returns at once.
    pub fn start(settings: ServeSettings, shutdown: Shutdown) -> Result<Server> {
        let app = Arc::new(App::new(settings)?);
        let s = &app.settings;
        listener::ensure_fd_limit(s.max_connections);
        let listener = listener::bind(s.listen)?;
        let addr = listener.local_addr()?;

        let src = s.source.clone();
        let opener: capture::Opener = Box::new(move || source::open(&src));
        let shared = capture::Shared {
            slot: Arc::clone(&app.slot),
            metrics: Arc::clone(&app.metrics),
            status: Arc::clone(&app.status),
            controls: Some(app.control_requests.clone()),
        };
        let capture = capture::spawn(s.source.clone(), opener, shared, shutdown.clone())?;

        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(s.request_queue_len());
        let (acceptor, waker) =
            Acceptor::new(listener, Limits::from(s), jobs_tx, Arc::clone(&app.metrics))?;
        let stop = shutdown.clone();
        let acceptor = std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || acceptor.run(|| stop.is_triggered()))?;

        let senders = Arc::new(Senders::start(&app, stream::sender_count())?);
        // The workers hold the only gates, so the verifier ends after the last worker.
        let (gate, verifier) = auth::Gate::start(&app)?;
        let workers = (0..s.workers)
            .map(|i| {
                let (rx, app, senders) = (jobs_rx.clone(), Arc::clone(&app), Arc::clone(&senders));
                let gate = gate.clone();
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker::run(rx, gate, &app, &senders))
                    .context("cannot start a worker thread")
            })
            .collect::<Result<Vec<_>>>()?;

        Ok(Server {
            addr,
            app,
            shutdown,
            waker,
            acceptor: Some(acceptor),
            workers,
            senders: Some(senders),
            capture: Some(capture),
            verifier,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops accepting, ends every stream, releases the source. Returns within about a second
    /// even if a camera read or a viewer's write is stuck; those threads end with the process.
    pub fn stop(mut self) {
        self.shutdown.trigger();
        // Closing the slot here, not only when the capture thread ends, ends the streams even
        // while a stalled camera keeps the capture thread in a read.
        self.app.slot.close();
        let _ = self.waker.wake();
        let deadline = Instant::now() + STOP_WAIT;
        if let Some(a) = self.acceptor.take() {
            shutdown::join_until(a, deadline);
        }
        if let Some(s) = self.senders.take() {
            s.join_until(deadline);
        }
        // Workers end when the queue closes (the acceptor dropped its sender) and their current
        // request ends; snapshot waits end at once because the slot is closed.
        if let Some(c) = self.capture.take() {
            shutdown::join_until(c, deadline);
        }
        for w in self.workers.drain(..) {
            shutdown::join_until(w, deadline);
        }
        if let Some(v) = self.verifier.take() {
            shutdown::join_until(v, deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_bound_does_not_grow_with_viewers() {
        let mut s = ServeSettings::small_pattern();
        let small = thread_bound(&s);
        s.max_clients = 1000;
        assert_eq!(thread_bound(&s), small);
        assert_eq!(small, s.workers + stream::sender_count() + 4);
    }
}
