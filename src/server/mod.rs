//! `camstream serve`: the bounded MJPEG server.
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

pub mod auth;
pub mod http;
pub mod listener;
pub mod routes;
pub mod stream;
pub mod viewers;

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;

use crate::capture::{self, SourceStatus};
use crate::metrics::Metrics;
use crate::server::http::{Outgoing, ReplyTo};
use crate::server::listener::{Acceptor, ConnSlot, Job, Limits};
use crate::server::routes::Reply;
use crate::server::stream::{Handoff, Senders};
use crate::server::viewers::{Admission, ViewerJob};
use crate::settings::ServeSettings;
use crate::shutdown::Shutdown;
use crate::slot::FrameSlot;
use crate::source;

/// Send buffer of a viewer's socket (the kernel doubles it for bookkeeping).
const VIEWER_SNDBUF: usize = 256 << 10;
/// How long shutdown waits for the threads to finish (streams end, the source is released);
/// what is still stuck then (a camera read, say) ends with the process.
const STOP_WAIT: Duration = Duration::from_millis(900);

/// The most threads `serve` runs with these settings (see the module docs).
pub fn thread_bound(s: &ServeSettings) -> usize {
    // The verifier runs exactly when there are hashed passwords, that is with --auth-file.
    s.workers + stream::sender_count() + 4 + usize::from(s.auth_file.is_some())
}

/// What every handler can see.
pub struct App {
    pub settings: ServeSettings,
    pub slot: Arc<FrameSlot>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Mutex<SourceStatus>>,
    pub admission: Arc<Admission>,
    pub auth: auth::Auth,
    pub started: Instant,
}

impl App {
    /// The shared state for `settings`: metrics, an empty slot, admission, authentication.
    pub fn new(settings: ServeSettings) -> Result<App> {
        let auth = auth::Auth::load(settings.auth_file.as_deref(), settings.auth_env.as_deref())?;
        let metrics = Arc::new(Metrics::new()?);
        metrics.viewers_max.set(settings.max_clients as i64);
        Ok(App {
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
                    .spawn(move || worker(rx, gate, &app, &senders))
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
            join_until(a, deadline);
        }
        if let Some(s) = self.senders.take() {
            s.join_until(deadline);
        }
        // Workers end when the queue closes (the acceptor dropped its sender) and their current
        // request ends; snapshot waits end at once because the slot is closed.
        if let Some(c) = self.capture.take() {
            join_until(c, deadline);
        }
        for w in self.workers.drain(..) {
            join_until(w, deadline);
        }
        if let Some(v) = self.verifier.take() {
            join_until(v, deadline);
        }
    }
}

/// Joins `h` if it finishes by `deadline`; otherwise leaves it to end with the process.
fn join_until(h: JoinHandle<()>, deadline: Instant) {
    while !h.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if h.is_finished() {
        let _ = h.join();
    }
}

fn worker(jobs: Receiver<Job>, mut gate: auth::Gate, app: &Arc<App>, senders: &Senders) {
    // The gate answers or hands on what needs credentials (argon2 never runs here).
    while let Some(job) = gate.next(&jobs, app) {
        handle(job, app, senders);
    }
}

/// Answers one request. Nothing here waits for a client or a frame: what cannot be written at
/// once, streams and snapshots that wait for a frame go to the senders.
fn handle(job: Job, app: &Arc<App>, senders: &Senders) {
    let Job { conn, head, slot } = job;
    let to = ReplyTo {
        minor_version: head.minor_version,
        head_only: head.request.method() == "HEAD",
        allow_origin: app.settings.allow_origin.as_deref().map(Arc::from),
    };
    let ip = head.request.remote_addr().ip();
    let out = match routes::route_authorized(&head.request, app) {
        Reply::Response(r) => Outgoing::new(r, &to),
        Reply::Snapshot => match routes::snapshot_now(app) {
            Ok(frame) => routes::snapshot(Some(&frame), &to),
            Err(after) => {
                let wait = Handoff::Snapshot {
                    conn,
                    slot,
                    after,
                    to,
                };
                if let Err(wait) = senders.dispatch(wait) {
                    refuse_busy(wait, app);
                }
                return;
            }
        },
        // HEAD gets exactly the status and headers a GET would get now, without taking a slot.
        Reply::Stream { .. } if to.head_only => match app.admission.check(ip) {
            Ok(()) => Outgoing::stream(&to, stream::BOUNDARY),
            Err(why) => refusal(&why, app, &to),
        },
        Reply::Stream { max_fps } => match app.admission.try_admit(ip) {
            Ok(ticket) => {
                log::debug!("viewer {ip} admitted");
                // A fixed send buffer (instead of autotuning up to megabytes) bounds kernel
                // memory per viewer and how stale a slow viewer's frames can get.
                let _ = socket2::SockRef::from(&conn).set_send_buffer_size(VIEWER_SNDBUF);
                let viewer = Handoff::Viewer(ViewerJob {
                    conn,
                    slot,
                    ticket,
                    minor_version: to.minor_version,
                    max_fps,
                });
                if let Err(viewer) = senders.dispatch(viewer) {
                    refuse_busy(viewer, app);
                }
                return;
            }
            Err(why) => {
                app.metrics.viewers_rejected.inc();
                log::info!("viewer {ip} refused with 503 ({why:?})");
                refusal(&why, app, &to)
            }
        },
    };
    send(conn, slot, out, senders);
}

/// The 503 for a viewer past a limit, saying which.
fn refusal(why: &viewers::Full, app: &App, to: &ReplyTo) -> Outgoing {
    let msg = match why {
        viewers::Full::All => format!(
            "all {} stream slots are taken; retry later",
            app.settings.max_clients
        ),
        viewers::Full::PerAddress(n) => {
            format!("this address already has {n} streams open; retry later")
        }
    };
    Outgoing::new(
        http::text(503, &msg).with_unique_header("Retry-After", "1"),
        to,
    )
}

/// Writes `out` without blocking; what the socket does not take at once is finished by a
/// sender, so a client that does not read never holds a worker.
fn send(mut conn: TcpStream, slot: ConnSlot, out: Outgoing, senders: &Senders) {
    let written = loop {
        match stream::write_from(&mut conn, &out.bufs(), 0) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break 0,
            Err(_) => return,
            Ok(n) => break n,
        }
    };
    if written == out.len() {
        // A FIN before anything else: the client reads the whole response, then the end.
        let _ = conn.shutdown(std::net::Shutdown::Write);
        return;
    }
    // If every sender's queue is full the client loses the rest of its answer; that takes
    // more unfinished answers than there are connections (the queues hold max-clients + 1024).
    let _ = senders.dispatch(Handoff::Reply {
        conn,
        slot,
        out,
        off: written,
    });
}

/// Answers 503 to a client that could not be handed to a sender (their queues are full).
fn refuse_busy(job: Handoff, app: &App) {
    let (mut conn, minor_version) = match job {
        Handoff::Viewer(v) => (v.conn, v.minor_version),
        Handoff::Snapshot { conn, to, .. } => (conn, to.minor_version),
        Handoff::Reply { conn, .. } => (conn, 1),
    };
    app.metrics.connections_rejected.inc();
    let to = ReplyTo {
        minor_version,
        head_only: false,
        allow_origin: None,
    };
    let out = Outgoing::new(
        http::text(503, "server busy").with_unique_header("Retry-After", "1"),
        &to,
    );
    let _ = stream::write_from(&mut conn, &out.bufs(), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_bound_does_not_grow_with_viewers() {
        let mut s = ServeSettings::for_tests();
        let small = thread_bound(&s);
        s.max_clients = 1000;
        assert_eq!(thread_bound(&s), small);
        assert_eq!(small, s.workers + stream::sender_count() + 4);
    }
}
