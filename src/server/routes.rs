//! Routing: plain functions from a rouille `Request` to what to send. Most answers are a
//! finished `Response`; the stream ([`Reply::Stream`]) outlives the request and a snapshot
//! ([`Reply::Snapshot`]) may have to wait for a frame, so both are served by the stream senders
//! and never hold a worker.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rouille::Response;
use serde_json::json;

use crate::frame::Frame;
use crate::server::app::App;
use crate::server::auth;
use crate::server::http::{text, Outgoing, ReplyTo, NO_CACHE};

/// Longest a `/snapshot` request waits for a fresh frame before it takes the newest it has.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

const INDEX_HTML: &str = include_str!("index.html");

/// What a request asks for.
#[derive(Debug)]
pub enum Reply {
    Response(Response),
    /// An MJPEG stream, capped at `max_fps` frames per second if set.
    Stream {
        max_fps: Option<u32>,
    },
    /// A fresh JPEG: see [`snapshot_now`] and [`snapshot`].
    Snapshot,
}

impl From<Response> for Reply {
    fn from(r: Response) -> Reply {
        Reply::Response(r)
    }
}

/// Methods every endpoint takes (the stream also takes POST, see [`route`]).
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
/// `--auth-exempt` does not name with a method it takes (anything else is answered without
/// them: 404, 405, the CORS preflight).
pub fn needs_auth(req: &rouille::Request, app: &App) -> bool {
    let Ok(endpoint) = endpoint(req) else {
        return false;
    };
    let served = match req.method() {
        "GET" | "HEAD" => true,
        "POST" => endpoint == "stream",
        _ => false,
    };
    app.auth.enabled() && served && !app.settings.auth_exempt.contains(endpoint)
}

/// Decides what `req` gets once its credentials, if it needs any, have been accepted.
pub fn route_authorized(req: &rouille::Request, app: &App) -> Reply {
    let post = match req.method() {
        "GET" | "HEAD" => false,
        "POST" => true,
        "OPTIONS" => return options(app).into(),
        _ => return method_not_allowed(),
    };
    let endpoint = match endpoint(req) {
        Ok(e) => e,
        Err(why) => return text(404, &why).into(),
    };
    // mjpg-streamer streams to any method, and some players (Apple's NSURLSession-based ones)
    // POST for the stream; nothing else takes a POST.
    if post && endpoint != "stream" {
        return method_not_allowed();
    }
    match endpoint {
        "stream" => stream(req),
        "snapshot" => Reply::Snapshot,
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

fn method_not_allowed() -> Reply {
    text(405, "method not allowed (use GET or HEAD)")
        .with_unique_header("Allow", ALLOWED_METHODS)
        .into()
}

/// Which endpoint a path names (one of [`crate::settings::ENDPOINTS`]), or why none.
fn endpoint(req: &rouille::Request) -> Result<&'static str, String> {
    Ok(match req.url().as_str() {
        // mjpg-streamer's URLs (OctoPrint, Mainsail and friends use them).
        "/" => match req.get_param("action") {
            Some(action) => mjpg_action(&action)?,
            None => "index",
        },
        "/stream" => "stream",
        "/snapshot" => "snapshot",
        "/metrics" => "metrics",
        "/healthz" => "healthz",
        "/state" => "state",
        _ => return Err("not found (try /stream, /snapshot, /metrics, /healthz, /state)".into()),
    })
}

/// mjpg-streamer's `?action=`: `stream` and `snapshot`, or with its input number, `stream_0`
/// (its multi-input form). camstream has one input, so any other number is not found, and so is
/// anything else: a player set up with a wrong URL must see an error, not the HTML page.
fn mjpg_action(action: &str) -> Result<&'static str, String> {
    let (name, input) = match action.split_once('_') {
        Some((name, n)) => (name, Some(n)),
        None => (action, None),
    };
    let endpoint = match name {
        "stream" => "stream",
        "snapshot" => "snapshot",
        _ => {
            let shown: String = action.chars().take(40).collect();
            return Err(format!(
                "unknown action '{shown}' (use action=stream or action=snapshot)"
            ));
        }
    };
    match input {
        None | Some("0") => Ok(endpoint),
        Some(n) => {
            let shown: String = n.chars().take(20).collect();
            Err(format!(
                "no input '{shown}': camstream serves one source (use action={name} or action={name}_0)"
            ))
        }
    }
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

/// The frame a snapshot request gets at once, or, when waiting would give a fresher one, the
/// sequence number that a frame must be newer than (`None`: any frame).
pub fn snapshot_now(app: &App) -> Result<Arc<Frame>, Option<u64>> {
    app.slot.want_frames_for_a_while();
    let newest = app.slot.latest();
    // A frame younger than one frame interval is as fresh as waiting would make it. Either way
    // snapshots cannot drive the encoder beyond --fps: it encodes at most every captured frame.
    match newest {
        Some(f) if !f.placeholder && f.age() < app.settings.source.frame_interval() => Ok(f),
        _ if app.slot.is_closed() => Err(None),
        other => Err(other.map(|f| f.seq)),
    }
}

/// The answer to a snapshot request: `frame`, or 503 when there is none (shutdown, say).
/// The body is the frame's own JPEG, shared, not copied.
pub fn snapshot(frame: Option<&Frame>, to: &ReplyTo) -> Outgoing {
    let Some(f) = frame else {
        let r = text(503, "no frame available yet").with_unique_header("Retry-After", "1");
        return Outgoing::new(r, to);
    };
    let mut headers = vec![
        (Cow::from("Content-Type"), Cow::from("image/jpeg")),
        ("X-Timestamp".into(), f.timestamp().into()),
    ];
    headers.extend(NO_CACHE.map(|(k, v)| (Cow::from(k), Cow::from(v))));
    Outgoing::with_body(200, &headers, Arc::clone(&f.jpeg), to)
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
    let newest = app.slot.latest();
    let frame = newest.as_ref().map(|f| {
        json!({
            "seq": f.seq,
            "width": f.width,
            "height": f.height,
            "bytes": f.jpeg.len(),
            "placeholder": f.placeholder,
            "age_ms": f.age().as_millis() as u64,
        })
    });
    let s = &app.settings;
    // Tools written for µStreamer (PiKVM's kvmd, jumpstarter's driver) read `ok` and `result`
    // with µStreamer's field names and types; see the README for what is and is not there.
    let (width, height) = newest
        .as_ref()
        .map_or((s.source.size.width, s.source.size.height), |f| {
            (f.width, f.height)
        });
    let viewers = m.viewers.get();
    let ustreamer = json!({
        "encoder": {
            // µStreamer says HW when it passes a camera's MJPEG through.
            "type": if st.passthrough == Some(true) { "HW" } else { "CPU" },
            "quality": s.source.quality,
        },
        "source": {
            "resolution": { "width": width, "height": height },
            "online": st.up,
            "desired_fps": s.source.fps,
            "captured_fps": st.fps.round() as u64,
        },
        "stream": {
            // Frames go to every viewer as they are captured (slow ones skip).
            "queued_fps": if viewers > 0 { st.fps.round() as u64 } else { 0 },
            "clients": viewers,
            "clients_stat": {},
        },
    });
    Response::json(&json!({
        "ok": true,
        "result": ustreamer,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "source": st,
        "frame": frame,
        "viewers": { "active": viewers, "max": s.max_clients },
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
