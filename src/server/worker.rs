//! The request workers: a fixed pool that takes complete requests from the bounded queue and
//! answers them. A worker never waits for a client or a frame: it writes what the socket takes
//! at once, and hands the rest, stream viewers and snapshot requests that wait for a frame to
//! the stream senders ([`crate::server::stream`]).

use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::server::app::App;
use crate::server::auth;
use crate::server::conn::{write_available, write_from, Conn};
use crate::server::http::{self, Outgoing, ReplyTo};
use crate::server::listener::Job;
use crate::server::routes::{self, Reply};
use crate::server::stream::{self, Handoff, Senders};
use crate::server::viewers::{Full, ViewerJob};

/// Send buffer of a viewer's socket (the kernel doubles it for bookkeeping).
const VIEWER_SNDBUF: usize = 256 << 10;

/// One worker thread: until the queue closes (shutdown).
pub fn run(jobs: Receiver<Job>, mut gate: auth::Gate, app: &Arc<App>, senders: &Senders) {
    // The gate answers or hands on what needs credentials (argon2 never runs here).
    while let Some(job) = gate.next(&jobs, app) {
        dispatch(job, app, senders);
    }
}

/// Answers one request according to what [`routes`] says it is.
fn dispatch(job: Job, app: &Arc<App>, senders: &Senders) {
    let Job { conn, request } = job;
    let to = ReplyTo {
        minor_version: conn.minor_version,
        head_only: request.method() == "HEAD",
        allow_origin: app.settings.allow_origin.as_deref().map(Arc::from),
    };
    match routes::route_authorized(&request, app) {
        Reply::Response(r) => send(conn, Outgoing::new(r, &to), senders),
        Reply::Snapshot => snapshot(conn, to, app, senders),
        // HEAD gets exactly the status and headers a GET would get now, without taking a slot.
        Reply::Stream { .. } if to.head_only => {
            let out = match app.admission.check(conn.peer.ip()) {
                Ok(()) => Outgoing::stream(&to, stream::BOUNDARY),
                Err(why) => refusal(&why, &to),
            };
            send(conn, out, senders);
        }
        Reply::Stream { max_fps } => admit_viewer(conn, max_fps, &to, app, senders),
    }
}

/// A snapshot: the newest frame at once if it is fresh, otherwise a sender holds the request
/// until the next one.
fn snapshot(conn: Conn, to: ReplyTo, app: &App, senders: &Senders) {
    match routes::snapshot_now(app) {
        Ok(frame) => send(conn, routes::snapshot(Some(&frame), &to), senders),
        Err(after) => {
            if let Err(wait) = senders.dispatch(Handoff::Snapshot { conn, after, to }) {
                refuse_busy(wait, app);
            }
        }
    }
}

/// A viewer gets a slot and goes to a sender, or the 503 that says which limit it hit.
fn admit_viewer(conn: Conn, max_fps: Option<u32>, to: &ReplyTo, app: &App, senders: &Senders) {
    match app.admission.try_admit(conn.peer.ip()) {
        Ok(ticket) => {
            log::debug!("viewer {} admitted", conn.peer);
            // A fixed send buffer (instead of autotuning up to megabytes) bounds kernel memory
            // per viewer and how stale a slow viewer's frames can get.
            let _ = socket2::SockRef::from(&conn.stream).set_send_buffer_size(VIEWER_SNDBUF);
            let viewer = Handoff::Viewer(ViewerJob {
                conn,
                ticket,
                max_fps,
            });
            if let Err(viewer) = senders.dispatch(viewer) {
                refuse_busy(viewer, app);
            }
        }
        Err(why) => {
            app.metrics.viewers_rejected.inc();
            log::info!("viewer {} refused with 503: {why}", conn.peer);
            send(conn, refusal(&why, to), senders);
        }
    }
}

/// The 503 for a viewer past a limit, saying which.
fn refusal(why: &Full, to: &ReplyTo) -> Outgoing {
    let r = http::text(503, &why.to_string()).with_unique_header("Retry-After", "1");
    Outgoing::new(r, to)
}

/// Writes `out` without blocking; what the socket does not take at once is finished by a
/// sender, so a client that does not read never holds a worker.
fn send(mut conn: Conn, out: Outgoing, senders: &Senders) {
    let written = match write_available(|| write_from(&mut conn.stream, &out.bufs(), 0)) {
        Ok(n) => n.unwrap_or(0),
        Err(_) => return,
    };
    if written == out.len() {
        // A FIN before anything else: the client reads the whole response, then the end.
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        return;
    }
    // If every sender's queue is full the client loses the rest of its answer; that takes
    // more unfinished answers than there are connections (the queues hold max-clients + 1024).
    let _ = senders.dispatch(Handoff::Reply {
        conn,
        out,
        off: written,
    });
}

/// Answers 503 to a client that could not be handed to a sender (their queues are full).
fn refuse_busy(job: Handoff, app: &App) {
    let mut conn = match job {
        Handoff::Viewer(v) => v.conn,
        Handoff::Snapshot { conn, .. } | Handoff::Reply { conn, .. } => conn,
    };
    app.metrics.connections_rejected.inc();
    let out = http::error(503, "server busy", Some(1), conn.minor_version);
    let _ = write_from(&mut conn.stream, &out.bufs(), 0);
}
