//! Issue #3 benchmark: many viewers on one `camstream serve`, side by side with the original
//! thread-pool server (`../shared/baseline/seed_server.py`).
//!
//! Run with `cargo build --release && cargo bench --bench load -- --viewers 1,10,100,500,1000 --seconds 10`.
//!
//! Options (after `--`): `--viewers LIST` (default 1,10,100,500,1000), `--seconds S` measured
//! window per level (default 10), `--repeat R` (default 3; the table shows the median of the R
//! runs), `--idle-seconds S` (default 10), `--probes N` 503 tries per level (default 20),
//! `--baseline-max N` (default 300: the baseline is run only at levels up to this), and
//! `--no-baseline`, `--client epoll|threads` (default epoll: one thread reads every viewer with
//! epoll; threads: a thread per viewer with blocking reads, as separate real clients behave),
//! `--bin PATH` (the camstream binary to run instead of `target/release/camstream`, e.g. to
//! compare two builds in one session), `--peer ustreamer` (also runs camstream and µStreamer on
//! the project's fake camera, tests/fakecam, with the same MJPEG frames passed through, and
//! prints them side by side with ratios; it installs nothing: `ustreamer` must be on PATH, a C
//! compiler must build the fake camera, and /dev/video88 must be creatable (root); otherwise
//! the peer is skipped with the reason), `--refusal-burst N` (also, once per repeat: N requests
//! at once on a camstream with `--max-clients 3`, and the time from connect() to the status
//! line of the refused ones), `--source pattern|file` (default pattern: camstream draws and
//! encodes every frame; file: camstream replays 300 ffmpeg testsrc JPEGs made here, passed
//! through without decoding or encoding, as from an MJPEG camera; needs ffmpeg).
//!
//! Everything stays on 127.0.0.1, every phase is bounded in time, and the servers started here
//! are killed at the end of their level (also on panic, by a drop guard).
//!
//! Per level: a fresh server is started (camstream with `--max-clients N`; the baseline with a
//! pool of N), N viewers connect at once and are read by one thread with mio (epoll), which
//! parses the multipart stream incrementally (part head -> Content-Length -> skip the body).
//! Once every viewer has its first frame (bounded wait) and 1 s more, a window of S seconds is
//! measured: frames per viewer, the server's CPU (/proc/PID/task/*/schedstat, ns; utime+stime
//! from /proc/PID/stat where schedstat is missing), RSS
//! (VmRSS), threads (/proc/PID/task), and latency = the client's wall clock when a part's last
//! byte is read minus the part's X-Timestamp (camstream's capture time). After the window, with
//! the N viewers still streaming, one more viewer is tried `--probes` times and the time from
//! connect() to the status line is taken (camstream must answer 503 at once).

mod common;
use common::{
    clk_tck, cpu_by_thread, cpu_seconds_schedstat, free_port, machine_cpu, median, percentile,
    raise_fd_limit, rss_mb, spawn_server, thread_count, Proc,
};

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

// ---------------------------------------------------------------- options

struct Opts {
    viewers: Vec<usize>,
    seconds: f64,
    repeat: usize,
    idle_seconds: f64,
    probes: usize,
    baseline_max: usize,
    no_baseline: bool,
    connect_timeout: Duration,
    client: ClientMode,
    bin: Option<PathBuf>,
    peer_ustreamer: bool,
    refusal_burst: usize,
    /// camstream replays an MJPEG file instead of drawing the pattern.
    file_source: bool,
}

/// How the viewers are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientMode {
    /// One thread reads every viewer with epoll (cheap for the client, so it competes little
    /// with the server for the cores).
    Epoll,
    /// A thread per viewer with blocking reads, as separate real clients behave: N threads
    /// wake per frame, which costs the client far more and competes with the server.
    Threads,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        viewers: vec![1, 10, 100, 500, 1000],
        seconds: 10.0,
        repeat: 3,
        idle_seconds: 10.0,
        probes: 20,
        baseline_max: 300,
        no_baseline: false,
        connect_timeout: Duration::from_secs(60),
        client: ClientMode::Epoll,
        bin: None,
        peer_ustreamer: false,
        refusal_burst: 0,
        file_source: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        let mut used = 2;
        match args[i].as_str() {
            "--viewers" => {
                o.viewers = val
                    .split(',')
                    .map(|s| s.trim().parse().expect("--viewers 1,10,100"))
                    .collect()
            }
            "--seconds" => o.seconds = val.parse().expect("--seconds S"),
            "--repeat" => o.repeat = val.parse().expect("--repeat N"),
            "--idle-seconds" => o.idle_seconds = val.parse().expect("--idle-seconds S"),
            "--probes" => o.probes = val.parse().expect("--probes N"),
            "--baseline-max" => o.baseline_max = val.parse().expect("--baseline-max N"),
            "--client" => {
                o.client = match val.as_str() {
                    "epoll" => ClientMode::Epoll,
                    "threads" => ClientMode::Threads,
                    _ => panic!("--client epoll|threads"),
                }
            }
            "--bin" => o.bin = Some(PathBuf::from(val)),
            "--source" => {
                assert!(val == "pattern" || val == "file", "--source pattern|file");
                o.file_source = val == "file";
            }
            "--refusal-burst" => o.refusal_burst = val.parse().expect("--refusal-burst N"),
            "--peer" => {
                assert!(val == "ustreamer", "--peer ustreamer");
                o.peer_ustreamer = true;
            }
            "--no-baseline" => {
                o.no_baseline = true;
                used = 1;
            }
            // `cargo bench` passes `--bench`; other unknown arguments are ignored as well.
            _ => used = 1,
        }
        i += used;
    }
    assert!(
        o.viewers.iter().all(|&n| (1..=5000).contains(&n)),
        "viewers must be 1..=5000"
    );
    assert!(
        o.seconds > 0.0 && o.seconds <= 600.0,
        "--seconds must be in (0, 600]"
    );
    assert!(
        o.idle_seconds > 0.0 && o.idle_seconds <= 600.0,
        "--idle-seconds must be in (0, 600]"
    );
    o.repeat = o.repeat.clamp(1, 20);
    o.probes = o.probes.clamp(1, 200);
    o
}

// ---------------------------------------------------------------- child processes

fn camstream_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/camstream")
}

/// The copy of the release binary that this run uses (others may rebuild target/ meanwhile).
static SERVER_BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
/// With `--source file`: the MJPEG file camstream's `file:` source replays.
static SOURCE_FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn baseline_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/baseline/seed_server.py")
}

/// Starts `camstream serve` on a free port; returns it with the bound address.
fn start_camstream(
    max_clients: usize,
    tmp: &Path,
    cam: Option<&FakeCam>,
) -> Result<(Proc, SocketAddr), String> {
    let log = tmp.join(format!("camstream-{max_clients}.stderr"));
    let bin = SERVER_BIN.get().cloned().unwrap_or_else(camstream_bin);
    let mut cmd = Command::new(&bin);
    match cam {
        None => match SOURCE_FILE.get() {
            Some(f) => cmd
                .args(["serve", "--source"])
                .arg(format!("file:{}", f.display())),
            None => cmd.args(["serve", "--source", "pattern"]),
        },
        Some(c) => c
            .env(&mut cmd)
            .args(["serve", "--source"])
            .arg(format!("camera:{}", c.dev.display()))
            .args(["--format", "mjpeg"]),
    };
    cmd.args(["--size", "640x480", "--fps", "30"]).args([
        "--listen",
        "127.0.0.1:0",
        "--max-clients",
        &max_clients.to_string(),
    ]);
    let (proc, addr, _) = spawn_server(cmd, log)?;
    Ok((proc, addr))
}

/// The project's fake V4L2 camera (tests/fakecam), built here, with its device node; the node
/// is removed on drop.
struct FakeCam {
    lib: PathBuf,
    dev: PathBuf,
}

/// The node's number: away from the ones the tests use (60..=73).
const FAKECAM_NODE: u32 = 88;

impl FakeCam {
    /// Builds libfakecam.so the way tests/fakecam.rs does and makes /dev/video88.
    fn make(tmp: &Path) -> Result<FakeCam, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakecam");
        let lib = tmp.join("libfakecam.so");
        let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&lib)
            .args(["state.c", "jpeg.c", "scene.c", "v4l2.c", "interpose.c"].map(|f| dir.join(f)))
            .args(["-ldl", "-lm", "-pthread"])
            .status()
            .map_err(|e| format!("cannot run cc to build the fake camera: {e}"))?;
        if !st.success() {
            return Err(format!(
                "building the fake camera in {} failed",
                dir.display()
            ));
        }
        let dev = PathBuf::from(format!("/dev/video{FAKECAM_NODE}"));
        if dev.exists() {
            return Err(format!("{} exists already; remove it first", dev.display()));
        }
        let c = std::ffi::CString::new(dev.to_str().unwrap()).unwrap();
        // SAFETY: mknod with a valid C string; makedev(81, n) is the V4L major.
        let rc = unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | 0o660,
                libc::makedev(81, FAKECAM_NODE),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(format!("cannot create {}: {e} (needs root)", dev.display()));
        }
        Ok(FakeCam { lib, dev })
    }

    /// Preloads the fake camera into `cmd`: one MJPEG 640x480 device, so that both servers
    /// pass the same generated frames through.
    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("LD_PRELOAD", &self.lib)
            .env("FAKECAM_DEVICES", &self.dev)
            .env("FAKECAM_FORMATS", "MJPG:640x480")
    }
}

impl Drop for FakeCam {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.dev);
    }
}

/// `ustreamer` on PATH, if there.
fn find_ustreamer() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("ustreamer"))
        .find(|p| p.is_file())
}

/// Seconds to add to a CLOCK_MONOTONIC time to get the wall clock: µStreamer's X-Timestamp is
/// its send time, so capture→receive uses its grab stamp (monotonic, like V4L2's).
static MONO_TO_UNIX: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

fn mono_to_unix() -> f64 {
    *MONO_TO_UNIX.get_or_init(|| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        unix_now() - (ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    })
}

/// Starts µStreamer on the fake camera (MJPEG, so it passes frames through) and waits until it
/// accepts connections. It has no viewer limit.
fn start_ustreamer(
    bin: &Path,
    cam: &FakeCam,
    n: usize,
    tmp: &Path,
) -> Result<(Proc, SocketAddr), String> {
    let port = free_port();
    let log = tmp.join(format!("ustreamer-{n}.stderr"));
    let child = cam
        .env(&mut Command::new(bin))
        .arg("--device")
        .arg(&cam.dev)
        .args(["--format", "MJPEG", "--resolution", "640x480"])
        .args(["--desired-fps", "30", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    wait_listening(
        Proc {
            child,
            stderr_log: log,
        },
        port,
        "ustreamer",
    )
}

/// Waits (at most 20 s) until a server started on `port` accepts connections.
fn wait_listening(mut proc: Proc, port: u16, what: &str) -> Result<(Proc, SocketAddr), String> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = proc.child.try_wait() {
            return Err(format!("{what} exited ({st}): {}", proc.stderr_tail()));
        }
        if StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok((proc, addr));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not start listening within 20 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn python_has_cv2() -> bool {
    Command::new("python3")
        .args(["-c", "import cv2, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Makes `--source file`'s input: 300 JPEGs of ffmpeg's testsrc at 640x480 (q:v 10), one after
/// the other, as `ffmpeg -f mjpeg` writes them; returns the file and its mean frame size.
fn make_mjpeg(tmp: &Path) -> Result<(PathBuf, f64), String> {
    let out = tmp.join("frames.mjpeg");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=640x480:rate=30")
        .args([
            "-frames:v",
            "300",
            "-c:v",
            "mjpeg",
            "-q:v",
            "10",
            "-f",
            "mjpeg",
        ])
        .arg(&out)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !status.success() {
        return Err("ffmpeg failed to make the MJPEG file".into());
    }
    let len = std::fs::metadata(&out).map_err(|e| e.to_string())?.len();
    Ok((out, len as f64 / 300.0))
}

/// Makes the baseline's input: a 640x480 30 fps MJPEG AVI of ffmpeg's testsrc, 10 s.
fn make_video(tmp: &Path) -> Result<PathBuf, String> {
    let out = tmp.join("pattern.avi");
    let status = Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x480:rate=30",
        ])
        .args(["-t", "10", "-c:v", "mjpeg", "-q:v", "5"])
        .arg(&out)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !status.success() {
        return Err("ffmpeg failed to make the test video".into());
    }
    Ok(out)
}

/// Starts the baseline with a pool of `pool` threads and waits until it accepts connections.
fn start_baseline(video: &Path, pool: usize, tmp: &Path) -> Result<(Proc, SocketAddr), String> {
    let port = free_port();
    let log = tmp.join(format!("baseline-{pool}.stderr"));
    let child = Command::new("python3")
        .arg(baseline_script())
        .arg(video)
        .args([port.to_string(), pool.to_string(), "30".into()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start the baseline: {e}"))?;
    wait_listening(
        Proc {
            child,
            stderr_log: log,
        },
        port,
        "the baseline",
    )
}

// ---------------------------------------------------------------- /proc readings

/// utime + stime of a process (all its threads), in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm)": f[0] is field 3 (state); utime is field 14, stime field 15.
    let ticks: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
        + f.get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
    ticks / clk_tck()
}

/// camstream's /state totals (blocking, short timeout); None if unavailable.
fn state_totals(addr: SocketAddr) -> Option<HashMap<String, f64>> {
    let mut s = StdStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let body = text.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let totals = v.get("totals")?.as_object()?;
    Some(
        totals
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect(),
    )
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

// ---------------------------------------------------------------- the viewers

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Connecting,
    RespHead,
    PartHead,
    Body,
}

struct Viewer {
    sock: Option<TcpStream>,
    st: St,
    /// A head split across reads, until its blank line arrives.
    head: Vec<u8>,
    body_left: usize,
    timestamp: Option<f64>,
    frames: u64,
    first_frame: Option<Instant>,
    /// When its connect() was called, and ms from then to the first byte of the response.
    connect_at: Instant,
    first_byte_ms: Option<f64>,
    error: Option<String>,
}

const MAX_HEAD: usize = 8192;
/// How long the initial burst of N connections gets before the missing ones are retried.
const BURST_WAIT: Duration = Duration::from_secs(5);
/// Viewers reconnected at a time after the burst.
const REFILL_BATCH: usize = 25;

fn find_blank_line(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

struct Recorder {
    measuring: bool,
    latencies_ms: Vec<f64>,
}

impl Viewer {
    fn new(sock: Option<TcpStream>) -> Viewer {
        Viewer {
            sock,
            st: St::Connecting,
            head: Vec::new(),
            body_left: 0,
            timestamp: None,
            frames: 0,
            first_frame: None,
            connect_at: Instant::now(),
            first_byte_ms: None,
            error: None,
        }
    }

    /// Consumes received bytes; `now` is the wall clock at the read.
    fn feed(&mut self, data: &[u8], now: f64, rec: &mut Recorder) -> Result<(), String> {
        if self.first_byte_ms.is_none() && !data.is_empty() {
            self.first_byte_ms = Some(self.connect_at.elapsed().as_secs_f64() * 1e3);
        }
        let mut i = 0;
        while i < data.len() {
            match self.st {
                St::Connecting => return Err("data before the request was sent".into()),
                St::Body => {
                    let take = self.body_left.min(data.len() - i);
                    self.body_left -= take;
                    i += take;
                    if self.body_left == 0 {
                        self.frame_done(now, rec);
                    }
                }
                St::RespHead | St::PartHead => {
                    let rest = &data[i..];
                    let (head_end, consumed) = if self.head.is_empty() {
                        // Common case: the whole head is in this read; no copy.
                        match find_blank_line(&rest[..rest.len().min(MAX_HEAD)]) {
                            Some(p) => (Some(p + 4), p + 4),
                            None => {
                                if rest.len() >= MAX_HEAD {
                                    return Err("no blank line within 8 KiB".into());
                                }
                                self.head.extend_from_slice(rest);
                                (None, rest.len())
                            }
                        }
                    } else {
                        let old = self.head.len();
                        let take = rest.len().min(MAX_HEAD - old);
                        self.head.extend_from_slice(&rest[..take]);
                        match find_blank_line(&self.head[old.saturating_sub(3)..]) {
                            Some(p) => {
                                let end = old.saturating_sub(3) + p + 4;
                                self.head.truncate(end);
                                (Some(end), end - old)
                            }
                            None if self.head.len() >= MAX_HEAD => {
                                return Err("no blank line within 8 KiB".into())
                            }
                            None => (None, take),
                        }
                    };
                    i += consumed;
                    if let Some(end) = head_end {
                        let head: Vec<u8> = if self.head.is_empty() {
                            rest[..end].to_vec()
                        } else {
                            std::mem::take(&mut self.head)
                        };
                        self.head.clear();
                        if let Err(e) = self.on_head(&head, now, rec) {
                            // A refusal: keep the first words of its body, which say why.
                            let body = &data[i..data.len().min(i + 48)];
                            let why = String::from_utf8_lossy(body);
                            let why = why.lines().next().unwrap_or("").trim();
                            return Err(if why.is_empty() {
                                e
                            } else {
                                format!("{e} ({why})")
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn on_head(&mut self, head: &[u8], now: f64, rec: &mut Recorder) -> Result<(), String> {
        let text = String::from_utf8_lossy(head);
        if self.st == St::RespHead {
            let status = text.split_whitespace().nth(1).unwrap_or("?");
            if status != "200" {
                return Err(format!("status {status}"));
            }
            self.st = St::PartHead;
            return Ok(());
        }
        let mut len = None;
        self.timestamp = None;
        for line in text.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("x-timestamp") {
                self.timestamp = self.timestamp.or(v.trim().parse::<f64>().ok());
            } else if k.eq_ignore_ascii_case("x-ustreamer-grab-timestamp") {
                // µStreamer's capture time (monotonic); its X-Timestamp is the send time.
                self.timestamp = v.trim().parse::<f64>().ok().map(|t| t + mono_to_unix());
            }
        }
        let Some(len) = len else {
            // "--\r\n" closing the multipart body, or a preamble: not a part.
            return if text.trim_end().ends_with("--") {
                Err("stream ended".into())
            } else {
                Ok(())
            };
        };
        self.body_left = len;
        self.st = St::Body;
        if len == 0 {
            self.frame_done(now, rec);
        }
        Ok(())
    }

    fn frame_done(&mut self, now: f64, rec: &mut Recorder) {
        self.frames += 1;
        if self.first_frame.is_none() {
            self.first_frame = Some(Instant::now());
        }
        if rec.measuring {
            if let Some(ts) = self.timestamp {
                rec.latencies_ms.push((now - ts) * 1e3);
            }
        }
        self.st = St::PartHead;
    }
}

struct Crowd {
    poll: Poll,
    events: Events,
    viewers: Vec<Viewer>,
    buf: Vec<u8>,
    request: Vec<u8>,
    rec: Recorder,
}

impl Crowd {
    /// Opens `n` connections at once (non-blocking connects in a loop). As a client would, each
    /// sends its request as soon as it is connected (on loopback, usually right after its
    /// connect()), and what has arrived is read between connects, so that the last connect is
    /// not what the first viewer's times measure.
    fn connect(addr: SocketAddr, n: usize, path: &str) -> io::Result<Crowd> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: camstream-load-bench\r\n\r\n"
        );
        let mut crowd = Crowd {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            viewers: Vec::with_capacity(n),
            buf: vec![0; 256 << 10],
            request: request.into_bytes(),
            rec: Recorder {
                measuring: false,
                latencies_ms: Vec::new(),
            },
        };
        for i in 0..n {
            let t = Instant::now();
            let mut v = match TcpStream::connect(addr) {
                Ok(s) => Viewer::new(Some(s)),
                Err(e) => {
                    let mut v = Viewer::new(None);
                    v.error = Some(format!("connect: {e}"));
                    v
                }
            };
            v.connect_at = t;
            if let Some(s) = v.sock.as_mut() {
                crowd.poll.registry().register(
                    s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
            }
            crowd.viewers.push(v);
            if let Err(why) = crowd.send_request(i) {
                crowd.kill(i, why);
            }
            crowd.pump_once(Duration::ZERO);
        }
        Ok(crowd)
    }

    fn kill(&mut self, i: usize, why: String) {
        let v = &mut self.viewers[i];
        if let Some(mut s) = v.sock.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        v.error.get_or_insert(why);
    }

    /// Handles socket events until `until`.
    fn pump(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            self.pump_once((until - now).min(Duration::from_millis(50)));
        }
    }

    /// One wait for socket events (at most `timeout`), and what they bring.
    fn pump_once(&mut self, timeout: Duration) {
        {
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    panic!("poll failed: {e}");
                }
            }
            let tokens: Vec<(usize, bool, bool)> = self
                .events
                .iter()
                .map(|e| {
                    (
                        e.token().0,
                        e.is_writable(),
                        e.is_readable() || e.is_read_closed(),
                    )
                })
                .collect();
            for (i, writable, readable) in tokens {
                if writable && self.viewers[i].st == St::Connecting {
                    if let Err(why) = self.send_request(i) {
                        self.kill(i, why);
                        continue;
                    }
                }
                if readable && self.viewers[i].st != St::Connecting {
                    self.read(i);
                }
            }
        }
    }

    fn send_request(&mut self, i: usize) -> Result<(), String> {
        let v = &mut self.viewers[i];
        let Some(s) = v.sock.as_mut() else {
            return Ok(());
        };
        if let Ok(Some(e)) | Err(e) = s.take_error() {
            return Err(format!("connect: {e}"));
        }
        match s.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()), // not yet
            Err(e) => return Err(format!("connect: {e}")),
        }
        // A request this small always fits in a fresh socket's buffer.
        match s.write(&self.request) {
            Ok(n) if n == self.request.len() => {}
            Ok(_) => return Err("short write of the request".into()),
            Err(e) => return Err(format!("write: {e}")),
        }
        v.st = St::RespHead;
        let _ = self
            .poll
            .registry()
            .reregister(s, Token(i), Interest::READABLE);
        Ok(())
    }

    fn read(&mut self, i: usize) {
        loop {
            let Some(s) = self.viewers[i].sock.as_mut() else {
                return;
            };
            match s.read(&mut self.buf) {
                Ok(0) => return self.kill(i, "closed by the server".into()),
                Ok(n) => {
                    let now = unix_now();
                    if let Err(why) = self.viewers[i].feed(&self.buf[..n], now, &mut self.rec) {
                        return self.kill(i, why);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.kill(i, format!("read: {e}")),
            }
        }
    }

    /// Every viewer streaming (has had a frame) or given up.
    fn all_settled(&self, which: &[usize]) -> bool {
        which
            .iter()
            .all(|&i| self.viewers[i].first_frame.is_some() || self.viewers[i].sock.is_none())
    }

    fn not_streaming(&self) -> Vec<usize> {
        (0..self.viewers.len())
            .filter(|&i| self.viewers[i].first_frame.is_none())
            .collect()
    }

    /// Replaces viewer `i` with a fresh connection.
    fn reconnect(&mut self, i: usize, addr: SocketAddr) {
        if let Some(mut s) = self.viewers[i].sock.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        let t = Instant::now();
        self.viewers[i] = match TcpStream::connect(addr) {
            Ok(s) => Viewer::new(Some(s)),
            Err(e) => {
                let mut v = Viewer::new(None);
                v.error = Some(format!("connect: {e}"));
                v
            }
        };
        self.viewers[i].connect_at = t;
        if let Some(s) = self.viewers[i].sock.as_mut() {
            let _ =
                self.poll
                    .registry()
                    .register(s, Token(i), Interest::READABLE | Interest::WRITABLE);
        }
    }

    /// Error messages of the viewers, counted.
    fn errors(&self) -> String {
        let mut errors: HashMap<String, usize> = HashMap::new();
        for v in &self.viewers {
            if let Some(e) = &v.error {
                *errors.entry(e.clone()).or_default() += 1;
            }
        }
        let mut v: Vec<String> = errors.iter().map(|(k, c)| format!("{c}x {k}")).collect();
        v.sort();
        v.join("; ")
    }

    /// What the viewers not streaming are doing, e.g. "3 connecting, 2 awaiting the response".
    fn stuck(&self) -> String {
        let alive = |st: St| {
            self.viewers
                .iter()
                .filter(|v| v.sock.is_some() && v.first_frame.is_none() && v.st == st)
                .count()
        };
        format!(
            "{} connecting, {} awaiting the response, {} awaiting the first frame",
            alive(St::Connecting),
            alive(St::RespHead),
            alive(St::PartHead) + alive(St::Body)
        )
    }

    fn frames(&self) -> Vec<u64> {
        self.viewers.iter().map(|v| v.frames).collect()
    }
}

/// The viewers of one level, read by either client design.
trait Viewers {
    /// Lets the viewers read until `until`.
    fn pump(&mut self, until: Instant);
    fn all_settled(&self, which: &[usize]) -> bool;
    fn not_streaming(&self) -> Vec<usize>;
    fn reconnect(&mut self, i: usize, addr: SocketAddr);
    fn errors(&self) -> String;
    fn stuck(&self) -> String;
    fn frames(&self) -> Vec<u64>;
    /// Viewer `i` still has its connection.
    fn connected(&self, i: usize) -> bool;
    fn set_measuring(&mut self, on: bool);
    fn take_latencies(&mut self) -> Vec<f64>;
    /// For every viewer with a response: ms from its (latest) connect() to the response's
    /// first byte.
    fn first_bytes_ms(&self) -> Vec<f64>;
}

impl Viewers for Crowd {
    fn pump(&mut self, until: Instant) {
        Crowd::pump(self, until)
    }
    fn all_settled(&self, which: &[usize]) -> bool {
        Crowd::all_settled(self, which)
    }
    fn not_streaming(&self) -> Vec<usize> {
        Crowd::not_streaming(self)
    }
    fn reconnect(&mut self, i: usize, addr: SocketAddr) {
        Crowd::reconnect(self, i, addr)
    }
    fn errors(&self) -> String {
        Crowd::errors(self)
    }
    fn stuck(&self) -> String {
        Crowd::stuck(self)
    }
    fn frames(&self) -> Vec<u64> {
        Crowd::frames(self)
    }
    fn connected(&self, i: usize) -> bool {
        self.viewers[i].sock.is_some()
    }
    fn set_measuring(&mut self, on: bool) {
        self.rec.measuring = on;
    }
    fn take_latencies(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.rec.latencies_ms)
    }
    fn first_bytes_ms(&self) -> Vec<f64> {
        self.viewers
            .iter()
            .filter_map(|v| v.first_byte_ms)
            .collect()
    }
}

/// What a viewer thread shows the bench.
struct Seen {
    st: St,
    frames: u64,
    streaming: bool,
    connected: bool,
    error: Option<String>,
    latencies_ms: Vec<f64>,
    first_byte_ms: Option<f64>,
    /// Set by the bench: the thread stops (a reconnect replaced it, or the level ended).
    cancel: bool,
}

/// A thread per viewer, each with a blocking socket and the same multipart parser as [`Crowd`].
/// Each thread publishes what it saw after every read under its own (uncontended) lock.
struct Threads {
    seen: Vec<std::sync::Arc<std::sync::Mutex<Seen>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    measuring: std::sync::Arc<std::sync::atomic::AtomicBool>,
    request: std::sync::Arc<[u8]>,
}

/// How long a viewer thread blocks in a read before it looks at its cancel flag.
const THREAD_READ_TIMEOUT: Duration = Duration::from_millis(100);

impl Threads {
    fn connect(addr: SocketAddr, n: usize, path: &str) -> io::Result<Threads> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: camstream-load-bench\r\n\r\n"
        );
        let mut t = Threads {
            seen: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
            measuring: Default::default(),
            request: request.into_bytes().into(),
        };
        for _ in 0..n {
            let seen = t.spawn(addr)?;
            t.seen.push(seen);
        }
        Ok(t)
    }

    fn spawn(&mut self, addr: SocketAddr) -> io::Result<std::sync::Arc<std::sync::Mutex<Seen>>> {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen {
            st: St::Connecting,
            frames: 0,
            streaming: false,
            connected: true,
            error: None,
            latencies_ms: Vec::new(),
            first_byte_ms: None,
            cancel: false,
        }));
        let (s, m, req) = (seen.clone(), self.measuring.clone(), self.request.clone());
        let h = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || viewer_thread(addr, &req, &s, &m))?;
        self.threads.push(h);
        Ok(seen)
    }

    fn each<T>(&self, f: impl Fn(&Seen) -> T) -> Vec<T> {
        self.seen
            .iter()
            .map(|s| f(&s.lock().unwrap_or_else(|e| e.into_inner())))
            .collect()
    }
}

/// One viewer on its own thread until cancelled or the connection ends.
fn viewer_thread(
    addr: SocketAddr,
    request: &[u8],
    seen: &std::sync::Mutex<Seen>,
    measuring: &std::sync::atomic::AtomicBool,
) {
    let lock = || seen.lock().unwrap_or_else(|e| e.into_inner());
    let fail = |why: String| {
        let mut g = lock();
        g.connected = false;
        g.error.get_or_insert(why);
    };
    let connect_at = Instant::now();
    let mut s = match StdStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => return fail(format!("connect: {e}")),
    };
    if let Err(e) = s
        .set_read_timeout(Some(THREAD_READ_TIMEOUT))
        .and_then(|_| s.write_all(request))
    {
        return fail(format!("write: {e}"));
    }
    let mut v = Viewer::new(None);
    v.connect_at = connect_at;
    v.st = St::RespHead;
    lock().st = St::RespHead;
    let mut rec = Recorder {
        measuring: false,
        latencies_ms: Vec::new(),
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        rec.measuring = measuring.load(std::sync::atomic::Ordering::Relaxed);
        let result = match s.read(&mut buf) {
            Ok(0) => Err("closed by the server".to_string()),
            Ok(n) => v.feed(&buf[..n], unix_now(), &mut rec),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        };
        let mut g = lock();
        g.st = v.st;
        g.frames = v.frames;
        g.streaming = v.first_frame.is_some();
        g.first_byte_ms = v.first_byte_ms;
        g.latencies_ms.append(&mut rec.latencies_ms);
        if let Err(why) = result {
            g.connected = false;
            g.error.get_or_insert(why);
            return;
        }
        if g.cancel {
            g.connected = false;
            return;
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        for s in &self.seen {
            s.lock().unwrap_or_else(|e| e.into_inner()).cancel = true;
        }
        // Each thread looks at its flag at least every THREAD_READ_TIMEOUT.
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

impl Viewers for Threads {
    fn pump(&mut self, until: Instant) {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    fn all_settled(&self, which: &[usize]) -> bool {
        which.iter().all(|&i| {
            let g = self.seen[i].lock().unwrap_or_else(|e| e.into_inner());
            g.streaming || !g.connected
        })
    }
    fn not_streaming(&self) -> Vec<usize> {
        let s = self.each(|g| g.streaming);
        (0..s.len()).filter(|&i| !s[i]).collect()
    }
    fn reconnect(&mut self, i: usize, addr: SocketAddr) {
        self.seen[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel = true;
        match self.spawn(addr) {
            Ok(s) => self.seen[i] = s,
            Err(e) => {
                let mut g = self.seen[i].lock().unwrap_or_else(|e| e.into_inner());
                g.error = Some(format!("cannot start a viewer thread: {e}"));
            }
        }
    }
    fn errors(&self) -> String {
        let mut errors: HashMap<String, usize> = HashMap::new();
        for e in self.each(|g| g.error.clone()).into_iter().flatten() {
            *errors.entry(e).or_default() += 1;
        }
        let mut v: Vec<String> = errors.iter().map(|(k, c)| format!("{c}x {k}")).collect();
        v.sort();
        v.join("; ")
    }
    fn stuck(&self) -> String {
        let st = self.each(|g| (g.connected && !g.streaming).then_some(g.st));
        let alive = |want: St| st.iter().filter(|s| **s == Some(want)).count();
        format!(
            "{} connecting, {} awaiting the response, {} awaiting the first frame",
            alive(St::Connecting),
            alive(St::RespHead),
            alive(St::PartHead) + alive(St::Body)
        )
    }
    fn frames(&self) -> Vec<u64> {
        self.each(|g| g.frames)
    }
    fn connected(&self, i: usize) -> bool {
        self.seen[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connected
    }
    fn set_measuring(&mut self, on: bool) {
        self.measuring
            .store(on, std::sync::atomic::Ordering::Relaxed);
        if on {
            // Latencies from before the window are not the window's.
            let _ = self.take_latencies();
        }
    }
    fn take_latencies(&mut self) -> Vec<f64> {
        let mut all = Vec::new();
        for s in &self.seen {
            all.append(&mut s.lock().unwrap_or_else(|e| e.into_inner()).latencies_ms);
        }
        all
    }
    fn first_bytes_ms(&self) -> Vec<f64> {
        self.each(|g| g.first_byte_ms)
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Tries one more viewer `n` times: (status code if any, ms from connect() to the status line,
/// whether Retry-After was sent).
fn probe(
    addr: SocketAddr,
    path: &str,
    n: usize,
    timeout: Duration,
) -> Vec<(Option<u16>, f64, bool)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let result = (|| -> io::Result<(Option<u16>, f64, bool)> {
            let mut s = StdStream::connect_timeout(&addr, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
            let mut got = Vec::new();
            let mut chunk = [0u8; 2048];
            let mut status_at = None;
            loop {
                match s.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(k) => got.extend_from_slice(&chunk[..k]),
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::TimedOut =>
                    {
                        break
                    }
                    Err(e) => return Err(e),
                }
                if status_at.is_none() && got.windows(2).any(|w| w == b"\r\n") {
                    status_at = Some(t.elapsed().as_secs_f64() * 1e3);
                }
                if find_blank_line(&got).is_some() {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&got);
            let code = status_at.and_then(|_| text.split_whitespace().nth(1)?.parse().ok());
            let retry = text
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("retry-after:"));
            Ok((
                code,
                status_at.unwrap_or(t.elapsed().as_secs_f64() * 1e3),
                retry,
            ))
        })();
        out.push(result.unwrap_or((None, t.elapsed().as_secs_f64() * 1e3, false)));
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

/// N stream requests at once: non-blocking connects in a loop, each request sent as soon as
/// its socket connects (on loopback, right after its connect()), and answers read between
/// connects, so that a connection's time is not the loop's. For each: the status code (None:
/// no status line within 10 s) and the ms from its connect() to its status line.
fn refusal_burst(addr: SocketAddr, n: usize) -> io::Result<Vec<(Option<u16>, f64)>> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let request = format!("GET /stream HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut conns: Vec<BurstConn> = Vec::with_capacity(n);
    let mut left = n;
    for i in 0..n {
        let t = Instant::now();
        let mut sock = TcpStream::connect(addr)?;
        let sent = sock.peer_addr().is_ok() && sock.write(request.as_bytes()).is_ok();
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        conns.push(BurstConn {
            sock,
            t,
            got: Vec::new(),
            sent,
            result: None,
        });
        poll.poll(&mut events, Some(Duration::ZERO))?;
        left -= burst_events(&events, &mut conns, &request);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while left > 0 && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        left -= burst_events(&events, &mut conns, &request);
    }
    Ok(conns
        .into_iter()
        .map(|c| c.result.unwrap_or((None, f64::NAN)))
        .collect())
}

/// One connection of a refusal burst.
struct BurstConn {
    sock: TcpStream,
    /// When its connect() was called.
    t: Instant,
    got: Vec<u8>,
    /// The request is out.
    sent: bool,
    /// Status code (None: closed without one) and ms from connect() to the status line.
    result: Option<(Option<u16>, f64)>,
}

/// Sends requests and reads status lines for `events`; how many connections got their answer.
fn burst_events(events: &Events, conns: &mut [BurstConn], request: &str) -> usize {
    let mut done = 0;
    for ev in events.iter() {
        let c = &mut conns[ev.token().0];
        if c.result.is_some() {
            continue;
        }
        if ev.is_writable() && !c.sent && c.sock.peer_addr().is_ok() {
            c.sent = c.sock.write(request.as_bytes()).is_ok();
        }
        let mut chunk = [0u8; 1024];
        let mut closed = false;
        loop {
            match c.sock.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(k) => c.got.extend_from_slice(&chunk[..k]),
                Err(_) => break,
            }
        }
        if c.got.windows(2).any(|w| w == b"\r\n") || closed {
            let text = String::from_utf8_lossy(&c.got);
            let code = text.split_whitespace().nth(1).and_then(|x| x.parse().ok());
            c.result = Some((code, c.t.elapsed().as_secs_f64() * 1e3));
            done += 1;
        }
    }
    done
}

/// One refusal burst against a fresh camstream with `--max-clients 3`, printed.
fn run_refusal_burst(n: usize, rep: usize, tmp: &Path) -> Result<(), String> {
    let (server, addr) = start_camstream(3, tmp, None)?;
    std::thread::sleep(Duration::from_millis(300));
    let me = std::process::id();
    let fine =
        |p: u32, s: &str| cpu_seconds_schedstat(&p.to_string()).unwrap_or_else(|| cpu_seconds(s));
    let (s0, c0, t0) = (
        fine(server.pid(), &server.pid().to_string()),
        fine(me, "self"),
        Instant::now(),
    );
    let got = refusal_burst(addr, n).map_err(|e| format!("refusal burst: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let (s1, c1) = (
        fine(server.pid(), &server.pid().to_string()),
        fine(me, "self"),
    );
    drop(server);
    let mut ms: Vec<f64> = got
        .iter()
        .filter(|g| g.0 == Some(503))
        .map(|g| g.1)
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let ok = got.iter().filter(|g| g.0 == Some(200)).count();
    let none = got.iter().filter(|g| g.0.is_none()).count();
    println!(
        "  run {rep} refusal burst: {n} requests at once on --max-clients 3: {}x 503 (ms from connect() to the status line: p50 {}, p99 {}, max {}), {ok}x 200, {none} without a status; over the burst's {:.0} ms: server CPU {:.1} ms, client CPU {:.1} ms",
        ms.len(),
        f2o(percentile(&ms, 0.50)),
        f2o(percentile(&ms, 0.99)),
        f2o(ms.last().copied()),
        secs * 1e3,
        (s1 - s0) * 1e3,
        (c1 - c0) * 1e3,
    );
    Ok(())
}

// ---------------------------------------------------------------- one level

const ALL_KINDS: [Kind; 4] = [
    Kind::Camstream,
    Kind::Baseline,
    Kind::CamstreamCam,
    Kind::Ustreamer,
];

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Camstream,
    Baseline,
    /// camstream on the fake camera (--peer ustreamer).
    CamstreamCam,
    /// µStreamer on the same fake camera (--peer ustreamer).
    Ustreamer,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Camstream => "camstream",
            Kind::Baseline => "baseline",
            Kind::CamstreamCam => "camstream (fakecam)",
            Kind::Ustreamer => "ustreamer (fakecam)",
        }
    }
}

#[derive(Clone, Default)]
struct Run {
    viewers: usize,
    streaming: usize,
    fps_min: f64,
    fps_median: f64,
    at_29: usize,
    cpu_pct: f64,
    us_per_frame: f64,
    /// The server's CPU µs per delivered frame by thread name, largest first.
    by_thread: String,
    rss_mb: f64,
    hwm_mb: f64,
    threads: usize,
    lat_p50: Option<f64>,
    lat_p99: Option<f64>,
    all_streaming_ms: Option<f64>,
    probe_median_ms: Option<f64>,
    probe_max_ms: Option<f64>,
    probe_summary: String,
    client_cpu_pct: f64,
    /// CPU used by everything else on the machine (other processes, interrupts), % of one core.
    others_cpu_pct: f64,
    steal_pct: f64,
    src_fps: Option<f64>,
    skipped_per_s: Option<f64>,
    errors: String,
    burst_streaming: usize,
    burst_ms: Option<f64>,
    /// ms from each burst viewer's connect() to its response's first byte: p50, p99, max.
    burst_first_byte: Option<(f64, f64, f64)>,
    burst_detail: String,
    not_streaming: String,
}

/// What the servers run on: the baseline's video, the fake camera and µStreamer for the peer.
struct Inputs<'a> {
    video: Option<&'a Path>,
    cam: Option<&'a FakeCam>,
    ustreamer: Option<&'a Path>,
}

/// Starts the server of `kind` for `n` viewers.
fn start(kind: Kind, n: usize, tmp: &Path, ins: &Inputs) -> Result<(Proc, SocketAddr), String> {
    let missing = || format!("{} cannot run here", kind.name());
    match kind {
        Kind::Camstream => start_camstream(n, tmp, None),
        Kind::Baseline => start_baseline(ins.video.ok_or_else(missing)?, n, tmp),
        Kind::CamstreamCam => start_camstream(n, tmp, Some(ins.cam.ok_or_else(missing)?)),
        Kind::Ustreamer => start_ustreamer(
            ins.ustreamer.ok_or_else(missing)?,
            ins.cam.ok_or_else(missing)?,
            n,
            tmp,
        ),
    }
}

fn run_level(kind: Kind, n: usize, o: &Opts, tmp: &Path, ins: &Inputs) -> Result<Run, String> {
    let (server, addr) = start(kind, n, tmp, ins)?;
    let is_camstream = matches!(kind, Kind::Camstream | Kind::CamstreamCam);
    let pid = server.pid();
    let pid_s = pid.to_string();
    let path = if kind == Kind::Baseline {
        "/"
    } else {
        "/stream"
    };
    // Let the source start (the baseline opens its video and starts its sender thread).
    std::thread::sleep(Duration::from_millis(if is_camstream { 300 } else { 1000 }));

    // All N at once (a burst), then whoever is not streaming after BURST_WAIT (refused, or stuck
    // in SYN retries) is closed and reconnected in batches, so that the window measures N.
    let t_connect = Instant::now();
    let mut crowd: Box<dyn Viewers> = match o.client {
        ClientMode::Epoll => Crowd::connect(addr, n, path).map(|c| Box::new(c) as Box<dyn Viewers>),
        ClientMode::Threads => {
            Threads::connect(addr, n, path).map(|c| Box::new(c) as Box<dyn Viewers>)
        }
    }
    .map_err(|e| format!("cannot open viewers: {e}"))?;
    let everyone: Vec<usize> = (0..n).collect();
    let burst_end = t_connect + BURST_WAIT;
    while !crowd.all_settled(&everyone) && Instant::now() < burst_end {
        crowd.pump(Instant::now() + Duration::from_millis(10));
    }
    let burst_streaming = n - crowd.not_streaming().len();
    let burst_ms =
        (crowd.not_streaming().is_empty()).then(|| t_connect.elapsed().as_secs_f64() * 1e3);
    let burst_first_byte = {
        let mut v = crowd.first_bytes_ms();
        v.sort_by(|a, b| a.total_cmp(b));
        match (percentile(&v, 0.5), percentile(&v, 0.99), v.last()) {
            (Some(a), Some(b), Some(&c)) => Some((a, b, c)),
            _ => None,
        }
    };
    let burst_detail = {
        let e = crowd.errors();
        let stuck = crowd
            .not_streaming()
            .iter()
            .filter(|&&i| crowd.connected(i))
            .count();
        match (e.is_empty(), stuck) {
            (true, 0) => String::new(),
            (false, 0) => e,
            (true, _) => crowd.stuck(),
            (false, _) => format!("{e}; {}", crowd.stuck()),
        }
    };
    let deadline = t_connect + o.connect_timeout;
    loop {
        let missing = crowd.not_streaming();
        if missing.is_empty() || Instant::now() >= deadline {
            break;
        }
        let batch: Vec<usize> = missing.into_iter().take(REFILL_BATCH).collect();
        for &i in &batch {
            crowd.reconnect(i, addr);
        }
        let batch_end = (Instant::now() + BURST_WAIT).min(deadline);
        while !crowd.all_settled(&batch) && Instant::now() < batch_end {
            crowd.pump(Instant::now() + Duration::from_millis(10));
        }
    }
    let all_streaming_ms = crowd
        .not_streaming()
        .is_empty()
        .then(|| t_connect.elapsed().as_secs_f64() * 1e3);
    let not_streaming = if crowd.not_streaming().is_empty() {
        String::new()
    } else {
        format!(
            "{} not streaming before the window: {}; {}",
            crowd.not_streaming().len(),
            crowd.errors(),
            crowd.stuck()
        )
    };
    crowd.pump(Instant::now() + Duration::from_secs(1));

    // The measured window.
    let state0 = if is_camstream {
        state_totals(addr)
    } else {
        None
    };
    let frames0 = crowd.frames();
    // ns-precision CPU (schedstat) where the kernel offers it: 10 ms ticks are coarse next to
    // a few µs per frame.
    let fine =
        |p: u32, s: &str| cpu_seconds_schedstat(&p.to_string()).unwrap_or_else(|| cpu_seconds(s));
    let me = std::process::id();
    // One read of the server's threads per moment gives both the total and the split.
    let server_cpu = |by: &std::collections::BTreeMap<String, f64>| {
        if by.is_empty() {
            cpu_seconds(&pid_s)
        } else {
            by.values().sum()
        }
    };
    let threads0 = cpu_by_thread(&pid_s);
    let (cpu0, me0, mach0) = (server_cpu(&threads0), fine(me, "self"), machine_cpu());
    let t0 = Instant::now();
    crowd.set_measuring(true);
    crowd.pump(t0 + Duration::from_secs_f64(o.seconds));
    crowd.set_measuring(false);
    let secs = t0.elapsed().as_secs_f64();
    let threads1 = cpu_by_thread(&pid_s);
    let (cpu1, me1, mach1) = (server_cpu(&threads1), fine(me, "self"), machine_cpu());
    let frames1 = crowd.frames();
    let (rss, hwm) = rss_mb(pid);
    let nthreads = thread_count(pid);
    let state1 = if is_camstream {
        state_totals(addr)
    } else {
        None
    };

    // One viewer too many, while the N viewers keep streaming.
    let (probes, probe_timeout) = if is_camstream {
        (o.probes, Duration::from_secs(2))
    } else {
        // The baseline queues viewer N+1 silently and µStreamer has no limit; one try shows it.
        (1, Duration::from_secs(2))
    };
    let probe_path = path.to_string();
    let prober = std::thread::spawn(move || probe(addr, &probe_path, probes, probe_timeout));
    let probe_deadline = Instant::now() + Duration::from_secs(10) + probe_timeout * probes as u32;
    while !prober.is_finished() && Instant::now() < probe_deadline {
        crowd.pump(Instant::now() + Duration::from_millis(20));
    }
    let probe_results = if prober.is_finished() {
        prober.join().unwrap_or_default()
    } else {
        Vec::new()
    };

    let mut fps: Vec<f64> = frames0
        .iter()
        .zip(&frames1)
        .map(|(a, b)| (b - a) as f64 / secs)
        .collect();
    let delivered: u64 = frames0.iter().zip(&frames1).map(|(a, b)| b - a).sum();
    let streaming = frames0.iter().zip(&frames1).filter(|(a, b)| b > a).count();
    let at_29 = fps.iter().filter(|&&f| f >= 29.0).count();
    let fps_min = fps.iter().cloned().fold(f64::INFINITY, f64::min);
    let fps_median = median(&mut fps);
    let cpu = cpu1 - cpu0;
    let by_thread = {
        let mut v: Vec<(f64, &String)> = threads1
            .iter()
            .map(|(name, s)| (s - threads0.get(name).copied().unwrap_or(0.0), name))
            .filter(|(s, _)| *s > 0.0)
            .collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        v.iter()
            .map(|(s, name)| format!("{name} {:.2}", s / delivered.max(1) as f64 * 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lat = crowd.take_latencies();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());

    let mut probe_ms: Vec<f64> = probe_results.iter().map(|p| p.1).collect();
    let probe_max = probe_ms.iter().cloned().fold(f64::NAN, f64::max);
    let mut codes: HashMap<String, usize> = HashMap::new();
    for p in &probe_results {
        let key = match p.0 {
            Some(c) if p.2 => format!("{c}+Retry-After"),
            Some(c) => c.to_string(),
            None => format!("no answer in {} s", probe_timeout.as_secs()),
        };
        *codes.entry(key).or_default() += 1;
    }
    let answered = probe_results.iter().any(|p| p.0.is_some());
    let errors = crowd.errors();
    let src = match (&state0, &state1) {
        (Some(a), Some(b)) => {
            let d = |k: &str| {
                (b.get(k).copied().unwrap_or(0.0) - a.get(k).copied().unwrap_or(0.0)) / secs
            };
            Some((d("frames_captured"), d("frames_skipped")))
        }
        _ => None,
    };
    drop(crowd);
    drop(server);

    Ok(Run {
        viewers: n,
        streaming,
        fps_min,
        fps_median,
        at_29,
        cpu_pct: cpu / secs * 100.0,
        us_per_frame: if delivered > 0 {
            cpu / delivered as f64 * 1e6
        } else {
            f64::NAN
        },
        by_thread,
        rss_mb: rss,
        hwm_mb: hwm,
        threads: nthreads,
        lat_p50: percentile(&lat, 0.50),
        lat_p99: percentile(&lat, 0.99),
        all_streaming_ms,
        probe_median_ms: answered.then(|| median(&mut probe_ms)),
        probe_max_ms: answered.then_some(probe_max),
        probe_summary: {
            let mut v: Vec<String> = codes.iter().map(|(k, c)| format!("{c}x {k}")).collect();
            v.sort();
            v.join(", ")
        },
        client_cpu_pct: (me1 - me0) / secs * 100.0,
        others_cpu_pct: ((mach1.0 - mach0.0) - (cpu1 - cpu0) - (me1 - me0)) / secs * 100.0,
        steal_pct: (mach1.1 - mach0.1) / secs * 100.0,
        src_fps: src.map(|s| s.0),
        skipped_per_s: src.map(|s| s.1),
        errors,
        burst_streaming,
        burst_ms,
        burst_first_byte,
        burst_detail,
        not_streaming,
    })
}

/// CPU % (from ticks, and from schedstat if available), RSS and threads of a server with its
/// source running and nobody watching.
struct Idle {
    cpu_pct: f64,
    cpu_pct_fine: Option<f64>,
    rss_mb: f64,
    threads: usize,
}

fn run_idle(kind: Kind, o: &Opts, tmp: &Path, ins: &Inputs) -> Result<Idle, String> {
    let (server, _addr) = start(kind, if kind == Kind::Baseline { 1 } else { 10 }, tmp, ins)?;
    let pid = server.pid();
    std::thread::sleep(Duration::from_secs(2));
    let (c0, f0) = (
        cpu_seconds(&pid.to_string()),
        cpu_seconds_schedstat(&pid.to_string()),
    );
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(o.idle_seconds));
    let (c1, f1) = (
        cpu_seconds(&pid.to_string()),
        cpu_seconds_schedstat(&pid.to_string()),
    );
    let secs = t0.elapsed().as_secs_f64();
    let (rss, _) = rss_mb(pid);
    let th = thread_count(pid);
    drop(server);
    Ok(Idle {
        cpu_pct: (c1 - c0) / secs * 100.0,
        cpu_pct_fine: f0.zip(f1).map(|(a, b)| (b - a) / secs * 100.0),
        rss_mb: rss,
        threads: th,
    })
}

// ---------------------------------------------------------------- report

fn f1(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "n/a".into()
    }
}

fn f2o(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map(|x| format!("{x:.2}"))
        .unwrap_or_else(|| "n/a".into())
}

fn print_run(kind: Kind, rep: usize, r: &Run) {
    println!(
        "  run {rep} {} {:>4} viewers: streaming {}, fps min {:.1} median {:.1}, >=29fps {}, CPU {:.1} % ({} us/frame), RSS {:.1} MB, threads {}, latency p50 {} p99 {} ms, all streaming after {} ms, probe {} (median {} ms), src {} fps, skipped {}/s, client CPU {:.0} %, others {:.0} %, steal {:.0} %{}",
        kind.name(),
        r.viewers,
        r.streaming,
        r.fps_min,
        r.fps_median,
        r.at_29,
        r.cpu_pct,
        f1(r.us_per_frame),
        r.rss_mb,
        r.threads,
        f2o(r.lat_p50),
        f2o(r.lat_p99),
        f2o(r.all_streaming_ms),
        r.probe_summary,
        f2o(r.probe_median_ms),
        f2o(r.src_fps),
        f2o(r.skipped_per_s),
        r.client_cpu_pct,
        r.others_cpu_pct,
        r.steal_pct,
        if r.errors.is_empty() { String::new() } else { format!(", viewer errors: {}", r.errors) }
    );
    println!(
        "      server CPU us per delivered frame, by thread: {}",
        r.by_thread
    );
    println!(
        "      burst of {} at once: {} streaming within {} s{}{}{}{}",
        r.viewers,
        r.burst_streaming,
        BURST_WAIT.as_secs(),
        r.burst_ms
            .map(|ms| format!(" (all after {ms:.0} ms)"))
            .unwrap_or_default(),
        r.burst_first_byte
            .map(|(a, b, c)| format!(
                "; ms from connect() to the first byte: p50 {a:.2}, p99 {b:.2}, max {c:.2}"
            ))
            .unwrap_or_default(),
        if r.burst_detail.is_empty() {
            String::new()
        } else {
            format!("; the others: {}", r.burst_detail)
        },
        if r.not_streaming.is_empty() {
            String::new()
        } else {
            format!("; {}", r.not_streaming)
        }
    );
}

fn med_of(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = runs
        .iter()
        .filter_map(&f)
        .filter(|x| x.is_finite())
        .collect();
    (!v.is_empty()).then(|| median(&mut v))
}

fn main() {
    let o = parse_opts();
    let bin = o.bin.clone().unwrap_or_else(camstream_bin);
    if !bin.exists() {
        eprintln!(
            "error: {} is missing: build it first with `cargo build --release` (this bench runs the release binary)",
            bin.display()
        );
        std::process::exit(2);
    }
    let fd_limit = raise_fd_limit(8192);
    let need = o.viewers.iter().max().copied().unwrap_or(0) as u64 + 256;
    if fd_limit < need {
        eprintln!("warning: RLIMIT_NOFILE is {fd_limit}, below the {need} this run needs");
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let copy = tmp.path().join("camstream");
    std::fs::copy(&bin, &copy).expect("copy the release binary");
    let _ = SERVER_BIN.set(copy);
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| format!("{} s since the epoch", d.as_secs()))
        .unwrap_or_default();

    // The baseline, if it can run here.
    let mut video = None;
    let mut baseline_note = String::new();
    if o.no_baseline {
        baseline_note = "baseline skipped (--no-baseline)".into();
    } else if !baseline_script().exists() {
        baseline_note = format!(
            "baseline skipped: {} not found",
            baseline_script().display()
        );
    } else if !python_has_cv2() {
        baseline_note = "baseline skipped: python3 cannot import cv2 and numpy (pip install opencv-python-headless numpy)".into();
    } else {
        match make_video(tmp.path()) {
            Ok(v) => video = Some(v),
            Err(e) => baseline_note = format!("baseline skipped: {e}"),
        }
    }
    let baseline_levels: Vec<usize> = if video.is_some() {
        o.viewers
            .iter()
            .copied()
            .filter(|&n| n <= o.baseline_max)
            .collect()
    } else {
        Vec::new()
    };

    let mut source_note = "--source pattern --size 640x480".to_string();
    if o.file_source {
        match make_mjpeg(tmp.path()) {
            Ok((f, mean)) => {
                source_note = format!(
                    "--source file:frames.mjpeg (300 ffmpeg testsrc JPEGs, 640x480, mean {:.1} KB, passed through)",
                    mean / 1e3
                );
                let _ = SOURCE_FILE.set(f);
            }
            Err(e) => {
                eprintln!("error: --source file: {e}");
                std::process::exit(2);
            }
        }
    }

    println!("camstream load benchmark (issue #3)");
    println!("camstream binary: {} (modified {built}; a copy is run, so rebuilds meanwhile do not matter)", bin.display());
    println!(
        "camstream: {} serve {source_note} --fps 30 --listen 127.0.0.1:0 --max-clients N",
        bin.display()
    );
    if video.is_some() {
        println!(
            "baseline: python3 ../shared/baseline/seed_server.py pattern.avi PORT N 30 (pool N = viewers; input: ffmpeg testsrc 640x480 30 fps, 10 s, MJPEG q:v 5, looped; it re-encodes at JPEG q40); levels {baseline_levels:?} (--baseline-max {})",
            o.baseline_max
        );
    } else {
        println!("{baseline_note}");
    }
    // The peer: µStreamer and camstream on the same fake camera.
    let mut peer_note = String::new();
    let (mut cam, mut ustreamer) = (None, None);
    if o.peer_ustreamer {
        match find_ustreamer() {
            None => {
                peer_note = "peer skipped: ustreamer is not on PATH (Debian: apt-get install ustreamer; this bench installs nothing)".into()
            }
            Some(u) => match FakeCam::make(tmp.path()) {
                Ok(c) => {
                    let version = Command::new(&u)
                        .arg("--version")
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                        .unwrap_or_default();
                    println!(
                        "peer: {} {version} --device {} --format MJPEG --resolution 640x480 --desired-fps 30, and camstream serve --source camera:{} --format mjpeg, both on tests/fakecam (LD_PRELOAD, MJPG:640x480); µStreamer's latency from its X-UStreamer-Grab-Timestamp (monotonic)",
                        u.display(),
                        c.dev.display(),
                        c.dev.display()
                    );
                    cam = Some(c);
                    ustreamer = Some(u);
                }
                Err(e) => peer_note = format!("peer skipped: {e}"),
            },
        }
        if !peer_note.is_empty() {
            println!("{peer_note}");
        }
    }
    let ins = Inputs {
        video: video.as_deref(),
        cam: cam.as_ref(),
        ustreamer: ustreamer.as_deref(),
    };
    println!(
        "levels {:?}, window {} s, {} repeats (median shown), idle window {} s, {} probes per level, RLIMIT_NOFILE {fd_limit}",
        o.viewers, o.seconds, o.repeat, o.idle_seconds, o.probes
    );
    println!(
        "client: {}, incremental multipart parsing; viewers connect all at once",
        match o.client {
            ClientMode::Epoll => "--client epoll (one thread, mio/epoll)",
            ClientMode::Threads => "--client threads (a thread per viewer, blocking reads)",
        }
    );

    let mut idle: HashMap<Kind, Vec<Idle>> = HashMap::new();
    let mut runs: HashMap<(Kind, usize), Vec<Run>> = HashMap::new();
    let mut failures: Vec<String> = Vec::new();
    for rep in 1..=o.repeat {
        if o.refusal_burst > 0 {
            if let Err(e) = run_refusal_burst(o.refusal_burst, rep, tmp.path()) {
                failures.push(format!("run {rep} refusal burst: {e}"));
            }
        }
        let mut kinds = vec![Kind::Camstream];
        if video.is_some() {
            kinds.push(Kind::Baseline);
        }
        if ustreamer.is_some() {
            kinds.extend([Kind::CamstreamCam, Kind::Ustreamer]);
        }
        for &kind in &kinds {
            match run_idle(kind, &o, tmp.path(), &ins) {
                Ok(r) => {
                    println!(
                        "  run {rep} {} idle (source running, no viewers): CPU {:.2} % (schedstat {} %), RSS {:.1} MB, threads {}",
                        kind.name(),
                        r.cpu_pct,
                        r.cpu_pct_fine.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into()),
                        r.rss_mb,
                        r.threads
                    );
                    idle.entry(kind).or_default().push(r);
                }
                Err(e) => failures.push(format!("run {rep} {} idle: {e}", kind.name())),
            }
        }
        for &n in &o.viewers {
            for &kind in &kinds {
                if kind == Kind::Baseline && !baseline_levels.contains(&n) {
                    continue;
                }
                match run_level(kind, n, &o, tmp.path(), &ins) {
                    Ok(r) => {
                        print_run(kind, rep, &r);
                        runs.entry((kind, n)).or_default().push(r);
                    }
                    Err(e) => {
                        println!("  run {rep} {} {n} viewers: FAILED: {e}", kind.name());
                        failures.push(format!("run {rep} {} {n} viewers: {e}", kind.name()));
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ summary
    println!();
    println!(
        "Idle (source running, no viewers), median of {} runs:",
        o.repeat
    );
    println!(
        "| server | CPU % (/proc/PID/stat ticks) | CPU % (schedstat, ns) | RSS MB | threads |"
    );
    println!("|---|---|---|---|---|");
    for kind in ALL_KINDS {
        if let Some(v) = idle.get(&kind) {
            let m = |f: &dyn Fn(&Idle) -> Option<f64>| {
                let mut x: Vec<f64> = v.iter().filter_map(f).collect();
                (!x.is_empty()).then(|| median(&mut x))
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                kind.name(),
                f2o(m(&|r| Some(r.cpu_pct))),
                m(&|r| r.cpu_pct_fine)
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "n/a".into()),
                f1(m(&|r| Some(r.rss_mb)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.threads as f64)).unwrap_or(f64::NAN))
            );
        }
    }
    println!();
    println!(
        "Per level, median of {} runs (fps min = slowest viewer in a run):",
        o.repeat
    );
    println!("| server | viewers | streaming | fps min | fps median | viewers >=29 fps | server CPU % | CPU us/frame | RSS MB | peak RSS MB | threads | latency p50 ms | latency p99 ms | burst: streaming within 5 s | all streaming after ms | burst first byte p99 ms | N+1: status | N+1: ms to status | source fps | skipped/s | client CPU % | others CPU % |");
    println!(
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for &n in &o.viewers {
        for kind in ALL_KINDS {
            let Some(rs) = runs.get(&(kind, n)) else {
                continue;
            };
            let m = |f: &dyn Fn(&Run) -> Option<f64>| med_of(rs, f);
            println!(
                "| {} | {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                kind.name(),
                f1(m(&|r| Some(r.streaming as f64)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.fps_min)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.fps_median)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.at_29 as f64)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.cpu_pct)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.us_per_frame)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.rss_mb)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.hwm_mb)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.threads as f64)).unwrap_or(f64::NAN)),
                f2o(m(&|r| r.lat_p50)),
                f2o(m(&|r| r.lat_p99)),
                f1(m(&|r| Some(r.burst_streaming as f64)).unwrap_or(f64::NAN)),
                f2o(m(&|r| r.all_streaming_ms)),
                f2o(m(&|r| r.burst_first_byte.map(|b| b.1))),
                rs.last().map(|r| r.probe_summary.clone()).unwrap_or_default(),
                f2o(m(&|r| r.probe_median_ms)),
                f2o(m(&|r| r.src_fps)),
                f2o(m(&|r| r.skipped_per_s)),
                f1(m(&|r| Some(r.client_cpu_pct)).unwrap_or(f64::NAN)),
                f1(m(&|r| Some(r.others_cpu_pct)).unwrap_or(f64::NAN)),
            );
        }
    }

    if ustreamer.is_some() {
        println!();
        println!("camstream against µStreamer on the same fake camera (ratio = camstream / µStreamer; below 1 is camstream ahead):");
        println!("| viewers | CPU us/frame camstream / ustreamer | ratio | latency p99 ms camstream / ustreamer | ratio | fps min camstream / ustreamer | RSS MB camstream / ustreamer | client CPU % (camstream run / ustreamer run) |");
        println!("|---|---|---|---|---|---|---|---|");
        for &n in &o.viewers {
            let (Some(c), Some(u)) = (
                runs.get(&(Kind::CamstreamCam, n)),
                runs.get(&(Kind::Ustreamer, n)),
            ) else {
                continue;
            };
            let m = |rs: &[Run], f: &dyn Fn(&Run) -> Option<f64>| med_of(rs, f);
            let (cu, uu) = (
                m(c, &|r| Some(r.us_per_frame)),
                m(u, &|r| Some(r.us_per_frame)),
            );
            let (cl, ul) = (m(c, &|r| r.lat_p99), m(u, &|r| r.lat_p99));
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "n/a".into(),
            };
            println!(
                "| {n} | {} / {} | {} | {} / {} | {} | {} / {} | {} / {} | {} / {} |",
                f2o(cu),
                f2o(uu),
                ratio(cu, uu),
                f2o(cl),
                f2o(ul),
                ratio(cl, ul),
                f1(m(c, &|r| Some(r.fps_min)).unwrap_or(f64::NAN)),
                f1(m(u, &|r| Some(r.fps_min)).unwrap_or(f64::NAN)),
                f1(m(c, &|r| Some(r.rss_mb)).unwrap_or(f64::NAN)),
                f1(m(u, &|r| Some(r.rss_mb)).unwrap_or(f64::NAN)),
                f1(m(c, &|r| Some(r.client_cpu_pct)).unwrap_or(f64::NAN)),
                f1(m(u, &|r| Some(r.client_cpu_pct)).unwrap_or(f64::NAN)),
            );
        }
    }

    // ------------------------------------------------------------ targets
    println!();
    println!("Targets (issue #3):");
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    for &n in &o.viewers {
        if let Some(rs) = runs.get(&(Kind::Camstream, n)) {
            let med_min = med_of(rs, |r| Some(r.fps_min)).unwrap_or(f64::NAN);
            let worst = rs.iter().map(|r| r.fps_min).fold(f64::INFINITY, f64::min);
            println!(
                "  every viewer >= 29 fps at {n}: {} (slowest viewer: median over runs {med_min:.1} fps, worst run {worst:.1} fps)",
                verdict(med_min >= 29.0)
            );
        }
    }
    for &n in &baseline_levels {
        if let (Some(c), Some(b)) = (
            runs.get(&(Kind::Camstream, n)),
            runs.get(&(Kind::Baseline, n)),
        ) {
            let cu = med_of(c, |r| Some(r.us_per_frame)).unwrap_or(f64::NAN);
            let bu = med_of(b, |r| Some(r.us_per_frame)).unwrap_or(f64::NAN);
            println!(
                "  CPU per delivered frame <= 1/10 of the baseline's at {n}: {} (camstream {cu:.1} us, baseline {bu:.1} us, ratio 1/{:.1})",
                verdict(cu * 10.0 <= bu),
                bu / cu
            );
        }
    }
    if let Some(rs) = runs.get(&(Kind::Camstream, 100)) {
        let p99 = med_of(rs, |r| r.lat_p99).unwrap_or(f64::NAN);
        println!(
            "  latency p99 <= 5 ms at 100 viewers: {} ({p99:.2} ms)",
            verdict(p99 <= 5.0)
        );
    }
    for &n in &o.viewers {
        if let Some(rs) = runs.get(&(Kind::Camstream, n)) {
            let ms = med_of(rs, |r| r.probe_median_ms).unwrap_or(f64::NAN);
            let max = rs
                .iter()
                .filter_map(|r| r.probe_max_ms)
                .fold(f64::NAN, f64::max);
            let all503 = rs.iter().all(|r| {
                !r.probe_summary.is_empty()
                    && r.probe_summary.split(", ").all(|s| s.contains(" 503"))
            });
            println!(
                "  503 within 5 ms with {n} slots taken: {} (median {ms:.2} ms, slowest try {max:.2} ms; {})",
                verdict(ms <= 5.0 && all503),
                if all503 { "every try got 503 + Retry-After".to_string() } else { format!("answers: {}", rs.last().map(|r| r.probe_summary.as_str()).unwrap_or("")) }
            );
        }
    }
    if let Some(v) = idle.get(&Kind::Camstream) {
        let mut x: Vec<f64> = v.iter().map(|r| r.cpu_pct).collect();
        let c = median(&mut x);
        let mut y: Vec<f64> = v.iter().filter_map(|r| r.cpu_pct_fine).collect();
        let fine = (!y.is_empty()).then(|| median(&mut y));
        println!(
            "  idle CPU (source running, no viewers) <= 0.5 %: {} ({c:.2} % from ticks{})",
            verdict(fine.unwrap_or(c) <= 0.5),
            fine.map(|f| format!(", {f:.3} % from schedstat"))
                .unwrap_or_default()
        );
    }
    if !failures.is_empty() {
        println!();
        println!("Failures:");
        for f in &failures {
            println!("  {f}");
        }
    }
    if !baseline_note.is_empty() && video.is_none() {
        println!("note: {baseline_note}");
    }
    if !peer_note.is_empty() {
        println!("note: {peer_note}");
    }
}
