//! Tests of `camstream serve`: real clients (ffmpeg, curl, promtool) and raw sockets against the
//! real binary with the `pattern` or `file` source. They assert on bytes on the wire, status
//! codes, headers, metric values, thread and fd counts and exit codes; they synchronise on what
//! the server says (a part arrived, a gauge changed), never on sleeps.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::{
    self, connect, jpeg_dims, jpeg_not_uniform, metric, MjpegClient, Part, Response, Server,
    IO_TIMEOUT,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `serve --source pattern --size 320x240 EXTRA...`
fn pattern_server(extra: &[&str]) -> Server {
    let mut args = vec!["--source", "pattern", "--size", "320x240"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The `threads <= N` bound printed in the ready line.
fn banner_thread_bound(banner: &str) -> usize {
    let rest = banner
        .split("threads <= ")
        .nth(1)
        .unwrap_or_else(|| panic!("no thread bound in {banner:?}"));
    rest.trim_end()
        .trim_end_matches(')')
        .parse()
        .unwrap_or_else(|_| panic!("bad bound in {banner:?}"))
}

/// Opens a stream that must be admitted.
fn watch(addr: SocketAddr, path: &str) -> MjpegClient {
    match MjpegClient::open(addr, path, 1) {
        Ok(c) => c,
        Err(r) => panic!(
            "GET {path}: expected a stream, got {} {:?}",
            r.status,
            r.text()
        ),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Parses an `X-Timestamp` value, which must be `<secs>.<6 digits>`.
fn parse_timestamp(v: &str) -> f64 {
    let (secs, micros) = v
        .split_once('.')
        .unwrap_or_else(|| panic!("X-Timestamp {v:?} has no '.'"));
    assert!(
        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()),
        "X-Timestamp {v:?}"
    );
    assert!(
        micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
        "X-Timestamp {v:?}: want 6 digits"
    );
    v.parse().unwrap()
}

/// Checks one stream part: a JPEG of `w`x`h` with a sane, current X-Timestamp. Returns the
/// timestamp.
fn check_part(p: &Part, w: usize, h: usize) -> f64 {
    assert_eq!(
        p.headers.get("content-type").map(String::as_str),
        Some("image/jpeg"),
        "{:?}",
        p.headers
    );
    let len: usize = p.headers["content-length"].parse().unwrap();
    assert_eq!(len, p.body.len());
    assert_eq!(jpeg_dims(&p.body), (w, h));
    let ts = parse_timestamp(p.headers.get("x-timestamp").expect("part X-Timestamp"));
    // A sanity check of the clock it comes from (wall clock, Unix seconds), not a latency bound.
    assert!(
        (ts - now_secs()).abs() < 60.0,
        "X-Timestamp {ts} is not about now ({})",
        now_secs()
    );
    ts
}

fn next(c: &mut MjpegClient) -> Part {
    c.next_part().expect("a stream part")
}

/// Runs `cmd` with null stdin, collecting stdout and stderr; kills it after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// `curl -sS -i ARGS`: the parsed response (curl must exit 0).
fn curl(args: &[&str]) -> Response {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "20"]).args(args);
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    util::parse_response(&out.stdout)
}

/// A client socket with a tiny receive buffer that asks for `path` and then never reads.
fn stalled_viewer(addr: SocketAddr, path: &str) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect_timeout(&addr.into(), IO_TIMEOUT)
        .expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    s
}

/// A viewer reading parts on its own thread, counting them, until told to stop.
struct BackgroundViewer {
    parts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Result<(), String>>>,
}

impl BackgroundViewer {
    /// Opens the stream (admitted, checked here) and starts reading it.
    fn start(addr: SocketAddr, path: &str) -> BackgroundViewer {
        let mut c = watch(addr, path);
        let parts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&parts), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            for _ in 0..100_000 {
                if s.load(Ordering::Acquire) {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err("background viewer ran past its deadline".into());
                }
                match c.next_part() {
                    Some(part) if part.body.starts_with(&[0xFF, 0xD8]) => {
                        p.fetch_add(1, Ordering::AcqRel);
                    }
                    Some(_) => return Err("a part that is not a JPEG".into()),
                    None => {
                        return Err(format!(
                            "stream ended after {} parts",
                            p.load(Ordering::Acquire)
                        ))
                    }
                }
            }
            Err("background viewer read too many parts".into())
        });
        BackgroundViewer {
            parts,
            stop,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.parts.load(Ordering::Acquire)
    }

    /// Stops reading; returns whether the stream stayed healthy the whole time.
    fn finish(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Release);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for BackgroundViewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Reads everything left on a stream socket; the server must have closed it (EOF, or a reset
/// for a socket it closed with data unread), not merely gone quiet.
fn assert_closed_by_server(mut r: impl Read, who: &str) {
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{who}: the server did not close the stream: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Real players: ffmpeg
// ---------------------------------------------------------------------------------------------

#[test]
fn ffmpeg_decodes_frames_from_stream_and_the_mjpg_streamer_url() {
    let s = pattern_server(&[]);
    let url_stream = format!("http://{}/stream", s.addr);
    let url_action = format!("http://{}/?action=stream", s.addr);
    // Both players at once: /stream decoded to nothing (the documented command) and the
    // mjpg-streamer URL decoded with one checksum line per frame, to count them.
    let a = thread::spawn(move || {
        let mut c = Command::new("ffmpeg");
        c.args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "mpjpeg",
            "-i",
            &url_stream,
            "-frames:v",
            "20",
            "-f",
            "null",
            "-",
        ]);
        run_bounded(c, Duration::from_secs(60))
    });
    let b = thread::spawn(move || {
        let mut c = Command::new("ffmpeg");
        c.args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "mpjpeg",
            "-i",
            &url_action,
            "-frames:v",
            "20",
            "-f",
            "framecrc",
            "-",
        ]);
        run_bounded(c, Duration::from_secs(60))
    });
    for (name, out) in [
        ("/stream", a.join().unwrap()),
        ("/?action=stream", b.join().unwrap()),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ffmpeg on {name} failed: {err}");
        assert!(
            err.trim().is_empty(),
            "ffmpeg on {name} reported errors: {err}"
        );
        if name == "/?action=stream" {
            let text = String::from_utf8_lossy(&out.stdout);
            let frames: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(frames.len(), 20, "decoded frames: {text}");
        }
    }
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 2.0);
    util::wait_until("both ffmpeg viewers to be gone", || {
        s.metric("camstream_viewers") == 0.0
    });
}

// ---------------------------------------------------------------------------------------------
// 2. The stream on the wire
// ---------------------------------------------------------------------------------------------

#[test]
fn stream_wire_format_over_http_1_1() {
    let s = pattern_server(&[]);
    let mut c = MjpegClient::open(s.addr, "/stream", 1).unwrap();
    let raw = c.raw_head.clone();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let h = &c.head;
    let ct = h.header("content-type").unwrap();
    assert!(
        ct.starts_with("multipart/x-mixed-replace;boundary="),
        "{ct}"
    );
    assert!(
        !c.boundary.is_empty() && !c.boundary.starts_with("--"),
        "boundary declared without '--': {ct}"
    );
    assert!(
        !c.boundary.contains([' ', '"', ';']),
        "plain boundary token: {ct}"
    );
    let cc = h.header("cache-control").expect("Cache-Control");
    for d in ["no-store", "no-cache", "must-revalidate"] {
        assert!(cc.contains(d), "Cache-Control {cc:?} lacks {d}");
    }
    assert_eq!(h.header("pragma"), Some("no-cache"));
    let expires = h.header("expires").expect("Expires");
    let year: u32 = expires
        .split_whitespace()
        .find_map(|w| (w.len() == 4).then(|| w.parse().ok()).flatten())
        .unwrap_or_else(|| panic!("Expires {expires:?} has no year"));
    assert!(year < 2000, "Expires must be in the past: {expires:?}");
    assert!(
        h.header("transfer-encoding").is_none(),
        "no chunked encoding: {raw}"
    );
    assert!(
        h.header("content-length").is_none(),
        "an endless body has no length: {raw}"
    );
    assert!(
        h.header("access-control-allow-origin").is_none(),
        "no CORS unless asked: {raw}"
    );

    let mut last = 0.0;
    for i in 0..8 {
        let p = next(&mut c);
        let ts = check_part(&p, 320, 240);
        assert!(jpeg_not_uniform(&p.body));
        assert!(ts > last, "part {i}: X-Timestamp {ts} not after {last}");
        last = ts;
    }
    assert!(s.metric("camstream_frames_sent_total") >= 1.0);
}

#[test]
fn stream_works_for_http_1_0_clients() {
    let s = pattern_server(&[]);
    // HTTP/1.0 needs no Host header.
    let mut st = connect(s.addr);
    st.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
    let mut r = BufReader::new(st);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK\r\n");
    drop(r);

    let mut c = MjpegClient::open(s.addr, "/stream", 0).unwrap();
    let raw = c.raw_head.clone();
    assert!(raw.starts_with("HTTP/1.0 200 OK\r\n"), "{raw}");
    assert!(c.head.header("transfer-encoding").is_none(), "{raw}");
    let mut last = 0.0;
    for _ in 0..4 {
        let ts = check_part(&next(&mut c), 320, 240);
        assert!(ts > last);
        last = ts;
    }
}

#[test]
fn head_stream_sends_the_stream_head_and_no_parts() {
    let s = pattern_server(&[]);
    let r = util::request(s.addr, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("multipart/x-mixed-replace;boundary="));
    assert!(r.body.is_empty(), "HEAD got a body: {:?}", r.text());
    // A HEAD is no viewer.
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 0.0);
}

#[test]
fn stream_first_part_is_fresh_after_nobody_watched() {
    let s = pattern_server(&[]);
    let mut c = watch(s.addr, "/stream");
    next(&mut c);
    drop(c);
    util::wait_until("the viewer to be gone", || {
        s.metric("camstream_viewers") == 0.0
    });
    // Nobody watches for >= 2 s of capture (60 frames at 30 fps): nothing is encoded meanwhile.
    let captured = s.metric("camstream_frames_captured_total");
    util::wait_until("2 s of unwatched capture", || {
        s.metric("camstream_frames_captured_total") >= captured + 60.0
    });
    let asked = now_secs();
    let mut c = watch(s.addr, "/stream");
    let ts = check_part(&next(&mut c), 320, 240);
    assert!(
        ts > asked - 1.0,
        "first part was captured {:.1} s before it was asked for",
        asked - ts
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Query parameters and the per-viewer fps cap
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_query_params_are_ignored_and_fps_caps_the_rate() {
    let s = pattern_server(&[]);
    let mut c = watch(s.addr, "/stream?timestamp=123");
    check_part(&next(&mut c), 320, 240);
    drop(c);
    let r = s.get("/snapshot?foo=bar");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(jpeg_dims(&r.body), (320, 240));
    let mut c = watch(s.addr, "/?action=stream&timestamp=1");
    check_part(&next(&mut c), 320, 240);
    drop(c);

    for bad in ["fps=0", "fps=abc", "fps=", "fps=-1", "fps=2.5", "fps=121"] {
        let r = s.get(&format!("/stream?{bad}"));
        assert_eq!(r.status, 400, "/stream?{bad}: {}", r.text());
        assert_eq!(r.text().lines().count(), 1, "{:?}", r.text());
    }

    // ?fps=2: at most one part per 0.5 s. Part k cannot leave before k * 0.5 s after the request
    // (the server paces from when it starts serving), so this bound on arrival holds strictly.
    let asked = Instant::now();
    let mut c = watch(s.addr, "/stream?fps=2");
    let mut stamps = Vec::new();
    for k in 0..4u32 {
        let ts = check_part(&next(&mut c), 320, 240);
        let arrived = asked.elapsed();
        let earliest = Duration::from_millis(500) * k;
        assert!(
            arrived + Duration::from_millis(2) >= earliest,
            "part {k} arrived after {arrived:?}, before {earliest:?}"
        );
        stamps.push(ts);
    }
    for w in stamps.windows(2) {
        assert!(
            w[1] - w[0] >= 0.4,
            "capped parts are {:.3} s apart: {stamps:?}",
            w[1] - w[0]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Plain requests with curl, routing, methods, CORS
// ---------------------------------------------------------------------------------------------

#[test]
fn curl_gets_snapshot_metrics_state_and_health() {
    let s = pattern_server(&["--max-clients", "5"]);
    let base = format!("http://{}", s.addr);

    // The snapshot first: it waits for a frame, so the source is up afterwards.
    for path in ["/snapshot", "/?action=snapshot"] {
        let r = curl(&[&format!("{base}{path}")]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("image/jpeg"), "{path}");
        assert_eq!(
            r.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            r.body.len(),
            "{path}"
        );
        assert_eq!(jpeg_dims(&r.body), (320, 240), "{path}");
        assert!(jpeg_not_uniform(&r.body));
        parse_timestamp(r.header("x-timestamp").expect("snapshot X-Timestamp"));
        assert!(r.header("cache-control").unwrap().contains("no-store"));
        assert!(r.header("access-control-allow-origin").is_none());
    }

    // HEAD: the headers with the length, and not one byte of body on the wire.
    let r = curl(&["-I", &format!("{base}/snapshot")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    let r = util::request(s.addr, "HEAD /snapshot HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert!(
        r.body.is_empty(),
        "HEAD /snapshot sent {} body bytes",
        r.body.len()
    );

    let r = curl(&[&format!("{base}/metrics")]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    assert_eq!(metric(&r.text(), "camstream_viewers_max"), 5.0);
    assert_eq!(metric(&r.text(), "camstream_source_up"), 1.0);

    let r = curl(&[&format!("{base}/state")]);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("/state is JSON");
    assert_eq!(v["viewers"]["max"], 5, "{v}");
    assert_eq!(v["viewers"]["active"], 0, "{v}");
    assert_eq!(v["settings"]["size"], "320x240", "{v}");
    assert_eq!(v["source"]["up"], true, "{v}");
    assert_eq!(v["frame"]["width"], 320, "{v}");
    assert_eq!(v["frame"]["height"], 240, "{v}");

    let r = curl(&[&format!("{base}/healthz")]);
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("ok"), "{:?}", r.text());

    let r = curl(&[&format!("{base}/")]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("stream"));

    for path in [
        "/nope",
        "/stream/extra",
        "/snapshot.jpg",
        "/?action=nothing&x",
    ] {
        let r = curl(&[&format!("{base}{path}")]);
        // An unknown `?action=` is not the index page: a player with a wrong URL sees an error.
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }

    for args in [
        vec!["-X", "POST", "-d", "x=1"],
        vec!["-X", "PUT", "--data-binary", "frame"],
        vec!["-X", "DELETE"],
        vec!["-X", "PATCH", "-d", "{}"],
    ] {
        let mut all = args.clone();
        let url = format!("{base}/snapshot");
        all.push(&url);
        let r = curl(&all);
        assert_eq!(r.status, 405, "{args:?}");
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("405 without Allow: {:?}", r.headers));
        for m in ["GET", "HEAD"] {
            assert!(allow.contains(m), "Allow: {allow}");
        }
    }
    // Only the stream takes POST (as mjpg-streamer's does; see clients.rs).
    let r = curl(&["-X", "POST", &format!("{base}/metrics")]);
    assert_eq!(r.status, 405);

    let r = curl(&["-X", "OPTIONS", &format!("{base}/stream")]);
    assert_eq!(r.status, 204);
    assert!(r.header("allow").unwrap().contains("OPTIONS"));
    assert!(r.body.is_empty());

    // HTTP/1.1 without Host is refused (RFC 9112).
    let r = util::request(s.addr, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400);
    // No viewer was involved in any of this.
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 0.0);
}

#[test]
fn options_answer_is_204_without_content_length() {
    let s = pattern_server(&["--allow-origin", "*"]);
    let r = util::request(
        s.addr,
        "OPTIONS /stream HTTP/1.1\r\nHost: t\r\nOrigin: http://x\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert!(r.header("content-length").is_none(), "{:?}", r.headers);
}

#[test]
fn allow_origin_is_on_every_response_including_the_stream() {
    let s = pattern_server(&["--allow-origin", "*", "--max-clients", "1"]);
    let base = format!("http://{}", s.addr);
    let acao = |r: &Response, what: &str| {
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{what}: {:?}",
            r.headers
        );
    };
    for path in [
        "/snapshot",
        "/metrics",
        "/state",
        "/healthz",
        "/",
        "/nope",
        "/stream?fps=0",
    ] {
        acao(&curl(&[&format!("{base}{path}")]), path);
    }
    acao(
        &curl(&["-I", &format!("{base}/snapshot")]),
        "HEAD /snapshot",
    );
    acao(
        &util::request(s.addr, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n"),
        "HEAD /stream",
    );
    acao(
        &curl(&["-X", "POST", "-d", "x", &format!("{base}/snapshot")]),
        "POST",
    );
    let r = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "Origin: http://example.com",
        "-H",
        "Access-Control-Request-Method: GET",
        &format!("{base}/stream"),
    ]);
    assert_eq!(r.status, 204);
    acao(&r, "OPTIONS");
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));

    let mut c = watch(s.addr, "/stream");
    acao(&c.head, "the stream");
    check_part(&next(&mut c), 320, 240);
    // The one slot is taken: the refusal carries the header too.
    let r = MjpegClient::open(s.addr, "/stream", 1)
        .err()
        .expect("503 for the second viewer");
    assert_eq!(r.status, 503);
    acao(&r, "503");
}

// ---------------------------------------------------------------------------------------------
// 5. Admission control
// ---------------------------------------------------------------------------------------------

#[test]
fn max_clients_admits_exactly_n_and_refuses_the_rest_at_once() {
    let s = pattern_server(&["--max-clients", "3"]);
    let mut viewers: Vec<MjpegClient> = (0..3).map(|_| watch(s.addr, "/stream")).collect();
    for v in &mut viewers {
        check_part(&next(v), 320, 240);
    }
    for i in 4..=20 {
        let path = if i % 2 == 0 {
            "/stream"
        } else {
            "/?action=stream"
        };
        let r = match MjpegClient::open(s.addr, path, 1) {
            Ok(_) => panic!("viewer {i} was admitted past --max-clients 3"),
            Err(r) => r,
        };
        assert_eq!(r.status, 503, "viewer {i}");
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("Retry-After in seconds");
        assert!(retry >= 1);
        let body = r.text();
        assert!(
            body.ends_with('\n') && body.lines().count() == 1 && body.len() > 1,
            "one-line body: {body:?}"
        );
    }
    let m = s.get("/metrics").text();
    assert_eq!(metric(&m, "camstream_viewers_rejected_total"), 17.0);
    assert_eq!(metric(&m, "camstream_viewers"), 3.0);
    assert_eq!(metric(&m, "camstream_viewers_max"), 3.0);

    // Everything else still answers while the slots are full.
    assert_eq!(s.get("/healthz").status, 200);
    let st = s.get("/state");
    assert_eq!(st.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&st.body).unwrap();
    assert_eq!(v["viewers"]["active"], 3, "{v}");
    assert_eq!(v["totals"]["viewers_rejected"], 17, "{v}");
    let snap = s.get("/snapshot");
    assert_eq!(snap.status, 200);
    assert_eq!(jpeg_dims(&snap.body), (320, 240));
    // The admitted viewers kept streaming meanwhile.
    for v in &mut viewers {
        check_part(&next(v), 320, 240);
    }

    // One leaves: its slot frees and the next viewer gets in and gets frames.
    drop(viewers.pop());
    util::wait_until("the viewers gauge to drop to 2", || {
        s.metric("camstream_viewers") == 2.0
    });
    let mut again = watch(s.addr, "/stream");
    for _ in 0..3 {
        check_part(&next(&mut again), 320, 240);
    }
    let m = s.get("/metrics").text();
    assert_eq!(metric(&m, "camstream_viewers"), 3.0);
    assert_eq!(metric(&m, "camstream_viewers_rejected_total"), 17.0);
    assert_eq!(metric(&m, "camstream_viewers_accepted_total"), 4.0);
    // And the limit holds again.
    assert_eq!(
        MjpegClient::open(s.addr, "/stream", 1)
            .err()
            .expect("503")
            .status,
        503
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Floods, the connection cap and the header timeout
// ---------------------------------------------------------------------------------------------

/// Samples the thread count of `pid` until stopped; returns (max seen, samples).
fn thread_sampler(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<(usize, usize)> {
    thread::spawn(move || {
        let (mut max, mut n) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            max = max.max(util::thread_count(pid));
            n += 1;
            thread::sleep(Duration::from_millis(2));
        }
        (max, n)
    })
}

#[test]
fn a_flood_of_idle_connections_and_viewers_stays_within_the_thread_bound() {
    let s = pattern_server(&[
        "--max-clients",
        "10",
        "--max-connections",
        "400",
        "--header-timeout",
        "30s",
    ]);
    let pid = s.pid();
    let bound = banner_thread_bound(&s.banner);
    let senders = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    assert_eq!(
        bound,
        4 + senders + 4,
        "workers + senders + 4: {}",
        s.banner
    );
    // Baseline once the server has answered a request and has a frame.
    assert_eq!(s.get("/snapshot").status, 200);
    let base_fds = util::fd_count(pid);
    let base_threads = util::thread_count(pid);
    assert!(
        base_threads > 0 && base_threads <= bound,
        "{base_threads} threads at rest"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = thread_sampler(pid, Arc::clone(&stop));

    let mut idle = Vec::new();
    for i in 0..300 {
        idle.push(connect(s.addr));
        if i % 50 == 0 {
            assert!(util::thread_count(pid) <= bound);
        }
    }
    // Every idle socket is held by the server (counted), none costs a thread.
    util::wait_until("300 idle connections to be accepted", || {
        s.metric("camstream_connections") == 301.0
    });
    assert!(util::thread_count(pid) <= bound);

    // 30 viewers at once: 10 get frames, 20 get 503 with Retry-After.
    let addr = s.addr;
    let floods: Vec<_> = (0..30)
        .map(|_| {
            thread::spawn(move || match MjpegClient::open(addr, "/stream", 1) {
                Ok(mut c) => {
                    let p = c.next_part().expect("an admitted viewer gets a part");
                    assert_eq!(jpeg_dims(&p.body), (320, 240));
                    Ok(c)
                }
                Err(r) => Err((r.status, r.header("retry-after").map(str::to_string))),
            })
        })
        .collect();
    // /metrics answers during the flood.
    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    let mut admitted = Vec::new();
    let mut refused = 0;
    for f in floods {
        match f.join().unwrap() {
            Ok(c) => admitted.push(c),
            Err((status, retry)) => {
                assert_eq!(status, 503);
                assert!(retry.is_some(), "503 without Retry-After");
                refused += 1;
            }
        }
    }
    assert_eq!((admitted.len(), refused), (10, 20));
    let m = s.get("/metrics").text();
    assert_eq!(metric(&m, "camstream_viewers"), 10.0);
    assert_eq!(metric(&m, "camstream_viewers_rejected_total"), 20.0);
    for c in &mut admitted {
        check_part(&next(c), 320, 240);
    }
    assert_eq!(s.get("/healthz").status, 200);
    assert!(util::thread_count(pid) <= bound);

    drop(admitted);
    drop(idle);
    util::wait_until("viewers to be gone", || {
        s.metric("camstream_viewers") == 0.0
    });
    util::wait_until("connections to be released", || {
        s.metric("camstream_connections") == 1.0
    });
    util::wait_until("fds back to the baseline", || {
        util::fd_count(pid) <= base_fds
    });
    stop.store(true, Ordering::Release);
    let (max_threads, samples) = sampler.join().unwrap();
    assert!(samples >= 5, "only {samples} thread samples");
    assert!(
        max_threads <= bound,
        "{max_threads} threads > bound {bound}"
    );
    // Every thread exists from the start (no thread per viewer): back to the baseline exactly.
    let after = util::thread_count(pid);
    assert!(
        after <= bound && after <= base_threads,
        "{after} threads after the flood (baseline {base_threads})"
    );
    // Still serving normally.
    let mut c = watch(s.addr, "/stream");
    check_part(&next(&mut c), 320, 240);
}

#[test]
fn the_connection_cap_answers_503_and_frees_on_close() {
    let s = pattern_server(&["--max-clients", "2", "--max-connections", "2"]);
    // Viewers hold every slot (a connection still sending its head would make room instead).
    let viewers: Vec<MjpegClient> = (0..2).map(|_| watch(s.addr, "/stream")).collect();
    // The third sends nothing: the server answers at once and closes.
    let mut third = connect(s.addr);
    let mut buf = Vec::new();
    third.read_to_end(&mut buf).expect("the 503 and a close");
    let r = util::parse_response(&buf);
    assert_eq!(r.status, 503, "{:?}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.text().lines().count(), 1);

    drop(viewers);
    // Once the server sees the viewers close, requests get through again.
    let mut refused = 1;
    util::wait_until("a free connection slot", || {
        let r = get_allowing_reset(s.addr, "/healthz");
        if r.status == 503 {
            refused += 1;
        }
        r.status == 200
    });
    assert_eq!(
        s.metric("camstream_connections_rejected_total"),
        refused as f64
    );
}

/// GET that reads to the end but accepts a reset after the response (see the test below).
fn get_allowing_reset(addr: SocketAddr, path: &str) -> Response {
    let mut c = connect(addr);
    write!(c, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    match c.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty() => {}
        Err(e) => panic!("GET {path}: {e}"),
    }
    util::parse_response(&buf)
}

#[test]
fn a_client_refused_by_the_connection_cap_gets_the_503_and_a_clean_close() {
    let s = pattern_server(&["--max-clients", "2", "--max-connections", "2"]);
    let _viewers: Vec<MjpegClient> = (0..2).map(|_| watch(s.addr, "/stream")).collect();
    for i in 0..10 {
        // Like any client: the request goes out right after connecting, then read until close.
        let mut c = connect(s.addr);
        c.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let res = c.read_to_end(&mut buf);
        assert!(
            res.is_ok(),
            "attempt {i}: {res:?} after {:?}",
            String::from_utf8_lossy(&buf)
        );
        assert_eq!(util::parse_response(&buf).status, 503);
    }
}

#[test]
fn the_header_timeout_closes_slow_and_idle_connections() {
    let s = pattern_server(&["--header-timeout", "1s"]);
    let mut partial = connect(s.addr);
    partial.write_all(b"GET /stream HTTP/1.1\r\nHost").unwrap();
    let idle = connect(s.addr);
    // The started request is answered 408; the silent one is just closed.
    let mut buf = Vec::new();
    partial
        .read_to_end(&mut buf)
        .expect("a 408 and a close, not a hang");
    assert_eq!(util::parse_response(&buf).status, 408);
    let mut buf = Vec::new();
    (&idle).read_to_end(&mut buf).expect("a close, not a hang");
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
    util::wait_until("both connections released", || {
        s.metric("camstream_connections") == 1.0
    });
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 0.0);
}

// ---------------------------------------------------------------------------------------------
// 7. Eviction of a viewer that stops reading
// ---------------------------------------------------------------------------------------------

#[test]
fn a_viewer_that_stops_reading_is_evicted_and_others_keep_streaming() {
    let s = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "1280x720",
        "--quality",
        "95",
        "--send-timeout",
        "1s",
        "--max-clients",
        "2",
    ]);
    let reader = BackgroundViewer::start(s.addr, "/stream");
    let stalled = stalled_viewer(s.addr, "/stream");
    util::wait_until("both viewers admitted", || {
        s.metric("camstream_viewers") == 2.0
    });
    let before = reader.count();

    util::wait_until("the stalled viewer to be evicted", || {
        s.metric("camstream_viewers_evicted_total") >= 1.0
    });
    util::wait_until("the viewers gauge to drop to 1", || {
        s.metric("camstream_viewers") == 1.0
    });
    let at_eviction = reader.count();
    assert!(
        at_eviction > before,
        "the reading viewer got no part while the other one stalled"
    );
    util::wait_until("the reading viewer to keep receiving", || {
        reader.count() >= at_eviction + 5
    });
    assert_eq!(s.metric("camstream_viewers_evicted_total"), 1.0);

    // The evicted socket was closed by the server (after whatever was still buffered).
    assert_closed_by_server(&stalled, "the evicted viewer");
    // Its slot is free again.
    let mut c = watch(s.addr, "/stream");
    check_part(&next(&mut c), 1280, 720);
    reader
        .finish()
        .expect("the reading viewer's stream stayed healthy");
    assert_eq!(s.metric("camstream_viewers_evicted_total"), 1.0);
}

// ---------------------------------------------------------------------------------------------
// 8. Metrics follow what happened
// ---------------------------------------------------------------------------------------------

#[test]
fn metrics_follow_viewers_frames_and_encoding() {
    let s = pattern_server(&["--max-clients", "4"]);
    // Nobody has watched yet: a second of capture, and only the first frame after the open
    // encoded (so that its size is known).
    util::wait_until("a second of capture", || {
        s.metric("camstream_frames_captured_total") >= 30.0
    });
    util::wait_until("capture fps to be measured", || {
        s.metric("camstream_capture_fps") > 0.0
    });
    let m = s.get("/metrics").text();
    assert_eq!(metric(&m, "camstream_frames_encoded_total"), 1.0);
    assert_eq!(metric(&m, "camstream_frames_sent_total"), 0.0);
    assert_eq!(metric(&m, "camstream_source_up"), 1.0);
    assert_eq!(metric(&m, "camstream_viewers"), 0.0);
    assert_eq!(metric(&m, "camstream_viewers_max"), 4.0);

    // Viewers come: the gauge follows, frames are sent, each frame is encoded once for all.
    let mut a = watch(s.addr, "/stream");
    assert_eq!(s.metric("camstream_viewers"), 1.0);
    let mut b = watch(s.addr, "/stream");
    let mut c = watch(s.addr, "/stream");
    assert_eq!(s.metric("camstream_viewers"), 3.0);
    let m0 = s.get("/metrics").text();
    for _ in 0..10 {
        for v in [&mut a, &mut b, &mut c] {
            check_part(&next(v), 320, 240);
        }
    }
    let m1 = s.get("/metrics").text();
    let d = |name: &str| metric(&m1, name) - metric(&m0, name);
    assert!(d("camstream_frames_sent_total") > 0.0);
    assert!(d("camstream_bytes_sent_total") > 0.0);
    assert!(
        d("camstream_frames_encoded_total") <= d("camstream_frames_captured_total") + 1.0,
        "encoded {} for {} captured with 3 viewers: encoding must not be per viewer",
        d("camstream_frames_encoded_total"),
        d("camstream_frames_captured_total")
    );
    util::wait_until("30 parts counted as sent", || {
        s.metric("camstream_frames_sent_total") >= 30.0
    });
    assert!(metric(&m1, "camstream_frame_bytes") > 0.0);
    assert!(metric(&m1, "camstream_encode_seconds_count") >= 1.0);

    drop(c);
    util::wait_until("the gauge to drop to 2", || {
        s.metric("camstream_viewers") == 2.0
    });
    drop(a);
    drop(b);
    util::wait_until("the gauge to drop to 0", || {
        s.metric("camstream_viewers") == 0.0
    });
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 3.0);

    // Nobody watches: once an encode that may have been under way is done (two more captures),
    // a further second of capture encodes and sends nothing.
    let c0 = s.metric("camstream_frames_captured_total");
    util::wait_until("two captures", || {
        s.metric("camstream_frames_captured_total") >= c0 + 2.0
    });
    let m2 = s.get("/metrics").text();
    let c2 = metric(&m2, "camstream_frames_captured_total");
    util::wait_until("a second of unwatched capture", || {
        s.metric("camstream_frames_captured_total") >= c2 + 30.0
    });
    let m3 = s.get("/metrics").text();
    for name in [
        "camstream_frames_encoded_total",
        "camstream_frames_sent_total",
        "camstream_bytes_sent_total",
    ] {
        assert_eq!(
            metric(&m3, name),
            metric(&m2, name),
            "{name} changed while nobody watched"
        );
    }
    assert!(metric(&m3, "camstream_capture_fps") > 0.0);
    assert_eq!(metric(&m3, "camstream_source_up"), 1.0);

    // Prometheus' own checker accepts the exposition, lint included.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(m3.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed: {said}"
    );
    assert!(said.trim().is_empty(), "promtool lint: {said}");
}

// ---------------------------------------------------------------------------------------------
// 9. Shutdown
// ---------------------------------------------------------------------------------------------

/// Signals the server with `sig` and checks a clean, prompt exit and that every viewer sees its
/// stream end.
fn assert_clean_shutdown(s: &mut Server, sig: i32, viewers: Vec<MjpegClient>) {
    let st = s
        .signal_and_wait(sig, Duration::from_secs(5))
        .expect("exit within 5 s of the signal");
    assert_eq!(st.code(), Some(0), "exit status after signal {sig}: {st:?}");
    for (i, mut v) in viewers.into_iter().enumerate() {
        // Whatever was still on the way, then the end: a bounded number of parts.
        let mut ended = false;
        for _ in 0..10_000 {
            if v.next_part().is_none() {
                ended = true;
                break;
            }
        }
        assert!(ended, "viewer {i}: the stream did not end");
        assert_closed_by_server(&mut v.reader, &format!("viewer {i}"));
    }
}

#[test]
fn sigterm_ends_streams_and_exits_0_even_with_a_stuck_viewer() {
    let mut s = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "1280x720",
        "--quality",
        "95",
        "--send-timeout",
        "60s",
    ]);
    // A viewer that never reads: wait until its thread is stuck in a write (no byte sent while
    // ten frames were captured).
    let _stuck = stalled_viewer(s.addr, "/stream");
    let mut last = (-1.0, 0.0);
    util::wait_until("the stalled viewer's write to block", || {
        let m = s.get("/metrics").text();
        let now = (
            metric(&m, "camstream_bytes_sent_total"),
            metric(&m, "camstream_frames_captured_total"),
        );
        if now.0 != last.0 {
            last = now;
            return false;
        }
        now.0 > 0.0 && now.1 >= last.1 + 10.0
    });
    let mut viewers: Vec<MjpegClient> = (0..2).map(|_| watch(s.addr, "/stream")).collect();
    for v in &mut viewers {
        check_part(&next(v), 1280, 720);
    }
    assert_eq!(s.metric("camstream_viewers"), 3.0);
    assert_clean_shutdown(&mut s, util::SIGTERM, viewers);
}

#[test]
/// Shutdown never cuts a frame: the body ends right after a complete part's delimiter. (No
/// close delimiter follows: every delimiter goes out with its CRLF at once so clients show a
/// frame without waiting for the next, and a close delimiter after that would need an empty
/// part, which players would try to show; like µStreamer and mjpg-streamer, the end of the
/// connection ends the stream.)
fn shutdown_ends_the_body_after_a_complete_part() {
    let mut s = pattern_server(&[]);
    let mut c = watch(s.addr, "/stream");
    check_part(&next(&mut c), 320, 240);
    let st = s
        .signal_and_wait(util::SIGTERM, Duration::from_secs(5))
        .expect("exit within 5 s");
    assert!(st.success());
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).expect("EOF");
    let delimiter = format!("\r\n--{}\r\n", c.boundary);
    let tail = String::from_utf8_lossy(&rest[rest.len().saturating_sub(64)..]).into_owned();
    assert!(
        rest.is_empty() || tail.ends_with(&delimiter),
        "the body ends {tail:?}, not with {delimiter:?}"
    );
}

#[test]
fn sigint_ends_streams_and_exits_0() {
    let mut s = pattern_server(&[]);
    let mut viewers: Vec<MjpegClient> = (0..2).map(|_| watch(s.addr, "/stream")).collect();
    for v in &mut viewers {
        check_part(&next(v), 320, 240);
    }
    assert_clean_shutdown(&mut s, util::SIGINT, viewers);
}

/// A pipe whose buffer is full and that nobody reads: a process writing to it blocks.
fn full_pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array; O_CLOEXEC keeps them out of other children.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fds are fresh and owned here.
    let (rd, mut wr) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    for chunk in [4096usize, 512, 64, 8, 1] {
        let bytes = vec![b'.'; chunk];
        for _ in 0..100_000 {
            if wr.write(&bytes).is_err() {
                break;
            }
        }
    }
    // Blocking again (the flag belongs to the shared file description the child gets).
    // SAFETY: as above.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, 0) };
    (rd, wr)
}

#[test]
fn a_second_signal_exits_130_while_shutdown_is_stuck() {
    // Deterministic: the server's stderr is a full pipe, so after the first SIGINT the main
    // thread blocks forever printing "shutting down"; only the second signal can end it.
    let (_keep_reader, stderr) = full_pipe();
    let mut cmd = util::camstream();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--source",
        "pattern",
        "--size",
        "160x120",
    ]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    let mut child = cmd.spawn().expect("start camstream serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    out.read_line(&mut banner).expect("the ready line");
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("URL in the banner");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let mut s = Server {
        child,
        addr,
        banner,
    };

    let mut viewer = watch(s.addr, "/stream");
    check_part(&next(&mut viewer), 160, 120);
    let threads = util::thread_count(s.pid());
    // SAFETY: kill() on our own child.
    unsafe { libc::kill(s.pid() as i32, libc::SIGINT) };
    // The first signal is handled: the capture thread ends and the viewer's stream closes.
    util::wait_until("the capture thread to stop", || {
        util::thread_count(s.pid()) < threads
    });
    for _ in 0..10_000 {
        if viewer.next_part().is_none() {
            break;
        }
    }
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "exited before the second signal"
    );
    let st = s
        .signal_and_wait(util::SIGINT, Duration::from_secs(5))
        .expect("exit within 5 s of the second signal");
    assert_eq!(st.code(), Some(130), "{st:?}");
}

// ---------------------------------------------------------------------------------------------
// 10. File sources: pass-through, and a stalled source keeps the stream alive
// ---------------------------------------------------------------------------------------------

/// Writes an MJPEG clip of `n` frames with ffmpeg's test source.
fn mjpeg_clip(dir: &Path, n: u32) -> std::path::PathBuf {
    let out = dir.join("clip.mjpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=5",
    ])
    .args(["-frames:v", &n.to_string(), "-f", "mjpeg"])
    .arg(&out);
    let o = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        o.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn a_file_source_streams_its_jpegs_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let clip = mjpeg_clip(dir.path(), 10);
    let data = std::fs::read(&clip).unwrap();
    let (ranges, bad) = camstream::source::file::split_jpegs(&data);
    assert_eq!((ranges.len(), bad), (10, 0));
    let frames: HashSet<&[u8]> = ranges.iter().map(|r| &data[r.clone()]).collect();

    let src = format!("file:{}", clip.display());
    let s = Server::start(&["--source", &src, "--fps", "10"]);
    let mut c = watch(s.addr, "/stream");
    let mut seen = HashSet::new();
    let mut last = 0.0;
    for i in 0..12 {
        let p = next(&mut c);
        let ts = check_part(&p, 320, 240);
        assert!(ts >= last, "part {i}");
        last = ts;
        assert!(
            frames.contains(p.body.as_slice()),
            "part {i} is not one of the clip's JPEGs byte for byte"
        );
        seen.insert(p.body);
    }
    assert!(seen.len() >= 2, "the clip is replayed, not one frame");
    let snap = s.get("/snapshot");
    assert!(frames.contains(snap.body.as_slice()));
    assert_eq!(
        s.metric("camstream_frames_encoded_total"),
        0.0,
        "passed through, never re-encoded"
    );
}
