//! Issue 9 benchmark: does `camstream serve`, at default settings, keep serving everyone else
//! while some clients flood it?
//!
//! Run with `cargo build --release && cargo bench --bench flood` (idle and slow-head floods) and
//! `cargo bench --bench flood -- --mode bad-password`.
//!
//! Options (after `--`): `--mode idle|bad-password` (default idle); `--bin PATH` (default
//! target/release/camstream; another build can be measured the same way); `--seconds S`
//! measured window per scenario (default 10); `--connections N` flood size (default 10000);
//! `--addresses N` client addresses of the "many" floods (default 200, 127.0.0.2 and up);
//! `--scenarios LIST` of idle-one, idle-many, slow-one, slow-many, fat-one, fat-many (default
//! all); `--loops N`
//! bad-password loops (default 150); `--extra "FLAGS"` more flags for `serve` (default none).
//!
//! Every scenario starts a fresh `camstream serve --source pattern --listen 127.0.0.1:0` (plus
//! `--auth-file` in bad-password mode) and measures three phases: before (no flood), during,
//! after (the flood closed, once the server's connection gauge and descriptors are back). In
//! each phase one client on 127.0.0.1 probes in turn, every 20 ms: `GET /healthz`, `GET
//! /metrics`, and a new viewer (`GET /stream`, until its first JPEG part has fully arrived: time
//! to first frame); bad-password mode probes `/healthz`, `/metrics` and `/snapshot` with the
//! right password instead. A probe's time runs from connect() to the end of the response (or of
//! the first part), including any attempts the server closed before answering (counted as
//! "again"; a browser sends those again too). RSS (VmRSS) and threads of the server are sampled
//! every 100 ms.
//!
//! Floods: "idle" connections send nothing; "slow" ones send a partial request line and one
//! more header byte every second; "fat" ones send a partial head of 15,000 bytes (just under the
//! 16 KiB a head may have) and then one more byte every second. "one" opens them all from 127.0.0.1 (the probes' address),
//! "many" spreads them over `--addresses` addresses. The flood client (one thread, mio) keeps
//! `--connections` sockets open and reopens each one the server closes, at most 512 connects in
//! flight. Bad-password: `--loops` threads each send `GET /snapshot` with a wrong Basic password,
//! one request after another, each from a new 127.x.y.z address (as from an attacker with many
//! addresses), so the per-address backoff never answers for the password verifier.
//!
//! Everything stays on 127.0.0.1, every loop is bounded in time, every socket has a timeout, and
//! each server is killed at the end of its scenario (also on panic, by a drop guard).

mod common;
use common::{fd_count, percentile, raise_fd_limit, rss_mb, spawn_server, thread_count, Proc};

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

// ---------------------------------------------------------------- options

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    BadPassword,
}

struct Opts {
    mode: Mode,
    bin: PathBuf,
    seconds: f64,
    connections: usize,
    addresses: usize,
    scenarios: Vec<Scenario>,
    loops: usize,
    /// More flags for `serve` (default: none, i.e. default settings).
    extra: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hold {
    Idle,
    Slow,
    /// A partial head of 15,000 bytes, then one more byte every second: the most a head may
    /// hold in memory without being refused as too large.
    Fat,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    hold: Hold,
    many: bool,
}

impl Scenario {
    fn name(&self) -> &'static str {
        match (self.hold, self.many) {
            (Hold::Idle, false) => "idle-one",
            (Hold::Idle, true) => "idle-many",
            (Hold::Slow, false) => "slow-one",
            (Hold::Slow, true) => "slow-many",
            (Hold::Fat, false) => "fat-one",
            (Hold::Fat, true) => "fat-many",
        }
    }
}

const SCENARIOS: [Scenario; 6] = [
    Scenario {
        hold: Hold::Idle,
        many: false,
    },
    Scenario {
        hold: Hold::Idle,
        many: true,
    },
    Scenario {
        hold: Hold::Slow,
        many: false,
    },
    Scenario {
        hold: Hold::Slow,
        many: true,
    },
    Scenario {
        hold: Hold::Fat,
        many: false,
    },
    Scenario {
        hold: Hold::Fat,
        many: true,
    },
];

fn parse_opts() -> Opts {
    let mut o = Opts {
        mode: Mode::Idle,
        bin: Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/camstream"),
        seconds: 10.0,
        connections: 10_000,
        addresses: 200,
        scenarios: SCENARIOS.to_vec(),
        loops: 150,
        extra: Vec::new(),
    };
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        o.bin = Path::new(&dir).join("release/camstream");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        let mut used = 2;
        match args[i].as_str() {
            "--mode" => {
                o.mode = match val.as_str() {
                    "idle" => Mode::Idle,
                    "bad-password" => Mode::BadPassword,
                    _ => panic!("--mode idle|bad-password"),
                }
            }
            "--bin" => o.bin = PathBuf::from(val),
            "--seconds" => o.seconds = val.parse().expect("--seconds S"),
            "--connections" => o.connections = val.parse().expect("--connections N"),
            "--addresses" => o.addresses = val.parse().expect("--addresses N"),
            "--loops" => o.loops = val.parse().expect("--loops N"),
            "--extra" => o.extra = val.split_whitespace().map(str::to_string).collect(),
            "--scenarios" => {
                o.scenarios = val
                    .split(',')
                    .map(|n| {
                        *SCENARIOS.iter().find(|s| s.name() == n.trim()).expect(
                            "--scenarios idle-one,idle-many,slow-one,slow-many,fat-one,fat-many",
                        )
                    })
                    .collect()
            }
            // `cargo bench` passes `--bench`; other unknown arguments are ignored as well.
            _ => used = 1,
        }
        i += used;
    }
    assert!(
        o.seconds > 0.0 && o.seconds <= 600.0,
        "--seconds must be in (0, 600]"
    );
    assert!(
        (1..=50_000).contains(&o.connections),
        "--connections must be 1..=50000"
    );
    assert!(
        (1..=250).contains(&o.addresses),
        "--addresses must be 1..=250"
    );
    assert!((1..=1000).contains(&o.loops), "--loops must be 1..=1000");
    o
}

// ---------------------------------------------------------------- the server

struct Started {
    proc: Proc,
    addr: SocketAddr,
    banner: String,
}

/// Starts `BIN serve --source pattern --listen 127.0.0.1:0 EXTRA` and waits for its first line
/// and a 200 from /healthz (the source delivers).
fn start_server(bin: &Path, extra: &[&str], tmp: &Path, tag: &str) -> Result<Started, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--source", "pattern", "--listen", "127.0.0.1:0"])
        .args(extra);
    let (proc, addr, banner) = spawn_server(cmd, tmp.join(format!("camstream-{tag}.stderr")))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(addr, "/healthz", None).map(|r| r.0) != Some(200) {
        if Instant::now() > deadline {
            return Err("/healthz did not answer 200 within 15 s".into());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(Started { proc, addr, banner })
}

// ---------------------------------------------------------------- probes

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A blocking socket from `from` to `addr`, with timeouts.
fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> io::Result<StdStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((from, 0)).into())?;
    sock.connect_timeout(&addr.into(), Duration::from_secs(2))?;
    let s: StdStream = sock.into();
    s.set_read_timeout(Some(PROBE_TIMEOUT))?;
    s.set_write_timeout(Some(PROBE_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One GET: `Some((status, body))`, or `None` if the connection ended without a response.
fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> Option<(u16, Vec<u8>)> {
    get_from(LO, addr, path, auth)
}

/// [`get`] from the local address `from`.
fn get_from(
    from: Ipv4Addr,
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> Option<(u16, Vec<u8>)> {
    let mut s = connect_from(from, addr).ok()?;
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let end = find(&buf, b"\r\n\r\n")?;
    let status = std::str::from_utf8(&buf[..end])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, buf[end + 4..].to_vec()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A new viewer: the status of `/stream` and, for 200, whether the first part arrived whole.
fn first_frame(addr: SocketAddr) -> Option<u16> {
    let mut s = connect_from(LO, addr).ok()?;
    let _ = s.write_all(b"GET /stream HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut buf = Vec::with_capacity(64 << 10);
    let mut chunk = [0u8; 16 << 10];
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while Instant::now() < deadline {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(head_end) = find(&buf, b"\r\n\r\n") else {
            continue;
        };
        let status: u16 = std::str::from_utf8(&buf[..head_end])
            .ok()?
            .split(' ')
            .nth(1)?
            .parse()
            .ok()?;
        if status != 200 {
            return Some(status);
        }
        // "--boundary\r\n" then the part head, then Content-Length bytes.
        let body = &buf[head_end + 4..];
        let Some(part_end) = find(body, b"\r\n\r\n") else {
            continue;
        };
        let part_head = String::from_utf8_lossy(&body[..part_end]).to_ascii_lowercase();
        let len: usize = part_head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())?;
        if body.len() >= part_end + 4 + len {
            return Some(200);
        }
    }
    None
}

/// Timings of one kind of probe in one phase.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    /// Answered, but not 200.
    failed: usize,
    /// Attempts closed before any answer, sent again.
    again: usize,
    /// Gave up after 20 attempts or 5 s.
    lost: usize,
}

impl Series {
    /// Runs `attempt` until it answers (at most 20 times), timing the whole.
    fn probe(&mut self, mut attempt: impl FnMut() -> Option<u16>) {
        let t = Instant::now();
        for i in 0..20 {
            if let Some(status) = attempt() {
                if status == 200 {
                    self.ms.push(t.elapsed().as_secs_f64() * 1e3);
                } else {
                    self.failed += 1;
                }
                return;
            }
            if i == 0 {
                self.again += 1;
            }
            if t.elapsed() > PROBE_TIMEOUT {
                break;
            }
        }
        self.lost += 1;
    }

    fn cell(&mut self) -> String {
        self.ms.sort_by(|a, b| a.total_cmp(b));
        let p = |q| percentile(&self.ms, q).map_or("-".into(), |v| format!("{v:.1}"));
        let mut extra = Vec::new();
        if self.failed > 0 {
            extra.push(format!("{} non-200", self.failed));
        }
        if self.lost > 0 {
            extra.push(format!("{} lost", self.lost));
        }
        if self.again > 0 {
            extra.push(format!("{} again", self.again));
        }
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(" ({})", extra.join(", "))
        };
        format!("{} / {} of {}{extra}", p(0.5), p(0.99), self.ms.len())
    }
}

/// Samples RSS and threads of `pid` every 100 ms until stopped: (max RSS MB, max threads).
fn sampler(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<(f64, usize)> {
    thread::spawn(move || {
        let (mut rss, mut th) = (0.0f64, 0usize);
        let deadline = Instant::now() + Duration::from_secs(700);
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            rss = rss.max(rss_mb(pid).0);
            th = th.max(thread_count(pid));
            thread::sleep(Duration::from_millis(100));
        }
        (rss, th)
    })
}

/// What one phase measured.
struct Phase {
    name: &'static str,
    cells: Vec<String>,
    rss_max: f64,
    threads_max: usize,
    /// The most connections the server reported holding (from the /metrics probes).
    held_max: f64,
}

/// One attempt of a probe: the status (`None`: closed before any answer) and, from /metrics, the
/// connections the server holds.
type Probe<'a> = &'a mut dyn FnMut() -> Option<(u16, Option<f64>)>;

/// Probes for `seconds`: each kind in turn, one every 20 ms.
fn measure(name: &'static str, pid: u32, seconds: f64, probes: &mut [Probe]) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let samp = sampler(pid, Arc::clone(&stop));
    let mut series: Vec<Series> = probes.iter().map(|_| Series::default()).collect();
    let mut held_max = 0.0f64;
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        for (f, s) in probes.iter_mut().zip(series.iter_mut()) {
            s.probe(|| {
                f().map(|(status, held)| {
                    if let Some(h) = held {
                        held_max = held_max.max(h);
                    }
                    status
                })
            });
            thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::Release);
    let (rss_max, threads_max) = samp.join().unwrap();
    Phase {
        name,
        cells: series.iter_mut().map(Series::cell).collect(),
        rss_max,
        threads_max,
        held_max,
    }
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(body: &[u8], name: &str) -> Option<f64> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------- the idle / slow flood

/// Counters the flood client shares.
#[derive(Default)]
struct FloodStats {
    opened: AtomicUsize,
    closed_by_server: AtomicUsize,
    connect_failed: AtomicUsize,
    /// Sockets established right now.
    held: AtomicUsize,
}

/// Keeps `n` connections open from `from` (round robin), reopening each one the server closes,
/// until `stop` (or `limit`).
fn flood(
    addr: SocketAddr,
    from: Vec<Ipv4Addr>,
    n: usize,
    hold: Hold,
    stop: Arc<AtomicBool>,
    stats: Arc<FloodStats>,
    limit: Duration,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        const MAX_CONNECTING: usize = 512;
        #[derive(PartialEq)]
        enum St {
            Free,
            Connecting,
            Held,
        }
        struct Conn {
            sock: Option<TcpStream>,
            st: St,
            last_write: Instant,
        }
        let mut poll = Poll::new().expect("poll");
        let mut events = Events::with_capacity(4096);
        let mut conns: Vec<Conn> = (0..n)
            .map(|_| Conn {
                sock: None,
                st: St::Free,
                last_write: Instant::now(),
            })
            .collect();
        let mut free: Vec<usize> = (0..n).rev().collect();
        let mut connecting = 0usize;
        let mut next_trickle = Instant::now();
        let mut fat_head = b"GET /stream HTTP/1.1\r\nX-Fat: ".to_vec();
        fat_head.resize(15_000, b'a');
        let deadline = Instant::now() + limit;
        let open = |i: usize| -> io::Result<TcpStream> {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            sock.set_nonblocking(true)?;
            sock.bind(&SocketAddr::from((from[i % from.len()], 0)).into())?;
            match sock.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(TcpStream::from_std(sock.into()))
        };
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            while connecting < MAX_CONNECTING {
                let Some(i) = free.pop() else { break };
                match open(i) {
                    Ok(mut s) => {
                        if poll
                            .registry()
                            .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                            .is_err()
                        {
                            free.push(i);
                            break;
                        }
                        conns[i].sock = Some(s);
                        conns[i].st = St::Connecting;
                        connecting += 1;
                    }
                    Err(_) => {
                        stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                        free.push(i);
                        break;
                    }
                }
            }
            let _ = poll.poll(&mut events, Some(Duration::from_millis(10)));
            for ev in events.iter() {
                let i = ev.token().0;
                let c = &mut conns[i];
                let Some(s) = c.sock.as_mut() else { continue };
                let mut gone = ev.is_error();
                if c.st == St::Connecting && (ev.is_writable() || ev.is_error()) {
                    connecting -= 1;
                    if s.take_error().ok().flatten().is_none() && s.peer_addr().is_ok() {
                        c.st = St::Held;
                        stats.opened.fetch_add(1, Ordering::Relaxed);
                        stats.held.fetch_add(1, Ordering::Relaxed);
                        match hold {
                            Hold::Idle => {}
                            Hold::Slow => {
                                let _ = s.write(b"GET /stream HTTP/1.1\r\nX-Slow: a");
                            }
                            Hold::Fat => {
                                let _ = s.write(&fat_head);
                            }
                        }
                        c.last_write = Instant::now();
                    } else {
                        stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                        gone = true;
                    }
                }
                if c.st == St::Held && (ev.is_readable() || ev.is_read_closed()) {
                    let mut b = [0u8; 1024];
                    loop {
                        match s.read(&mut b) {
                            // Closed, or answered (408): either way the server let it go.
                            Ok(_) => {
                                gone = true;
                                break;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => {
                                gone = true;
                                break;
                            }
                        }
                    }
                    if gone {
                        stats.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if gone {
                    if c.st == St::Held {
                        stats.held.fetch_sub(1, Ordering::Relaxed);
                    }
                    if let Some(mut s) = c.sock.take() {
                        let _ = poll.registry().deregister(&mut s);
                    }
                    c.st = St::Free;
                    free.push(i);
                }
            }
            if hold != Hold::Idle && Instant::now() >= next_trickle {
                next_trickle = Instant::now() + Duration::from_millis(100);
                for c in conns.iter_mut().filter(|c| c.st == St::Held) {
                    if c.last_write.elapsed() >= Duration::from_secs(1) {
                        if let Some(s) = c.sock.as_mut() {
                            let _ = s.write(b"a");
                        }
                        c.last_write = Instant::now();
                    }
                }
            }
        }
        // Dropping the sockets closes them.
        stats.held.store(0, Ordering::Relaxed);
    })
}

fn run_scenario(sc: Scenario, o: &Opts, tmp: &Path) -> Result<(), String> {
    let extra: Vec<&str> = o.extra.iter().map(String::as_str).collect();
    let srv = start_server(&o.bin, &extra, tmp, sc.name())?;
    let (addr, pid) = (srv.addr, srv.proc.pid());
    println!("\n### {} ({} connections)\n", sc.name(), o.connections);
    println!("server: {}", srv.banner.trim());

    let conns = |body: &[u8]| metric(body, "camstream_connections");
    let mut healthz = || get(addr, "/healthz", None).map(|(s, _)| (s, None));
    let mut metrics = || get(addr, "/metrics", None).map(|(s, b)| (s, conns(&b)));
    let mut viewer = || first_frame(addr).map(|s| (s, None));

    let base_fds = fd_count(pid);
    let before = measure(
        "before",
        pid,
        (o.seconds / 2.0).max(1.0),
        &mut [&mut healthz, &mut metrics, &mut viewer],
    );

    let from: Vec<Ipv4Addr> = if sc.many {
        (0..o.addresses)
            .map(|i| Ipv4Addr::new(127, 0, 0, (2 + i) as u8))
            .collect()
    } else {
        vec![LO]
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(FloodStats::default());
    let limit = Duration::from_secs_f64(o.seconds + 120.0);
    let t0 = Instant::now();
    let flooder = flood(
        addr,
        from,
        o.connections,
        sc.hold,
        Arc::clone(&stop),
        Arc::clone(&stats),
        limit,
    );
    // Ramp up: every socket opened once (at most 60 s).
    while stats.opened.load(Ordering::Relaxed) < o.connections
        && t0.elapsed() < Duration::from_secs(60)
    {
        thread::sleep(Duration::from_millis(50));
    }
    let ramp = t0.elapsed().as_secs_f64();
    let opened0 = stats.opened.load(Ordering::Relaxed);
    let during = measure(
        "during",
        pid,
        o.seconds,
        &mut [&mut healthz, &mut metrics, &mut viewer],
    );
    let held_client = stats.held.load(Ordering::Relaxed);
    let churn = (stats.opened.load(Ordering::Relaxed) - opened0) as f64 / o.seconds;
    stop.store(true, Ordering::Release);
    flooder.join().map_err(|_| "the flood thread panicked")?;

    // Back to the baseline: the probe's own connection only, descriptors as before.
    let t1 = Instant::now();
    let mut settled = None;
    while t1.elapsed() < Duration::from_secs(30) {
        let c = get(addr, "/metrics", None).and_then(|(_, b)| conns(&b));
        if c == Some(1.0) && fd_count(pid) <= base_fds {
            settled = Some(t1.elapsed().as_secs_f64());
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let after = measure(
        "after",
        pid,
        (o.seconds / 2.0).max(1.0),
        &mut [&mut healthz, &mut metrics, &mut viewer],
    );
    let evicted = get(addr, "/metrics", None)
        .and_then(|(_, b)| metric(&b, "camstream_connections_evicted_total"))
        .map_or("-".into(), |v| format!("{v}"));
    let rejected = get(addr, "/metrics", None)
        .and_then(|(_, b)| metric(&b, "camstream_connections_rejected_total"))
        .map_or("-".into(), |v| format!("{v}"));
    println!(
        "flood: {} opened in {ramp:.1} s to start; during the window {churn:.0} reopened/s, {held_client} open at its end (client side); \
         {} closed by the server, {} connects failed; server totals: {evicted} evicted, {rejected} refused",
        opened0,
        stats.closed_by_server.load(Ordering::Relaxed),
        stats.connect_failed.load(Ordering::Relaxed),
    );
    println!(
        "back to baseline (1 connection, {base_fds} fds) {}",
        settled.map_or("NOT within 30 s".into(), |s| format!(
            "{s:.2} s after the flood closed"
        ))
    );
    println!();
    println!("| phase | /healthz ms p50 / p99 of n | /metrics ms p50 / p99 of n | new viewer, first frame ms p50 / p99 of n | RSS max MB | threads max | connections held (max seen) |");
    println!("|---|---|---|---|---|---|---|");
    for mut p in [before, during, after] {
        println!(
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            p.name,
            p.cells.remove(0),
            p.cells.remove(0),
            p.cells.remove(0),
            p.rss_max,
            p.threads_max,
            p.held_max
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- bad passwords

/// `camstream hash-password` with `password` on stdin.
fn hash_password(bin: &Path, password: &str) -> Result<String, String> {
    let mut child = Command::new(bin)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run hash-password: {e}"))?;
    writeln!(child.stdin.take().unwrap(), "{password}").map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("hash-password failed".into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run_bad_password(o: &Opts, tmp: &Path) -> Result<(), String> {
    let hash = hash_password(&o.bin, "right horse battery staple")?;
    let users = tmp.join("users");
    std::fs::write(&users, format!("bench:{hash}\n")).map_err(|e| e.to_string())?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = b64("bench:right horse battery staple");
    let mut args = vec!["--auth-file", users.to_str().unwrap()];
    args.extend(o.extra.iter().map(String::as_str));
    let srv = start_server(&o.bin, &args, tmp, "auth")?;
    let (addr, pid) = (srv.addr, srv.proc.pid());
    println!(
        "\n### bad-password ({} loops; /metrics and /snapshot probed with the right password)\n",
        o.loops
    );
    println!("server: {}", srv.banner.trim());

    let g = good.clone();
    let mut healthz = || get(addr, "/healthz", None).map(|(s, _)| (s, None));
    let mut metrics =
        || get(addr, "/metrics", Some(&g)).map(|(s, b)| (s, metric(&b, "camstream_connections")));
    let mut snapshot = || get(addr, "/snapshot", Some(&good)).map(|(s, _)| (s, None));

    let before = measure(
        "before",
        pid,
        (o.seconds / 2.0).max(1.0),
        &mut [&mut healthz, &mut metrics, &mut snapshot],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let by_status: Arc<[AtomicUsize; 6]> = Arc::new(Default::default());
    let limit = Duration::from_secs_f64(o.seconds + 60.0);
    let loops: Vec<_> = (0..o.loops)
        .map(|i| {
            let (stop, answered, by_status) = (
                Arc::clone(&stop),
                Arc::clone(&answered),
                Arc::clone(&by_status),
            );
            let bad = b64(&format!("bench:wrong-{i}"));
            thread::spawn(move || {
                let end = Instant::now() + limit;
                for n in 0..1_000_000u32 {
                    if stop.load(Ordering::Acquire) || Instant::now() > end {
                        break;
                    }
                    // Every bad login from a new loopback address, as from an attacker with
                    // many addresses: the per-address backoff never answers for the verifier.
                    let from = Ipv4Addr::new(
                        127,
                        1 + (i % 250) as u8,
                        (n / 250 % 250) as u8,
                        (n % 250 + 1) as u8,
                    );
                    match get_from(from, addr, "/snapshot", Some(&bad)) {
                        Some((s, _)) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            let k = match s {
                                401 => 0,
                                429 => 1,
                                503 => 2,
                                200 => 3,
                                _ => 4,
                            };
                            by_status[k].fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            by_status[5].fetch_add(1, Ordering::Relaxed);
                            thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let a0 = answered.load(Ordering::Relaxed);
    let during = measure(
        "during",
        pid,
        o.seconds,
        &mut [&mut healthz, &mut metrics, &mut snapshot],
    );
    let rate = (answered.load(Ordering::Relaxed) - a0) as f64 / o.seconds;
    stop.store(true, Ordering::Release);
    for l in loops {
        let _ = l.join();
    }
    let rss_right_after = rss_mb(pid).0;
    thread::sleep(Duration::from_secs(2));
    let after = measure(
        "after",
        pid,
        (o.seconds / 2.0).max(1.0),
        &mut [&mut healthz, &mut metrics, &mut snapshot],
    );
    let (rss_end, hwm) = rss_mb(pid);
    let st: Vec<usize> = by_status
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    println!(
        "bad logins: {rate:.0} answered/s during the window; in all 401: {}, 429: {}, 503: {}, 200: {}, other: {}, no answer: {}",
        st[0], st[1], st[2], st[3], st[4], st[5]
    );
    println!(
        "RSS right after the flood {rss_right_after:.1} MB, 2 s + the after phase later {rss_end:.1} MB; peak (VmHWM) {hwm:.1} MB"
    );
    println!();
    println!("| phase | /healthz ms p50 / p99 of n | /metrics (auth) ms p50 / p99 of n | /snapshot (auth) ms p50 / p99 of n | RSS max MB | threads max |");
    println!("|---|---|---|---|---|---|");
    for mut p in [before, during, after] {
        println!(
            "| {} | {} | {} | {} | {:.1} | {} |",
            p.name,
            p.cells.remove(0),
            p.cells.remove(0),
            p.cells.remove(0),
            p.rss_max,
            p.threads_max,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- main

fn main() {
    let o = parse_opts();
    if !o.bin.exists() {
        eprintln!(
            "error: {} is missing: build it first with `cargo build --release` (this bench runs the release binary)",
            o.bin.display()
        );
        std::process::exit(2);
    }
    let want = o.connections as u64 + 1024;
    let fd_limit = raise_fd_limit(want);
    if fd_limit < want {
        eprintln!("warning: RLIMIT_NOFILE is {fd_limit}, below the {want} this run needs");
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    // A copy, so a rebuild meanwhile does not change what is measured.
    let bin = tmp.path().join("camstream");
    std::fs::copy(&o.bin, &bin).expect("copy the binary");
    let o = Opts { bin, ..o };

    println!("camstream flood benchmark (issue 9)");
    println!(
        "binary: {} (copied); RLIMIT_NOFILE of this client {fd_limit}; window {} s per phase \
         (before and after: half)",
        parse_opts().bin.display(),
        o.seconds
    );
    let mut failures = Vec::new();
    match o.mode {
        Mode::Idle => {
            for sc in o.scenarios.clone() {
                if let Err(e) = run_scenario(sc, &o, tmp.path()) {
                    eprintln!("{}: {e}", sc.name());
                    failures.push(sc.name());
                }
            }
        }
        Mode::BadPassword => {
            if let Err(e) = run_bad_password(&o, tmp.path()) {
                eprintln!("bad-password: {e}");
                failures.push("bad-password");
            }
        }
    }
    if !failures.is_empty() {
        eprintln!("failed: {failures:?}");
        std::process::exit(1);
    }
}
