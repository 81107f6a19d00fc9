//! The built-in page in headless Chromium, driven over the DevTools protocol: it recovers from a
//! restart and from a stalled stream, explains a full server and takes a slot once one frees.
//!
//! Chromium speaks the protocol over two pipes (`--remote-debugging-pipe`: it reads commands
//! on fd 3 and writes answers on fd 4, each a JSON text ended by a NUL), so the test needs no
//! WebSocket client. The page reports what it is doing in `data-*` attributes of its <main>,
//! which the test reads with `Runtime.evaluate`.
//!
//! A missing Chromium fails the test when CI=true and skips it with a note otherwise, as in
//! contrib.rs. Set PAGE_SCREENSHOTS=DIR to keep a screenshot of each state the page shows.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::util::{self, MjpegClient, Server, IO_TIMEOUT};

/// How soon the page must show moving frames again once camstream can serve them (issue 11).
const RECOVERY: Duration = Duration::from_secs(5);

const PATTERN: [&str; 4] = ["--source", "pattern", "--size", "320x240"];

/// A pipe (read end, write end), both closed on exec (std::io::pipe is newer than our MSRV).
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new, and owned by nothing else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// What the page says it is doing (the `data-*` attributes of its <main>).
#[derive(Debug, Clone, Default)]
struct Shown {
    state: String,
    frames: u64,
    reconnects: u64,
    status: String,
    health: String,
}

/// Headless Chromium with one tab, driven over the DevTools pipe; killed on drop.
pub(crate) struct Browser {
    child: Child,
    to_chromium: File,
    from_chromium: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Uncaught exceptions and unhandled rejections the page has had.
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and opens `url` in a tab 800x700 pixels large.
    pub(crate) fn open(chromium: &Path, url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (cmd_read, to_chromium) = pipe();
        let (answer_read, answer_write) = pipe();
        let mut cmd = Command::new(chromium);
        cmd.args(util::HEADLESS_CHROMIUM)
            .arg("--remote-debugging-pipe");
        cmd.arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let (r, w) = (cmd_read.as_raw_fd(), answer_write.as_raw_fd());
        // SAFETY: only async-signal-safe calls between fork and exec. Both ends are copied above
        // fd 9 first, so that neither is overwritten when the other becomes fd 3 or fd 4.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        drop((cmd_read, answer_write));
        let (tx, rx) = sync_channel(256);
        std::thread::spawn(move || {
            let mut answers = BufReader::new(answer_read);
            let mut msg = Vec::new();
            while answers.read_until(0, &mut msg).is_ok_and(|n| n > 0) {
                let value = serde_json::from_slice(msg.strip_suffix(&[0]).unwrap_or(&msg));
                if tx.send(value.expect("DevTools sent JSON")).is_err() {
                    break;
                }
                msg.clear();
            }
        });
        let mut b = Browser {
            child,
            to_chromium,
            from_chromium: rx,
            next_id: 0,
            session: String::new(),
            errors: Vec::new(),
            _profile: profile,
        };
        let targets = b.call("Target.getTargets", json!({}));
        let tab = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .unwrap_or_else(|| panic!("no tab in {targets}"))["targetId"]
            .clone();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": tab, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.call("Runtime.enable", json!({}));
        // --window-size counts the window's frame; this is the page's own viewport.
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 800, "height": 700, "deviceScaleFactor": 1, "mobile": false}),
        );
        b.call("Page.navigate", json!({ "url": url }));
        b
    }

    /// Sends a command (to the tab once attached) and returns its result.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = self.session.clone().into();
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to_chromium
            .write_all(&bytes)
            .expect("write to Chromium");
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .from_chromium
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer to {method} from Chromium: {e}"));
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
            if m["method"] == "Runtime.exceptionThrown" && self.errors.len() < 20 {
                self.errors
                    .push(m["params"]["exceptionDetails"].to_string());
            }
        }
    }

    /// What the page shows now; `None` before it has loaded.
    fn shown(&mut self) -> Option<Shown> {
        let expr = r#"(() => {
            const m = document.getElementById("main");
            return m && { state: m.dataset.state, frames: +m.dataset.frames,
                reconnects: +m.dataset.reconnects,
                status: document.getElementById("status").textContent,
                health: document.getElementById("health").dataset.health };
        })()"#;
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        let v = &r["result"]["value"];
        v.is_object().then(|| Shown {
            state: v["state"].as_str().unwrap_or_default().to_owned(),
            frames: v["frames"].as_u64().unwrap_or_default(),
            reconnects: v["reconnects"].as_u64().unwrap_or_default(),
            status: v["status"].as_str().unwrap_or_default().to_owned(),
            health: v["health"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Polls the page until `cond` holds, at most `limit`; returns what it then shows.
    fn wait_for(&mut self, what: &str, limit: Duration, cond: impl Fn(&Shown) -> bool) -> Shown {
        let deadline = Instant::now() + limit;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(s) = self.shown() {
                if cond(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the page did not show {what} within {limit:?}; it shows {last:?}");
    }

    /// A screenshot as a greyscale image (width, height, pixels); also kept as
    /// $PAGE_SCREENSHOTS/page-NAME.png if that is set.
    pub(crate) fn screenshot(&mut self, name: &str) -> (usize, usize, Vec<u8>) {
        if let Some(dir) = std::env::var_os("PAGE_SCREENSHOTS") {
            let png = self.capture("png");
            std::fs::write(PathBuf::from(dir).join(format!("page-{name}.png")), png).unwrap();
        }
        let jpeg = self.capture("jpeg");
        let img = camstream::encoder::decode_gray(&jpeg).expect("the screenshot is a JPEG");
        let mut pixels = Vec::with_capacity(img.width * img.height);
        for row in img.pixels.chunks(img.pitch).take(img.height) {
            pixels.extend_from_slice(&row[..img.width]);
        }
        (img.width, img.height, pixels)
    }

    fn capture(&mut self, format: &str) -> Vec<u8> {
        let r = self.call("Page.captureScreenshot", json!({ "format": format }));
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("base64")
    }

    pub(crate) fn assert_no_errors(&mut self) {
        self.call("Runtime.evaluate", json!({"expression": "0"})); // collects pending events
        assert!(self.errors.is_empty(), "the page threw: {:?}", self.errors);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill() on the process group of a child we started and have not reaped.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Contrast in the rows where the page shows the picture: a picture, not an empty box.
fn shows_a_picture(shot: &(usize, usize, Vec<u8>)) -> bool {
    let (w, h, px) = shot;
    let area = &px[..w * (*h).min(260)];
    let (min, max) = area
        .iter()
        .fold((255u8, 0u8), |(a, b), &p| (a.min(p), b.max(p)));
    max > min + 60
}

/// A viewer that holds a stream slot, reading every part, until dropped.
struct SlotHolder {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl SlotHolder {
    fn take(addr: SocketAddr) -> SlotHolder {
        let mut client = MjpegClient::open(addr, "/stream", 1)
            .unwrap_or_else(|r| panic!("the holder was refused: {}", r.text()));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // Reading keeps camstream from evicting the holder as a viewer that does not read.
        let reader = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) && client.next_part().is_some() {}
        });
        SlotHolder {
            stop,
            reader: Some(reader),
        }
    }
}

impl Drop for SlotHolder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join(); // the next part (at most a second away) ends the loop
        }
    }
}

#[test]
fn page_streams_again_after_a_restart() {
    let Some(chromium) = util::tool("chromium", "chromium") else {
        return;
    };
    let server = Server::start(&PATTERN);
    let addr = server.addr;
    let mut page = Browser::open(&chromium, &format!("http://{addr}/"));
    let live = page.wait_for("the stream", IO_TIMEOUT, |s| {
        s.state == "live" && s.frames >= 10 && s.health == "up"
    });
    let shot = page.screenshot("live");
    assert_eq!((shot.0, shot.1), (800, 700));
    assert!(shows_a_picture(&shot), "the live page shows no picture");

    drop(server); // SIGKILL: a crash, the harshest restart
    let down = page.wait_for("that the stream stopped", IO_TIMEOUT, |s| {
        s.state == "down" && s.health == "unknown"
    });
    assert!(down.status.contains("retrying in"), "{down:?}");
    assert!(down.frames >= live.frames);
    page.screenshot("down");

    let server = Server::start_on(addr, &PATTERN);
    let restarted = Instant::now();
    let back = page.wait_for("moving frames after the restart", RECOVERY, |s| {
        s.state == "live" && s.frames >= down.frames + 5
    });
    eprintln!(
        "frames moved again {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(back.reconnects, 1, "{back:?}");
    assert!(server.metric("camstream_viewers_accepted_total") >= 1.0);
    page.wait_for("the source as up", IO_TIMEOUT, |s| s.health == "up");
    page.assert_no_errors();
}

#[test]
fn page_reconnects_a_stream_that_stalls() {
    let Some(chromium) = util::tool("chromium", "chromium") else {
        return;
    };
    let server = Server::start(&PATTERN);
    let mut page = Browser::open(&chromium, &format!("http://{}/", server.addr));
    page.wait_for("the stream", IO_TIMEOUT, |s| s.state == "live");

    // A stopped process keeps its connections open and sends nothing: a stall, not an end.
    let pid = server.pid() as i32;
    // SAFETY: kill() on a child we own and have not reaped.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stale = page.wait_for("the stall", IO_TIMEOUT, |s| s.state == "stale");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(stale.status.contains("no new frame for"), "{stale:?}");
    page.screenshot("stale");

    let resumed = Instant::now();
    page.wait_for("moving frames after the stall", RECOVERY, |s| {
        s.state == "live" && s.frames >= stale.frames + 5 && s.reconnects >= 1
    });
    eprintln!("frames moved again {:?} after the stall", resumed.elapsed());
    page.assert_no_errors();
}

#[test]
fn page_explains_a_full_server_and_takes_the_slot_that_frees() {
    let Some(chromium) = util::tool("chromium", "chromium") else {
        return;
    };
    let server = Server::start(&[&PATTERN[..], &["--max-clients", "1"]].concat());
    let holder = SlotHolder::take(server.addr);
    let mut page = Browser::open(&chromium, &format!("http://{}/", server.addr));
    let full = page.wait_for("the reason it cannot stream", IO_TIMEOUT, |s| {
        s.state == "full"
    });
    assert_eq!(
        full.status, "all 1 stream slots are taken — retrying",
        "{full:?}"
    );
    assert_eq!(full.frames, 0);
    let shot = page.screenshot("full");
    assert!(
        shows_a_picture(&shot),
        "the full page shows no still picture"
    );

    drop(holder);
    let freed = Instant::now();
    page.wait_for("the stream in the freed slot", RECOVERY, |s| {
        s.state == "live" && s.frames >= 5
    });
    eprintln!(
        "the page streamed {:?} after the slot freed",
        freed.elapsed()
    );
    assert!(server.metric("camstream_viewers_rejected_total") >= 1.0);
    assert!(server.metric("camstream_viewers_accepted_total") >= 2.0);
    page.assert_no_errors();
}
