//! Routing: plain functions from a rouille `Request` to what to send. Everything but the stream
//! is a finished `Response`; the stream is handed back as [`Reply::Stream`] because it outlives
//! the request and is served by the stream senders.

use std::sync::Arc;
use std::time::Duration;

use rouille::Response;
use serde_json::json;

use crate::server::http::text;
use crate::server::{auth, App};
use crate::slot::Wait;

/// Longest a `/snapshot` request waits for a fresh frame before it takes the newest it has.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

const INDEX_HTML: &str = include_str!("index.html");

/// What a request asks for.
#[derive(Debug)]
pub enum Reply {
    Response(Response),
    /// An MJPEG stream, capped at `max_fps` frames per second if set.
    Stream {
        max_fps: Option<u32>,
    },
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Response(r)
    }
}

pub const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// Decides what `req` gets, checking its credentials on this thread, argon2 included: for
/// tests and the fuzz target. The server checks them first, without keeping a worker waiting
/// for argon2 ([`auth::Gate`]), then calls [`route_authorized`].
pub fn route(req: &rouille::Request, app: &App) -> Reply {
    if needs_auth(req, app) {
        let access = app
            .auth
            .check(req.header("Authorization"), req.remote_addr().ip());
        if let Some(r) = auth::refusal(access) {
            return r.into();
        }
    }
    route_authorized(req, app)
}

/// Whether `req` must carry credentials: authentication is on and it asks for an endpoint that
/// `--auth-exempt` does not name (a method other than GET or HEAD, or an unknown path, is
/// answered without them).
pub fn needs_auth(req: &rouille::Request, app: &App) -> bool {
    app.auth.enabled()
        && matches!(req.method(), "GET" | "HEAD")
        && endpoint(req).is_some_and(|e| !app.settings.auth_exempt.contains(e))
}

/// Decides what `req` gets once its credentials, if it needs any, have been accepted.
pub fn route_authorized(req: &rouille::Request, app: &App) -> Reply {
    match req.method() {
        "GET" | "HEAD" => {}
        "OPTIONS" => return options(app).into(),
        _ => {
            return text(405, "method not allowed (use GET or HEAD)")
                .with_unique_header("Allow", ALLOWED_METHODS)
                .into()
        }
    }
    let Some(endpoint) = endpoint(req) else {
        return text(
            404,
            "not found (try /stream, /snapshot, /metrics, /healthz, /state)",
        )
        .into();
    };
    match endpoint {
        "stream" => stream(req),
        "snapshot" => snapshot(app).into(),
        "metrics" => Response::from_data(
            "text/plain; version=0.0.4; charset=utf-8",
            app.metrics.render(),
        )
        .into(),
        "healthz" => healthz(app).into(),
        "state" => state(app).into(),
        _ => Response::html(INDEX_HTML).into(),
    }
}

/// Which endpoint a path names (one of [`crate::settings::ENDPOINTS`]), if any.
fn endpoint(req: &rouille::Request) -> Option<&'static str> {
    // mjpg-streamer's URLs (OctoPrint, Mainsail and friends use them): /?action=stream|snapshot.
    let action = req.get_param("action");
    Some(match (req.url().as_str(), action.as_deref()) {
        ("/" | "/stream", Some("stream")) | ("/stream", _) => "stream",
        ("/" | "/snapshot", Some("snapshot")) | ("/snapshot", _) => "snapshot",
        ("/metrics", _) => "metrics",
        ("/healthz", _) => "healthz",
        ("/state", _) => "state",
        ("/", _) => "index",
        _ => return None,
    })
}

fn stream(req: &rouille::Request) -> Reply {
    match req.get_param("fps") {
        None => Reply::Stream { max_fps: None },
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=120).contains(&n) => Reply::Stream { max_fps: Some(n) },
            _ => text(400, &format!("fps={v} is not a number from 1 to 120")).into(),
        },
    }
}

fn options(app: &App) -> Response {
    let mut r = Response::empty_204().with_unique_header("Allow", ALLOWED_METHODS);
    if app.settings.allow_origin.is_some() {
        r = r
            .with_unique_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
            .with_unique_header("Access-Control-Allow-Headers", "*")
            .with_unique_header("Access-Control-Max-Age", "86400");
    }
    r
}

/// Headers that stop browsers and proxies from caching live pictures.
pub const NO_CACHE: [(&str, &str); 3] = [
    (
        "Cache-Control",
        "no-store, no-cache, must-revalidate, max-age=0",
    ),
    ("Pragma", "no-cache"),
    ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
];

fn snapshot(app: &App) -> Response {
    // Watching makes the capture loop encode; waiting for a newer frame makes it fresh.
    let _watch = app.slot.watch();
    let newest = app.slot.latest();
    // A frame younger than one frame interval is as fresh as waiting would make it. Either way
    // snapshots cannot drive the encoder beyond --fps: it encodes at most every captured frame.
    let fresh = newest
        .as_ref()
        .filter(|f| !f.placeholder && f.age() < app.settings.source.frame_interval());
    let frame = if let Some(f) = fresh {
        Some(Arc::clone(f))
    } else {
        match app
            .slot
            .wait_newer(newest.as_ref().map(|f| f.seq), SNAPSHOT_WAIT)
        {
            Wait::Frame(f) => Some(f),
            Wait::Timeout => newest,
            Wait::Closed => None,
        }
    };
    let Some(f) = frame else {
        return text(503, "no frame available yet").with_unique_header("Retry-After", "1");
    };
    let mut r = Response::from_data("image/jpeg", f.jpeg.to_vec())
        .with_unique_header("X-Timestamp", f.timestamp());
    for (k, v) in NO_CACHE {
        r = r.with_unique_header(k, v);
    }
    r
}

fn healthz(app: &App) -> Response {
    let st = app.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if st.up {
        text(200, &format!("ok: {}", st.active))
    } else {
        text(
            503,
            &format!(
                "source down: {}",
                st.error.unwrap_or_else(|| "starting".into())
            ),
        )
    }
}

fn state(app: &App) -> Response {
    let st = app.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let m = &app.metrics;
    let frame = app.slot.latest().map(|f: Arc<crate::frame::Frame>| {
        let age = f.age();
        json!({
            "seq": f.seq,
            "width": f.width,
            "height": f.height,
            "bytes": f.jpeg.len(),
            "placeholder": f.placeholder,
            "age_ms": age.as_millis() as u64,
        })
    });
    let s = &app.settings;
    Response::json(&json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "source": st,
        "frame": frame,
        "viewers": { "active": m.viewers.get(), "max": s.max_clients },
        "connections": { "open": m.connections.get(), "max": s.max_connections },
        "settings": {
            "size": s.source.size.to_string(),
            "fps": s.source.fps,
            "quality": s.source.quality,
            "send_timeout_seconds": s.send_timeout.as_secs_f64(),
        },
        "totals": {
            "frames_captured": m.frames_captured.get(),
            "frames_encoded": m.frames_encoded.get(),
            "frames_sent": m.frames_sent.get(),
            "frames_skipped": m.frames_skipped.get(),
            "bytes_sent": m.bytes_sent.get(),
            "viewers_rejected": m.viewers_rejected.get(),
            "viewers_evicted": m.viewers_evicted.get(),
            "source_errors": m.source_errors.get(),
        },
    }))
}
