//! Routing: plain functions from a rouille `Request` to what to send. Most answers are a
//! finished `Response`; the stream ([`Reply::Stream`]) outlives the request and a snapshot
//! ([`Reply::Snapshot`]) may have to wait for a frame, so both are served by the stream senders
//! and never hold a worker.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rouille::Response;
use serde_json::json;

use crate::capture::{ControlError, ControlRequest};
use crate::frame::Frame;
use crate::logging::NOTICE;
use crate::server::app::App;
use crate::server::auth;
use crate::server::http::{text, Outgoing, ReplyTo, NO_CACHE};
use crate::source::controls::{Assignment, SetError};

/// Longest a `/controls` request waits for the capture thread (it answers between frames).
pub const CONTROL_WAIT: Duration = Duration::from_secs(2);

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
        "POST" => endpoint == "stream" || endpoint == "controls",
        _ => false,
    };
    // Controls change the camera: `--auth-exempt` cannot name them (it only knows the
    // read-only endpoints), so they always need credentials when authentication is on.
    app.auth.enabled()
        && served
        && (endpoint == "controls" || !app.settings.auth_exempt.contains(endpoint))
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
    // POST for the stream; otherwise only /controls takes a POST (to set them).
    if post && endpoint != "stream" && endpoint != "controls" {
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
        "controls" => controls(req, app, post).into(),
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
        "/controls" => "controls",
        _ => {
            return Err(
                "not found (try /stream, /snapshot, /metrics, /healthz, /state, /controls)".into(),
            )
        }
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

/// `GET /controls`: the camera's controls as JSON. `POST /controls` with a form
/// (`focus_automatic_continuous=0&focus_absolute=40`) or a JSON object of assignments sets them
/// in order and answers with the controls afterwards (drivers clamp). The capture thread does
/// the work between two frames ([`ControlRequest`]).
fn controls(req: &rouille::Request, app: &App, post: bool) -> Response {
    if post && !same_origin(req, app.settings.allow_origin.as_deref()) {
        // A form POST is a "simple" request: a browser sends it cross-origin without asking,
        // with the user's saved credentials. Only this server's own page (or an origin the
        // operator allowed) may change the camera.
        return text(
            403,
            "a POST to /controls from another origin is refused (see --allow-origin)",
        );
    }
    let assignments = if post {
        match control_assignments(req) {
            Ok(a) if a.is_empty() => {
                return text(
                    400,
                    "no controls to set (send NAME=VALUE pairs as a form or a JSON object)",
                )
            }
            Ok(a) => a,
            Err(why) => return text(400, &why),
        }
    } else {
        Vec::new()
    };
    // Waiting for the capture thread is for all workers but one (see `App::control_waiter`).
    let Some(_waiting) = app.control_waiter.try_take() else {
        return text(503, "too many control requests at once; try again")
            .with_unique_header("Retry-After", "1");
    };
    let (reply, answer) = crossbeam_channel::bounded(1);
    let request = ControlRequest {
        assignments: assignments.clone(),
        reply,
    };
    if app.controls.try_send(request).is_err() {
        return text(503, "too many control requests at once")
            .with_unique_header("Retry-After", "1");
    }
    let result = match answer.recv_timeout(CONTROL_WAIT) {
        Ok(r) => r,
        Err(_) => {
            return text(503, "the source is not streaming now; try again")
                .with_unique_header("Retry-After", "1")
        }
    };
    match result {
        Ok(list) => {
            if post {
                app.metrics.control_changes.inc_by(assignments.len() as u64);
                let set: Vec<String> = assignments.iter().map(|a| a.to_string()).collect();
                log::info!(
                    target: NOTICE,
                    "{} set controls {}",
                    req.remote_addr(),
                    set.join(" ")
                );
            }
            Response::json(&list)
        }
        Err(ControlError::Unsupported(why)) => text(404, &why),
        Err(ControlError::Set(e)) => {
            // The camera is busy or the control is locked by another: the client can act on
            // that (409); anything else from the driver is the device failing (502).
            let code = match &e {
                SetError::Invalid(_) => 400,
                SetError::Driver { error, .. } => match error.raw_os_error() {
                    Some(libc::EBUSY | libc::EACCES | libc::EPERM) => 409,
                    _ => 502,
                },
            };
            if code != 400 {
                log::warn!("{}: {e}", req.remote_addr());
            }
            text(code, &e.to_string())
        }
    }
}

/// Whether a request comes from this server's own page: no `Origin` (not a browser, or a
/// same-origin GET), an `Origin` naming the `Host` it was sent to, or the `--allow-origin`.
fn same_origin(req: &rouille::Request, allowed: Option<&str>) -> bool {
    let Some(origin) = req.header("Origin") else {
        return true;
    };
    if allowed.is_some_and(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = origin.split_once("://").map_or("", |(_, h)| h);
    req.header("Host")
        .is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host))
}

/// The assignments in a `POST /controls` body, in order: a JSON object
/// (`{"focus_absolute": 40}`; values numbers, booleans or strings) or a urlencoded form.
fn control_assignments(req: &rouille::Request) -> Result<Vec<Assignment>, String> {
    let json = req
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("application/json"));
    let pairs: Vec<(String, String)> = if json {
        let mut body = Vec::new();
        if let Some(mut d) = req.data() {
            std::io::Read::read_to_end(&mut d, &mut body).map_err(|e| e.to_string())?;
        }
        let Ordered(pairs) = serde_json::from_slice(&body)
            .map_err(|e| format!("the body is not a JSON object of controls: {e}"))?;
        pairs
    } else {
        rouille::input::post::raw_urlencoded_post_input(req)
            .map_err(|e| format!("the body is not a form of NAME=VALUE pairs: {e}"))?
    };
    pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}").parse())
        .collect()
}

/// A JSON object's members in the order they were sent (serde_json's map sorts them, and the
/// order matters: autofocus off before the focus).
struct Ordered(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of control names and values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, serde_json::Value>()? {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Bool(b) => u8::from(b).to_string(),
                        serde_json::Value::Number(n) => n.to_string(),
                        _ => {
                            return Err(serde::de::Error::custom(format!(
                                "the value of {k} is not a number, boolean or string"
                            )))
                        }
                    };
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
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
