//! Issue #12 benchmark: what a relay hop costs.
//!
//! Run with `cargo bench --bench relay` (options after `--`: `--viewers N` (100), `--seconds S`
//! measured window (10), `--repeat R` (3; tables show the median of the R runs), `--hops LIST`
//! (0,1,2,3), `--size WxH` (640x480), `--fps N` (30)).
//!
//! Latency: an origin `camstream serve --source pattern` and a chain of H relays
//! (`--source http://previous/stream`), N viewers on the last one. Each frame keeps the
//! origin's capture time in its X-Timestamp through every hop, so capture→receive at the end
//! (the viewer's wall clock when a part's last byte is read, minus X-Timestamp) covers the
//! encode, every hop and the viewers' delivery. H = 0 is the origin with the viewers itself;
//! the added latency per hop is (pH - p0) / H.
//!
//! CPU: the relay of the 1-hop chain (its CPU time over the window, from schedstat) per frame
//! delivered to its viewers, next to the same server on a `file:` source replaying frames
//! recorded from the same origin at the same rate, with the same viewers.
//!
//! Viewers are read by one thread with mio (epoll) that parses the multipart stream
//! incrementally. Everything stays on 127.0.0.1; every wait is bounded; servers are killed on
//! drop.

mod common;
use common::median;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Opts {
    viewers: usize,
    seconds: f64,
    repeat: usize,
    hops: Vec<usize>,
    size: String,
    fps: u32,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        viewers: 100,
        seconds: 10.0,
        repeat: 3,
        hops: vec![0, 1, 2, 3],
        size: "640x480".into(),
        fps: 30,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--viewers" => o.viewers = v.parse().expect("--viewers N"),
            "--seconds" => o.seconds = v.parse().expect("--seconds S"),
            "--repeat" => o.repeat = v.parse().expect("--repeat R"),
            "--hops" => {
                o.hops = v
                    .split(',')
                    .map(|h| h.parse().expect("--hops LIST"))
                    .collect()
            }
            "--size" => o.size = v,
            "--fps" => o.fps = v.parse().expect("--fps N"),
            // `cargo bench` passes --bench.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

// ---------------------------------------------------------------- servers

/// A `camstream serve` and its bound address; stopped on drop (by the shared guard).
struct Proc {
    guard: common::Proc,
    addr: SocketAddr,
}

impl Proc {
    fn start(source: &str, o: &Opts) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_camstream"));
        cmd.args(["serve", "--source", source, "--size", &o.size])
            .args(["--fps", &o.fps.to_string(), "--listen", "127.0.0.1:0"])
            .args(["--max-clients", &(o.viewers + 10).to_string()]);
        // One stderr log per server started by this run (a chain has several).
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!(
            "camstream-relay-bench-{}-{n}.stderr",
            std::process::id()
        ));
        match common::spawn_server(cmd, log) {
            Ok((guard, addr, _)) => Proc { guard, addr },
            Err(e) => panic!("camstream serve --source {source} did not start: {e}"),
        }
    }

    fn cpu(&self) -> f64 {
        cpu_of(&self.guard.pid().to_string())
    }
}

/// CPU time of a process's threads in seconds (schedstat, ns); NaN if unreadable.
fn cpu_of(pid: &str) -> f64 {
    common::cpu_seconds_schedstat(pid).unwrap_or(f64::NAN)
}

/// The machine's busy CPU time in seconds (user, nice, system, irq, softirq from /proc/stat).
fn machine_busy() -> f64 {
    common::machine_cpu().0
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

// ---------------------------------------------------------------- viewers

/// One viewer's connection and what it has read.
struct Viewer {
    stream: TcpStream,
    buf: Vec<u8>,
    head_done: bool,
    /// Part bodies to keep (to record a clip); empty when not recording.
    keep: bool,
    frames: u64,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses whole parts out of `v.buf`; calls `part(timestamp, body)` for each.
fn parse_parts(v: &mut Viewer, mut part: impl FnMut(f64, &[u8])) {
    let mut pos = 0;
    while let Some(end) = find(&v.buf[pos..], b"\r\n\r\n") {
        if !v.head_done {
            v.head_done = true;
            pos += end + 4;
            continue;
        }
        let head = String::from_utf8_lossy(&v.buf[pos..pos + end]).into_owned();
        let get = |name: &str| {
            head.lines().find_map(|l| {
                let (k, val) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| val.trim().to_string())
            })
        };
        let len: usize = get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let body = pos + end + 4;
        if v.buf.len() < body + len {
            break;
        }
        let ts: f64 = get("x-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or(f64::NAN);
        part(ts, &v.buf[body..body + len]);
        v.frames += 1;
        pos = body + len;
    }
    v.buf.drain(..pos);
}

/// N viewers of one server, read by one epoll loop.
struct Crowd {
    poll: Poll,
    viewers: Vec<Viewer>,
}

impl Crowd {
    fn connect(addr: SocketAddr, n: usize, keep: bool) -> Crowd {
        let poll = Poll::new().unwrap();
        let mut viewers = Vec::with_capacity(n);
        for i in 0..n {
            let std = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .expect("connect a viewer");
            std.set_nodelay(true).unwrap();
            let mut s = std;
            s.write_all(b"GET /stream HTTP/1.1\r\nHost: bench\r\n\r\n")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            let mut stream = TcpStream::from_std(s);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .unwrap();
            viewers.push(Viewer {
                stream,
                buf: Vec::with_capacity(256 << 10),
                head_done: false,
                keep,
                frames: 0,
            });
        }
        Crowd { poll, viewers }
    }

    /// Reads for `d`; calls `part(viewer, latency_seconds, body)` for every part completed.
    fn run(&mut self, d: Duration, mut part: impl FnMut(usize, f64, &[u8])) {
        let until = Instant::now() + d;
        let mut events = Events::with_capacity(1024);
        let mut chunk = vec![0u8; 256 << 10];
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            self.poll
                .poll(&mut events, Some(left.min(Duration::from_millis(100))))
                .unwrap();
            for ev in events.iter() {
                let i = ev.token().0;
                let v = &mut self.viewers[i];
                loop {
                    match v.stream.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => v.buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                let now = unix_now();
                let keep = v.keep;
                parse_parts(v, |ts, body| {
                    part(i, now - ts, if keep { body } else { &[] })
                });
            }
        }
    }

    fn frames(&self) -> u64 {
        self.viewers.iter().map(|v| v.frames).sum()
    }
}

// ---------------------------------------------------------------- measurements

struct Run {
    p50_ms: f64,
    p99_ms: f64,
    fps_per_viewer: f64,
    /// CPU µs per delivered frame of the last process in the chain.
    cpu_us_per_frame: f64,
    /// CPU used on the machine by everything but the servers and this bench, in % of a core.
    others_pct: f64,
}

/// N viewers on the last of `procs` (warm-up, then a window): latency percentiles, its CPU,
/// and what the rest of the machine used meanwhile.
fn measure(procs: &[Proc], o: &Opts) -> Run {
    let last = procs.last().expect("a server");
    // One read per process per moment: (the last server's CPU, all of ours with this bench).
    let cpu_now = || {
        let each: Vec<f64> = procs.iter().map(Proc::cpu).collect();
        let last = each.last().copied().unwrap_or(f64::NAN);
        (last, each.iter().sum::<f64>() + cpu_of("self"))
    };
    let mut crowd = Crowd::connect(last.addr, o.viewers, false);
    crowd.run(Duration::from_secs(2), |_, _, _| {});
    let frames0 = crowd.frames();
    let ((cpu0, ours0), busy0) = (cpu_now(), machine_busy());
    let mut lat = Vec::new();
    crowd.run(Duration::from_secs_f64(o.seconds), |_, l, _| lat.push(l));
    let ((cpu1, ours1), busy1) = (cpu_now(), machine_busy());
    let cpu = cpu1 - cpu0;
    let others = (busy1 - busy0) - (ours1 - ours0);
    let frames = crowd.frames() - frames0;
    lat.retain(|l| l.is_finite());
    lat.sort_by(|a, b| a.total_cmp(b));
    Run {
        // The same percentile as the load bench, so their p99s compare.
        p50_ms: common::percentile(&lat, 0.5).unwrap_or(f64::NAN) * 1e3,
        p99_ms: common::percentile(&lat, 0.99).unwrap_or(f64::NAN) * 1e3,
        fps_per_viewer: frames as f64 / o.viewers as f64 / o.seconds,
        cpu_us_per_frame: cpu * 1e6 / frames as f64,
        others_pct: others * 100.0 / o.seconds,
    }
}

/// Origin + `hops` relays; returns the processes, last one the viewers' server.
fn chain(hops: usize, o: &Opts) -> Vec<Proc> {
    let mut procs = vec![Proc::start("pattern", o)];
    for _ in 0..hops {
        let up = format!("http://{}/stream", procs.last().unwrap().addr);
        procs.push(Proc::start(&up, o));
    }
    procs
}

/// Records `n` frames of the origin's stream into an MJPEG file (concatenated JPEGs).
fn record_clip(o: &Opts, path: &Path, n: usize) {
    let origin = Proc::start("pattern", o);
    let mut crowd = Crowd::connect(origin.addr, 1, true);
    let mut clip = Vec::new();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < n && Instant::now() < deadline {
        crowd.run(Duration::from_millis(200), |_, _, body| {
            if got < n {
                clip.extend_from_slice(body);
                got += 1;
            }
        });
    }
    std::fs::write(path, clip).expect("write the clip");
}

fn main() {
    let o = parse_opts();
    println!(
        "relay bench: {} viewers, {} s windows, {} runs, {} at {} fps",
        o.viewers, o.seconds, o.repeat, o.size, o.fps
    );

    // Latency by chain length.
    let mut p50 = Vec::new();
    for &h in &o.hops {
        let mut runs = Vec::new();
        for r in 0..o.repeat {
            let procs = chain(h, &o);
            let run = measure(&procs, &o);
            println!(
                "hops {h} run {r}: p50 {:.2} ms, p99 {:.2} ms, {:.1} fps per viewer, last hop {:.1} µs CPU per delivered frame, others {:.0} % of a core",
                run.p50_ms, run.p99_ms, run.fps_per_viewer, run.cpu_us_per_frame, run.others_pct
            );
            runs.push(run);
        }
        let med = |f: &dyn Fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
        p50.push((
            h,
            med(&|r| r.p50_ms),
            med(&|r| r.p99_ms),
            med(&|r| r.fps_per_viewer),
        ));
    }
    println!(
        "\n| hops | p50 ms | p99 ms | fps per viewer | added p50 per hop | added p99 per hop |"
    );
    println!("|---|---|---|---|---|---|");
    let base = p50.iter().find(|r| r.0 == 0).map(|r| (r.1, r.2));
    for &(h, a, b, f) in &p50 {
        let (add50, add99) = match base {
            Some((b50, b99)) if h > 0 => (
                format!("{:.2} ms", (a - b50) / h as f64),
                format!("{:.2} ms", (b - b99) / h as f64),
            ),
            _ => ("-".into(), "-".into()),
        };
        println!("| {h} | {a:.2} | {b:.2} | {f:.1} | {add50} | {add99} |");
    }

    // CPU per delivered frame: the relay (1 hop) against a file: source of the same frames.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let clip = dir.path().join("clip.mjpeg");
    record_clip(&o, &clip, 10 * o.fps as usize);
    let (mut relay, mut file) = (Vec::new(), Vec::new());
    for r in 0..o.repeat {
        let procs = chain(1, &o);
        let a = measure(&procs, &o);
        drop(procs);
        let server = [Proc::start(&format!("file:{}", clip.display()), &o)];
        let b = measure(&server, &o);
        println!(
            "cpu run {r}: relay {:.2} µs per delivered frame ({:.1} fps per viewer, others {:.0} %), file: {:.2} µs ({:.1} fps, others {:.0} %)",
            a.cpu_us_per_frame, a.fps_per_viewer, a.others_pct, b.cpu_us_per_frame, b.fps_per_viewer, b.others_pct
        );
        relay.push(a.cpu_us_per_frame);
        file.push(b.cpu_us_per_frame);
    }
    let (r, f) = (median(&mut relay), median(&mut file));
    println!(
        "\nCPU per delivered frame (median of {}): relay {r:.2} µs, file: {f:.2} µs, relay/file {:.3}",
        o.repeat,
        r / f
    );
}
