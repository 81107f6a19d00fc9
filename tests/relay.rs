//! Tests of the relay source (`--source http://...`): camstream reading other MJPEG servers.
//! Upstreams not written here (ffmpeg's mpjpeg muxer in listen mode, the original Python
//! server when OpenCV is installed), small in-test servers for each variant of the multipart
//! format real servers send, snapshot-only and password-protected cameras, chains of relays,
//! upstreams that die, stall or send garbage, and nginx balancing viewers over two relays.
//!
//! Everything listens on 127.0.0.1; every wait is bounded; every child is killed on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camstream::encoder::Encoder;
use camstream::frame::{Chroma, Planar};

use crate::util::{
    self, free_port, metric, tool, wait_until, Group, MjpegClient, Part, Server, IO_TIMEOUT,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A `camstream serve` whose stderr is kept (to check what it logs) as well as shown.
struct Node {
    guard: Group,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Node {
    /// `camstream serve --listen LISTEN ARGS` with extra environment variables.
    fn start(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut cmd = util::camstream();
        cmd.arg("serve").args(["--listen", listen]).args(args);
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = Group::spawn(cmd);
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (guard.child.stderr.take().unwrap(), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut out = BufReader::new(guard.child.stdout.take().unwrap());
        let mut banner = String::new();
        out.read_line(&mut banner).expect("read the ready line");
        assert!(
            !banner.is_empty(),
            "camstream serve exited before it was ready"
        );
        log.lock().unwrap().push_str(&banner);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
            }
        });
        let addr = util::banner_addr(&banner).unwrap_or_else(|| panic!("no address in {banner:?}"));
        Node { guard, addr, log }
    }

    /// A relay of `url` on a free port.
    fn relay(url: &str, extra: &[&str]) -> Node {
        let mut args = vec!["--source", url];
        args.extend_from_slice(extra);
        Node::start("127.0.0.1:0", &args, &[])
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&util::get(self.addr, "/metrics").text(), name)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn pid(&self) -> u32 {
        self.guard.child.id()
    }
}

fn watch(addr: SocketAddr) -> MjpegClient {
    MjpegClient::open(addr, "/stream", 1)
        .unwrap_or_else(|r| panic!("no stream: {} {}", r.status, r.text()))
}

fn part(v: &mut MjpegClient) -> Part {
    v.next_part().expect("the stream ended")
}

/// Distinct small JPEGs (one luma each).
fn jpegs(n: usize) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(80).unwrap();
    (0..n)
        .map(|i| {
            let pic = Planar::filled(64, 48, Chroma::Yuv420, [20 + 25 * i as u8, 100, 160]);
            enc.encode(&pic).unwrap().to_vec()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// An in-test upstream: one thread per connection, each handed to `handler` with its request.

struct Upstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
}

type Handler = dyn Fn(&mut TcpStream, &str, usize, &AtomicBool) + Send + Sync;

impl Upstream {
    fn start(
        handler: impl Fn(&mut TcpStream, &str, usize, &AtomicBool) + Send + Sync + 'static,
    ) -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (stop2, accepted2) = (Arc::clone(&stop), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut s) = conn else { continue };
                let n = accepted2.fetch_add(1, Ordering::SeqCst);
                let (h, stop) = (Arc::clone(&handler), Arc::clone(&stop2));
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                    let Some(req) = read_request(&mut s) else {
                        return;
                    };
                    h(&mut s, &req, n, &stop);
                });
            }
        });
        Upstream {
            addr,
            stop,
            accepted,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Reads a request head; `None` if the client left.
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 || head.len() > 16 << 10 {
            return None;
        }
        head.push(b[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn header<'a>(req: &'a str, name: &str) -> Option<&'a str> {
    req.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// How a multipart upstream frames its stream.
#[derive(Clone, Copy, Debug)]
struct Style {
    /// The Content-Type's parameters after `multipart/x-mixed-replace`.
    declared: &'static str,
    /// The delimiter line as sent.
    line: &'static str,
    nl: &'static str,
    content_length: bool,
    chunked: bool,
    http10: bool,
    /// Text before the first delimiter, and extra part headers.
    chatty: bool,
    /// A line end between the JPEG and the next delimiter (the original server sends none).
    crlf_after: bool,
}

const STANDARD: Style = Style {
    declared: ";boundary=frame",
    line: "--frame",
    nl: "\r\n",
    content_length: true,
    chunked: false,
    http10: false,
    chatty: false,
    crlf_after: true,
};

/// Writes the response head for `style`.
fn write_head(s: &mut TcpStream, style: Style) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.{} 200 OK\r\nContent-Type: multipart/x-mixed-replace{}\r\nCache-Control: no-cache\r\n",
        if style.http10 { 0 } else { 1 },
        style.declared
    );
    if style.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if style.chatty {
        write_body(
            s,
            style,
            format!("This is a multipart stream.{}", style.nl).as_bytes(),
        )?;
    }
    Ok(())
}

fn write_body(s: &mut TcpStream, style: Style, data: &[u8]) -> std::io::Result<()> {
    if style.chunked {
        s.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
        s.write_all(data)?;
        s.write_all(b"\r\n")
    } else {
        s.write_all(data)
    }
}

/// One part: delimiter, headers, the JPEG (and the line end after it, if the style has one).
fn part_bytes(style: Style, jpeg: &[u8], timestamp: Option<&str>) -> Vec<u8> {
    let nl = style.nl;
    let mut p = format!("{}{nl}Content-Type: image/jpeg{nl}", style.line);
    if style.content_length {
        p.push_str(&format!("Content-Length: {}{nl}", jpeg.len()));
    }
    if style.chatty {
        p.push_str(&format!(
            "X-Frame-Info: camera one{nl}Cache-Control: no-cache{nl}"
        ));
    }
    if let Some(t) = timestamp {
        p.push_str(&format!("X-Timestamp: {t}{nl}"));
    }
    p.push_str(nl);
    let mut p = p.into_bytes();
    p.extend_from_slice(jpeg);
    if style.crlf_after {
        p.extend_from_slice(nl.as_bytes());
    }
    p
}

/// An upstream that streams `frames` in turn, about 20 a second, in `style`, until the client
/// leaves (or a minute passes).
fn stream_upstream(style: Style, frames: Vec<Vec<u8>>) -> Upstream {
    Upstream::start(move |s, _req, _n, stop| {
        if write_head(s, style).is_err() {
            return;
        }
        for i in 0..1200 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let p = part_bytes(style, &frames[i % frames.len()], None);
            if write_body(s, style, &p).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// Reads `n` parts from a relay's viewer, skipping NO SIGNAL placeholders (`placeholder_dims`)
/// for a bounded time, and checks each is one of `expected`, byte for byte.
fn expect_frames(v: &mut MjpegClient, expected: &[Vec<u8>], n: usize, what: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut got = 0;
    while got < n {
        assert!(Instant::now() < deadline, "{what}: only {got} frames");
        let p = part(v);
        if expected.contains(&p.body) {
            got += 1;
        } else {
            // Before the first real frame the relay may show its placeholder.
            assert!(got == 0, "{what}: a frame that the upstream did not send");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams not written here

#[test]
fn ffmpeg_mpjpeg_server_is_relayed() {
    let Some(ffmpeg) = tool("ffmpeg", "ffmpeg") else {
        return;
    };
    // ffmpeg's listen mode serves one client and cannot report a port: pick a free one, and
    // pick again should ffmpeg fail to bind it.
    for attempt in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(&ffmpeg);
        cmd.args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=320x240:rate=10")
        .args(["-t", "60", "-f", "mpjpeg", "-listen", "1"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        let mut ff = Group::spawn(cmd);
        // The relay retries with backoff until ffmpeg listens; no probe (it would be the
        // one client ffmpeg serves).
        let relay = Node::relay(
            &format!("http://127.0.0.1:{port}/"),
            &["--size", "160x120", "--timeout", "5s"],
        );
        let mut v = watch(relay.addr);
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut real = 0;
        while real < 5 && Instant::now() < deadline && !(real == 0 && ff.exited()) {
            let p = part(&mut v);
            if util::jpeg_dims(&p.body) == (320, 240) {
                real += 1;
            }
        }
        if real == 0 && ff.exited() && attempt < 2 {
            eprintln!("note: ffmpeg did not start on port {port}; trying another");
            continue;
        }
        assert_eq!(real, 5, "frames from ffmpeg through the relay");
        assert_eq!(relay.metric("camstream_source_bad_frames_total"), 0.0);
        let state = util::get(relay.addr, "/state").text();
        assert!(state.contains("\"passthrough\":true"), "{state}");
        return;
    }
}

/// ../shared/baseline/seed_server.py, the server this project grew from, if Python has OpenCV.
#[test]
fn the_original_python_server_is_relayed() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/baseline/seed_server.py");
    let has_cv2 = Command::new("python3")
        .args(["-c", "import cv2"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let Some(ffmpeg) = tool("ffmpeg", "ffmpeg") else {
        return;
    };
    if !script.is_file() || !has_cv2 {
        // python3-opencv pulls in hundreds of MB; CI does not install it. Its wire format is
        // tested below with an in-test server that writes the same bytes.
        eprintln!(
            "note: skipping, needs {} and python3 with cv2",
            script.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("clip.avi");
    let st = Command::new(ffmpeg)
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
        ])
        .args(["-t", "2", "-c:v", "mjpeg"])
        .arg(&video)
        .status()
        .unwrap();
    assert!(st.success());
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(&video)
        .arg(port.to_string())
        .arg("4")
        .arg("10")
        .stdout(Stdio::null());
    let _py = Group::spawn(cmd);
    let relay = Node::relay(&format!("http://127.0.0.1:{port}/"), &["--size", "160x120"]);
    let mut v = watch(relay.addr);
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut real = 0;
    while real < 5 {
        assert!(
            Instant::now() < deadline,
            "only {real} frames from the Python server"
        );
        if util::jpeg_dims(&part(&mut v).body) == (320, 240) {
            real += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The multipart format as real servers write it

#[test]
fn every_multipart_variant_is_relayed_byte_for_byte() {
    let frames = jpegs(4);
    let variants = [
        ("standard", STANDARD),
        (
            "boundary declared with --",
            Style {
                declared: "; boundary=--frame",
                ..STANDARD
            },
        ),
        (
            "quoted boundary",
            Style {
                declared: "; boundary=\"frame\"",
                ..STANDARD
            },
        ),
        (
            "no Content-Length",
            Style {
                content_length: false,
                ..STANDARD
            },
        ),
        (
            "LF line ends, no Content-Length, preamble and extra headers",
            Style {
                nl: "\n",
                content_length: false,
                chatty: true,
                ..STANDARD
            },
        ),
        (
            "chunked",
            Style {
                chunked: true,
                ..STANDARD
            },
        ),
        (
            "HTTP/1.0 to the close, no line end after the JPEG (the original server)",
            Style {
                declared: ";boundary=jpeg_frame",
                line: "--jpeg_frame",
                http10: true,
                crlf_after: false,
                ..STANDARD
            },
        ),
        (
            "no boundary declared",
            Style {
                declared: "",
                line: "--myboundary",
                ..STANDARD
            },
        ),
    ];
    for (name, style) in variants {
        eprintln!("variant: {name}");
        let up = stream_upstream(style, frames.clone());
        let relay = Node::relay(&up.url("/video.cgi"), &["--size", "64x48"]);
        let mut v = watch(relay.addr);
        expect_frames(&mut v, &frames, 6, name);
        assert_eq!(
            relay.metric("camstream_source_bad_frames_total"),
            0.0,
            "{name}"
        );
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot-only cameras

#[test]
fn a_snapshot_only_camera_is_polled_one_request_at_a_time() {
    let frames = jpegs(3);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (f, inf, mx, rq) = (
        frames.clone(),
        Arc::clone(&in_flight),
        Arc::clone(&most),
        Arc::clone(&requests),
    );
    // HTTP/1.1 with keep-alive: the relay may reuse the connection.
    let up = Upstream::start(move |s, req, _n, _stop| {
        let mut req = req.to_string();
        loop {
            let now = inf.fetch_add(1, Ordering::SeqCst) + 1;
            mx.fetch_max(now, Ordering::SeqCst);
            let i = rq.fetch_add(1, Ordering::SeqCst);
            assert!(req.starts_with("GET /snapshot.jpg "), "{req}");
            std::thread::sleep(Duration::from_millis(20)); // a camera takes its time
            let j = &f[i % f.len()];
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                j.len()
            );
            inf.fetch_sub(1, Ordering::SeqCst);
            if s.write_all(head.as_bytes())
                .and_then(|_| s.write_all(j))
                .is_err()
            {
                return;
            }
            match read_request(s) {
                Some(r) => req = r,
                None => return,
            }
        }
    });

    // `snapshot` writes the camera's JPEG untouched.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("still.jpg");
    let st = util::camstream()
        .args(["snapshot", "--source", &up.url("/snapshot.jpg")])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(frames.contains(&std::fs::read(&out).unwrap()));

    let accepted_before = up.accepted.load(Ordering::SeqCst);
    let relay = Node::relay(
        &up.url("/snapshot.jpg"),
        &["--fps", "10", "--size", "64x48"],
    );
    let viewers: Vec<MjpegClient> = (0..3).map(|_| watch(relay.addr)).collect();
    for mut v in viewers {
        expect_frames(&mut v, &frames, 4, "polled frames");
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "requests overlapped");
    // One kept-alive connection carries every poll.
    assert_eq!(up.accepted.load(Ordering::SeqCst) - accepted_before, 1);
    let state = util::get(relay.addr, "/state").text();
    assert!(state.contains("JPEG, polled"), "{state}");
}

// ---------------------------------------------------------------------------------------------
// Passwords

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The parameters of a `Digest k=v, k="v"` header.
fn digest_params(h: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut rest = h.trim().strip_prefix("Digest").unwrap_or("").trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let (v, after) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        m.insert(k.trim().to_string(), v.to_string());
        rest = after.trim_start_matches([',', ' ']);
    }
    m
}

/// Whether `req` carries the right credentials for `scheme` ("Basic" or "Digest").
fn authorized(req: &str, scheme: &str) -> bool {
    let Some(auth) = header(req, "authorization") else {
        return false;
    };
    if scheme == "Basic" {
        use base64::Engine;
        let want = base64::engine::general_purpose::STANDARD.encode("admin:s3cret pass");
        return auth == format!("Basic {want}");
    }
    let p = digest_params(auth);
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let ha1 = md5_hex(&format!("{}:cam:s3cret pass", get("username")));
    let ha2 = md5_hex(&format!("GET:{}", get("uri")));
    let want = md5_hex(&format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        get("nonce"),
        get("nc"),
        get("cnonce"),
        get("qop")
    ));
    get("username") == "admin" && get("nonce") == "n0nce" && get("response") == want
}

fn protected_upstream(scheme: &'static str, frames: Vec<Vec<u8>>) -> Upstream {
    Upstream::start(move |s, req, _n, stop| {
        if !authorized(req, scheme) {
            let challenge = if scheme == "Basic" {
                "Basic realm=\"cam\"".to_string()
            } else {
                "Digest realm=\"cam\", qop=\"auth\", nonce=\"n0nce\", opaque=\"xyz\", algorithm=MD5"
                    .to_string()
            };
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\nContent-Length: 0\r\n\r\n"
                )
                .as_bytes(),
            );
            return;
        }
        if write_head(s, STANDARD).is_err() {
            return;
        }
        for i in 0..1200 {
            let p = part_bytes(STANDARD, &frames[i % frames.len()], None);
            if stop.load(Ordering::SeqCst) || s.write_all(&p).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

#[test]
fn basic_and_digest_cameras_with_right_and_wrong_passwords() {
    let frames = jpegs(3);
    for scheme in ["Basic", "Digest"] {
        let up = protected_upstream(scheme, frames.clone());
        let port = up.addr.port();

        // Right password in the URL (percent-encoded space), and from the environment.
        let relay = Node::relay(
            &format!("http://admin:s3cret%20pass@127.0.0.1:{port}/video.cgi"),
            &["--size", "64x48"],
        );
        expect_frames(&mut watch(relay.addr), &frames, 3, scheme);
        let env_relay = Node::start(
            "127.0.0.1:0",
            &["--source", &up.url("/video.cgi"), "--size", "64x48"],
            &[
                ("CAMSTREAM_SOURCE_USER", "admin"),
                ("CAMSTREAM_SOURCE_PASSWORD", "s3cret pass"),
            ],
        );
        expect_frames(&mut watch(env_relay.addr), &frames, 3, scheme);

        // The wrong password: a clear one-line error that names the URL but not the password.
        let out = util::camstream()
            .args(["snapshot", "--source"])
            .arg(format!("http://admin:hunter2@127.0.0.1:{port}/video.cgi"))
            .arg("-")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(
            err.trim(),
            format!(
                "camstream: error: http://admin@127.0.0.1:{port}/video.cgi refused the user and password (401 Unauthorized)"
            )
        );
        // No password at all.
        let out = util::camstream()
            .args(["snapshot", "--source", &up.url("/video.cgi"), "-"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("needs a user and password") && err.contains("CAMSTREAM_SOURCE_PASSWORD"),
            "{err}"
        );

        // A relay with the wrong password serves NO SIGNAL and never shows the password.
        let bad = Node::start(
            "127.0.0.1:0",
            &[
                "--source",
                &format!("http://admin:hunter2@127.0.0.1:{port}/video.cgi"),
            ],
            &[],
        );
        let health = util::get(bad.addr, "/healthz");
        assert_eq!(health.status, 503);
        assert!(
            health.text().contains("refused the user and password"),
            "{}",
            health.text()
        );
        for shown in [
            health.text(),
            util::get(bad.addr, "/state").text(),
            util::get(bad.addr, "/metrics").text(),
            bad.log(),
            relay.log(),
        ] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("s3cret"),
                "{shown}"
            );
        }
    }
}

#[test]
fn every_failure_is_one_line_naming_the_url_without_the_password() {
    let up = Upstream::start(|s, req, _n, _stop| {
        let answer: &[u8] = if req.starts_with("GET /missing ") {
            b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"
        } else if req.starts_with("GET /moved ") {
            b"HTTP/1.1 302 Found\r\nLocation: http://admin:hunter2@elsewhere/x\r\nContent-Length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>"
        };
        let _ = s.write_all(answer);
    });
    let port = up.addr.port();
    let refused = free_port();
    for (url, expected) in [
        (
            format!("http://admin:hunter2@127.0.0.1:{port}/missing"),
            format!("http://admin@127.0.0.1:{port}/missing answered 404 Not Found"),
        ),
        (
            format!("http://admin:hunter2@127.0.0.1:{port}/moved"),
            format!("http://admin@127.0.0.1:{port}/moved answered 302 Found (to http://admin@elsewhere/x); use that URL"),
        ),
        (
            format!("http://127.0.0.1:{port}/page?pwd=hunter2"),
            format!("http://127.0.0.1:{port}/page?pwd=*** answered with Content-Type 'text/html': neither an MJPEG stream (multipart/x-mixed-replace) nor a JPEG (image/jpeg)"),
        ),
        (
            format!("http://admin:hunter2@127.0.0.1:{refused}/"),
            format!("cannot connect to http://admin@127.0.0.1:{refused}/: "),
        ),
        (
            "http://admin:hunter2@camera.invalid/video.cgi".to_string(),
            "http://admin@camera.invalid/video.cgi: cannot resolve camera.invalid".to_string(),
        ),
    ] {
        let t = Instant::now();
        let out = util::camstream()
            .args(["snapshot", "--source", &url, "--timeout", "2s", "-"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("camstream: error: {expected}")),
            "{url}:\n{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(t.elapsed() < IO_TIMEOUT, "{url} took {:?}", t.elapsed());
    }
}

// ---------------------------------------------------------------------------------------------
// Chains of relays

/// Parts from a viewer until `n` were collected, by X-Timestamp.
fn collect(v: &mut MjpegClient, n: usize) -> HashMap<String, Vec<u8>> {
    let mut m = HashMap::new();
    for _ in 0..n {
        let p = part(v);
        m.insert(p.headers["x-timestamp"].clone(), p.body);
    }
    m
}

#[test]
fn a_chain_of_relays_passes_frames_byte_for_byte_over_one_connection_per_hop() {
    let origin = Server::start(&["--source", "pattern", "--size", "320x240", "--fps", "15"]);
    let hop1 = Node::relay(&format!("http://{}/stream", origin.addr), &[]);
    let hop2 = Node::relay(&format!("http://{}/?action=stream", hop1.addr), &[]);
    let mut direct = watch(origin.addr);
    let mut viewers: Vec<MjpegClient> = (0..3).map(|_| watch(hop2.addr)).collect();

    // Frames at the end of the chain are the origin's, byte for byte, with its timestamps.
    let at_origin = collect(&mut direct, 40);
    let mut matched = 0;
    for v in &mut viewers {
        for (stamp, body) in collect(v, 10) {
            if let Some(orig) = at_origin.get(&stamp) {
                assert_eq!(orig, &body, "frame {stamp} changed on the way");
                matched += 1;
            }
        }
    }
    assert!(matched >= 10, "only {matched} frames matched the origin's");

    // One upstream connection per hop, whatever the number of viewers.
    assert_eq!(
        origin.metric("camstream_viewers"),
        2.0,
        "hop 1 and the direct viewer"
    );
    assert_eq!(origin.metric("camstream_viewers_accepted_total"), 2.0);
    assert_eq!(hop1.metric("camstream_viewers"), 1.0, "hop 2 only");
    assert_eq!(hop1.metric("camstream_viewers_accepted_total"), 1.0);
    assert_eq!(hop2.metric("camstream_viewers"), 3.0);

    // The metrics of the hops agree: nothing re-encoded, nothing bad, and each hop got no
    // more frames than the one before sent it (read downstream first).
    for hop in [&hop1, &hop2] {
        assert_eq!(hop.metric("camstream_frames_encoded_total"), 0.0);
        assert_eq!(hop.metric("camstream_source_bad_frames_total"), 0.0);
        assert_eq!(hop.metric("camstream_source_up"), 1.0);
    }
    let got2 = hop2.metric("camstream_frames_captured_total");
    let sent1 = hop1.metric("camstream_frames_sent_total");
    let got1 = hop1.metric("camstream_frames_captured_total");
    let sent0 = origin.metric("camstream_frames_sent_total");
    assert!(
        got2 > 0.0 && got2 <= sent1,
        "hop 2 got {got2}, hop 1 sent {sent1}"
    );
    assert!(
        got1 > 0.0 && got1 <= sent0,
        "hop 1 got {got1}, origin sent {sent0}"
    );
}

// ---------------------------------------------------------------------------------------------
// Upstreams that die, stall, or send garbage

/// Waits for a NO SIGNAL part (a picture of `dims`) on `v`; returns how long it took.
fn until_placeholder(v: &mut MjpegClient, dims: (usize, usize)) -> Duration {
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < IO_TIMEOUT, "no NO SIGNAL picture");
        if util::jpeg_dims(&part(v).body) == dims {
            return t.elapsed();
        }
    }
}

fn until_real(v: &mut MjpegClient, dims: (usize, usize)) {
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < IO_TIMEOUT, "frames did not come back");
        if util::jpeg_dims(&part(v).body) == dims {
            return;
        }
    }
}

#[test]
fn an_upstream_that_stalls_or_dies_shows_no_signal_then_comes_back() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let origin_args = ["--source", "pattern", "--size", "160x120", "--fps", "20"];
    let mut origin = Node::start(&listen, &origin_args, &[]);
    // The relay's placeholder has its own size, so a viewer can tell it from the origin's frames.
    let relay = Node::relay(
        &format!("http://{listen}/stream"),
        &["--timeout", "1s", "--size", "96x64"],
    );
    let mut v = watch(relay.addr);
    until_real(&mut v, (160, 120));
    assert_eq!(util::get(relay.addr, "/healthz").status, 200);

    // Stalled (stopped, its socket open): NO SIGNAL within --timeout + 1 s.
    origin.guard.signal(libc::SIGSTOP);
    let took = until_placeholder(&mut v, (96, 64));
    assert!(took <= Duration::from_secs(2), "NO SIGNAL after {took:?}");
    assert_eq!(util::get(relay.addr, "/healthz").status, 503);
    assert_eq!(relay.metric("camstream_source_up"), 0.0);
    origin.guard.signal(libc::SIGCONT);
    until_real(&mut v, (160, 120));
    assert_eq!(relay.metric("camstream_source_up"), 1.0);

    // Killed and started again on the same port: the same viewer gets frames again.
    drop(origin);
    until_placeholder(&mut v, (96, 64));
    origin = Node::start(&listen, &origin_args, &[]);
    until_real(&mut v, (160, 120));
    assert!(relay.metric("camstream_source_reconnects_total") >= 2.0);
    assert!(relay.metric("camstream_source_errors_total") >= 2.0);
    assert_eq!(util::get(relay.addr, "/healthz").status, 200);
    drop(origin);
}

#[test]
fn hostile_upstreams_cost_a_bounded_buffer_and_a_counted_bad_frame() {
    let frames = jpegs(3);
    let f = frames.clone();
    // Connection 0 stalls mid-part; 1 sends a 10 MB part that is not a JPEG, then garbage
    // with no delimiter (more than the largest frame), then a part longer than the largest
    // frame; every connection ends with good frames.
    let up = Upstream::start(move |s, _req, n, stop| {
        if write_head(s, STANDARD).is_err() {
            return;
        }
        let good = |s: &mut TcpStream, count: usize| {
            for i in 0..count {
                let p = part_bytes(STANDARD, &f[i % f.len()], None);
                if stop.load(Ordering::SeqCst) || s.write_all(&p).is_err() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            true
        };
        if !good(s, 3) {
            return;
        }
        match n {
            0 => {
                let p = part_bytes(STANDARD, &f[0], None);
                let _ = s.write_all(&p[..p.len() / 2]);
                // Stall until the relay gives up on this connection.
                let mut b = [0u8; 1];
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let _ = s.read(&mut b);
                return;
            }
            1 => {
                let junk: Vec<u8> = (0..10_000_000u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect();
                let mut p = format!(
                    "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    junk.len()
                )
                .into_bytes();
                p.extend_from_slice(&junk);
                p.extend_from_slice(b"\r\n");
                let _ = s.write_all(&p);
                if !good(s, 3) {
                    return;
                }
                for _ in 0..4 {
                    let _ = s.write_all(&junk);
                }
                if !good(s, 3) {
                    return;
                }
                let _ = s.write_all(b"--frame\r\nContent-Length: 40000000\r\n\r\n");
                for _ in 0..4 {
                    let _ = s.write_all(&junk);
                }
                let _ = s.write_all(b"\r\n");
            }
            _ => {}
        }
        good(s, 1200);
    });
    // A timeout long enough that 40 MB of junk through a debug build is not a stall.
    let relay = Node::relay(&up.url("/"), &["--timeout", "3s", "--size", "96x64"]);
    let mut v = watch(relay.addr);
    // The stall: NO SIGNAL, the cut part counted, and a reconnect.
    until_placeholder(&mut v, (96, 64));
    wait_until("the cut part to be counted", || {
        relay.metric("camstream_source_bad_frames_total") >= 1.0
    });
    // The second connection: 10 MB not-a-JPEG, 40 MB of garbage, a 40 MB part, then frames.
    wait_until("the second connection", || {
        up.accepted.load(Ordering::SeqCst) >= 2
    });
    // Counted: the cut part, the 10 MB part, the garbage (once past 4 KiB, once more past the
    // largest frame) and the oversized part.
    wait_until("the junk to be counted", || {
        relay.metric("camstream_source_bad_frames_total") >= 5.0
    });
    expect_frames(&mut v, &frames, 3, "good frames after the junk");
    // Nothing kept more than the largest frame (32 MiB) and a read buffer beyond the server's
    // own few MiB, though 90 MB of junk went through.
    let peak = util::rss_mb(relay.pid()).1;
    let bad = relay.metric("camstream_source_bad_frames_total");
    eprintln!("relay peak RSS {peak:.1} MiB, {bad} bad frames counted");
    assert!(peak < 80.0, "the relay's peak RSS was {peak:.1} MiB");
    assert_eq!(util::get(relay.addr, "/healthz").status, 200);
}

// ---------------------------------------------------------------------------------------------
// nginx in front of two relays

#[test]
fn nginx_least_conn_spreads_forty_viewers_over_two_relays() {
    let Some(nginx) = tool("nginx", "nginx-light") else {
        return;
    };
    let origin = Server::start(&["--source", "pattern", "--size", "160x120", "--fps", "10"]);
    let relays: Vec<Node> = (0..2)
        .map(|_| {
            Node::relay(
                &format!("http://{}/stream", origin.addr),
                &["--max-clients", "40"],
            )
        })
        .collect();
    let servers: String = relays
        .iter()
        .map(|r| format!("        server {};\n", r.addr))
        .collect();
    let mut started = None;
    let mut last_error = String::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        // SAFETY: geteuid() has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;\n"
        } else {
            ""
        };
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("    {t}_temp_path {}/{t};\n", d.display()))
            .collect();
        let conf = format!(
            "{user}worker_processes 1;\nevents {{ worker_connections 512; }}\nhttp {{\n    access_log off;\n{temp}\
             \x20   upstream relays {{\n        least_conn;\n{servers}    }}\n\
             \x20   server {{\n        listen 127.0.0.1:{port};\n        location / {{\n\
             \x20           proxy_pass http://relays;\n            proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n            proxy_buffering off;\n\
             \x20           chunked_transfer_encoding off;\n        }}\n    }}\n}}\n"
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let mut cmd = Command::new(&nginx);
        cmd.arg("-p").arg(d).arg("-c").arg(d.join("nginx.conf"));
        cmd.args(["-e", "stderr", "-g"])
            .arg(format!(
                "daemon off; pid {}/nginx.pid; error_log stderr;",
                d.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut guard = Group::spawn(cmd);
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (guard.child.stderr.take().unwrap(), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[nginx] {line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + IO_TIMEOUT;
        while Instant::now() < deadline && !guard.exited() {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                started = Some((guard, addr, dir));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if started.is_some() {
            break;
        }
        last_error = log.lock().unwrap().clone();
    }
    let (_nginx, proxy, _dir) =
        started.unwrap_or_else(|| panic!("nginx did not start:\n{last_error}"));

    let mut viewers: Vec<MjpegClient> = (0..40).map(|_| watch(proxy)).collect();
    for (i, v) in viewers.iter_mut().enumerate() {
        for _ in 0..2 {
            let p = v
                .next_part()
                .unwrap_or_else(|| panic!("viewer {i} got no frame"));
            assert_eq!(util::jpeg_dims(&p.body), (160, 120), "viewer {i}");
        }
    }
    let counts: Vec<f64> = relays
        .iter()
        .map(|r| r.metric("camstream_viewers"))
        .collect();
    assert_eq!(counts.iter().sum::<f64>(), 40.0, "{counts:?}");
    assert!(counts.iter().all(|&c| c >= 10.0), "not spread: {counts:?}");
    // Still one upstream connection per relay.
    assert_eq!(origin.metric("camstream_viewers"), 2.0);
}
