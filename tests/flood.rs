//! Issue 9, break 1: idle and slow-head floods must not lock anyone out at default settings;
//! the per-address cap on connections still sending their head; refusals past the lingering
//! bound still deliver their 503; and the flags that guard the connection layer. Also the
//! older floods: idle sockets plus a burst of viewers within the thread bound, the connection
//! cap's 503 and the header timeout.
//!
//! Floods here are modest (hundreds of sockets, far past the old cap of max-clients + 64) so the
//! tests run on a 2-core CI machine; `benches/flood.rs` holds 10,000 and measures latency.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    self, camstream, check_part, closed_without_answer, connect, connect_from, fd_count, jpeg_dims,
    metric, next, parse_response, pattern_server, thread_count, wait_until, watch, MjpegClient,
    Response, Server,
};

/// One request from `from`: `Ok(response)`, or `Err` if the connection ended before any
/// response byte (closed or reset: the server evicted it before its head arrived).
fn try_get_from(from: Ipv4Addr, addr: SocketAddr, path: &str) -> Result<Response, String> {
    let mut s = connect_from(from, addr).map_err(|e| format!("connect: {e}"))?;
    // A write into a connection the server already closed may fail; the read tells.
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    let mut buf = Vec::new();
    let res = s.read_to_end(&mut buf);
    match util::find(&buf, b"\r\n\r\n") {
        Some(_) => Ok(parse_response(&buf)),
        None => Err(format!("no response ({res:?}, {} bytes)", buf.len())),
    }
}

/// Requests sent again by [`get_from`] (reported, not asserted).
static RETRIES: AtomicUsize = AtomicUsize::new(0);

/// Like a browser: a request whose connection was closed before any answer is sent again (at
/// most 20 times). A response, whatever its status, is returned as it is.
fn get_from(from: Ipv4Addr, addr: SocketAddr, path: &str) -> Response {
    let mut last = String::new();
    for attempt in 0..20 {
        match try_get_from(from, addr, path) {
            Ok(r) => return r,
            Err(e) => last = e,
        }
        if attempt == 0 {
            RETRIES.fetch_add(1, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("GET {path}: 20 attempts ended without a response; last: {last}");
}

/// A new viewer gets frames (retrying a connection closed before any answer, as in [`get_from`]).
fn new_viewer_gets_frames(addr: SocketAddr) {
    for _ in 0..20 {
        let mut s = match connect_from(Ipv4Addr::LOCALHOST, addr) {
            Ok(s) => s,
            Err(_) => continue,
        };
        let _ = s.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n");
        let mut first = [0u8; 12];
        match s.read_exact(&mut first) {
            Ok(()) => {
                drop(s);
                // The connection answered: now the real client, which checks every byte.
                match MjpegClient::open(addr, "/stream", 1) {
                    Ok(mut c) => {
                        for _ in 0..2 {
                            let part = c.next_part().expect("a streaming viewer gets parts");
                            assert_eq!(util::jpeg_dims(&part.body), (160, 120));
                        }
                        return;
                    }
                    Err(r) => panic!("a new viewer got {} {:?}", r.status, r.text()),
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("a new viewer never got an answer");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hold {
    /// Connect and send nothing.
    Idle,
    /// Send a partial request head, then one more byte about every second.
    SlowHead,
}

/// A client that holds `n` connections, spread over the addresses `from`, and reopens each one
/// the server closes, until stopped (or 120 s at most).
struct Flood {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    handle: thread::JoinHandle<()>,
}

impl Flood {
    fn start(addr: SocketAddr, from: Vec<Ipv4Addr>, n: usize, hold: Hold) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let (st, op) = (Arc::clone(&stop), Arc::clone(&opened));
        let handle = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut socks: Vec<Option<(TcpStream, Instant)>> = (0..n).map(|_| None).collect();
            while !st.load(Ordering::Acquire) && Instant::now() < deadline {
                for (i, slot) in socks.iter_mut().enumerate() {
                    if st.load(Ordering::Acquire) {
                        break;
                    }
                    match slot {
                        None => {
                            let Ok(mut s) = connect_from(from[i % from.len()], addr) else {
                                continue;
                            };
                            if hold == Hold::SlowHead {
                                let _ = s.write_all(b"GET /stream HTTP/1.1\r\nX-Slow: a");
                            }
                            let _ = s.set_nonblocking(true);
                            op.fetch_add(1, Ordering::AcqRel);
                            *slot = Some((s, Instant::now()));
                        }
                        Some((s, last)) => {
                            let mut b = [0u8; 512];
                            let closed = match s.read(&mut b) {
                                // Closed, or answered (408, 503): either way, open another.
                                Ok(_) => true,
                                Err(e) => e.kind() != ErrorKind::WouldBlock,
                            };
                            if closed {
                                *slot = None;
                            } else if hold == Hold::SlowHead
                                && last.elapsed() > Duration::from_secs(1)
                            {
                                let _ = s.write(b"a");
                                *last = Instant::now();
                            }
                        }
                    }
                }
                thread::sleep(Duration::from_millis(2));
            }
        });
        Flood {
            stop,
            opened,
            handle,
        }
    }

    fn wait_opened(&self, n: usize) {
        wait_until("the flood to open its connections", || {
            self.opened.load(Ordering::Acquire) >= n
        });
    }

    /// Stops and closes every connection; returns how many were opened in all.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Release);
        self.handle.join().unwrap();
        self.opened.load(Ordering::Acquire)
    }
}

/// The thread bound printed in the start line.
fn banner_thread_bound(banner: &str) -> usize {
    banner
        .split("threads <= ")
        .nth(1)
        .and_then(|r| r.trim_end().trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no thread bound in {banner:?}"))
}

/// At default settings (plus `extra`), `n` connections held from `addresses` loopback
/// addresses (reopened as they close; the first address is 127.0.0.1, the probes' own) leave
/// /metrics, /healthz and new viewers served; threads stay within the bound; afterwards the
/// connections and descriptors are back to the baseline. Returns the most connections the
/// server held at once (as far as the probes saw).
fn flood_leaves_service_intact(hold: Hold, n: usize, addresses: u8, extra: &[&str]) -> f64 {
    let mut args = vec!["--source", "pattern", "--size", "160x120"];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    let pid = s.pid();
    let bound = banner_thread_bound(&s.banner);
    wait_until("the source to deliver", || s.get("/healthz").status == 200);
    let base_fds = fd_count(pid);
    let lo = Ipv4Addr::LOCALHOST;

    let from = (0..addresses)
        .map(|i| Ipv4Addr::new(127, 0, 0, 1 + i))
        .collect();
    let flood = Flood::start(s.addr, from, n, hold);
    // Well past the old cap of 74, and every socket opened at least once.
    flood.wait_opened(n);
    let mut refused = Vec::new();
    let mut held: f64 = 0.0;
    for i in 0..40 {
        for path in ["/metrics", "/healthz"] {
            let r = get_from(lo, s.addr, path);
            if r.status != 200 {
                refused.push(format!("{path} #{i}: {} {}", r.status, r.text().trim()));
            } else if path == "/metrics" {
                held = held.max(metric(&r.text(), "camstream_connections"));
            }
        }
        assert!(thread_count(pid) <= bound, "threads above {bound}");
    }
    assert!(
        refused.is_empty(),
        "{} of 80 probes refused during a flood of {n} {hold:?} connections: {:?}",
        refused.len(),
        &refused[..refused.len().min(5)]
    );
    new_viewer_gets_frames(s.addr);
    assert!(thread_count(pid) <= bound, "threads above {bound}");
    let opened = flood.stop();
    eprintln!(
        "flood of {n} {hold:?} from {addresses} addresses: {opened} connections opened in all, \
         at most {held} held; {} probes sent again so far",
        RETRIES.load(Ordering::Relaxed)
    );

    // Probing from another address, so the probe is the only connection left.
    let other = Ipv4Addr::new(127, 0, 0, 9);
    wait_until("the flood's connections to be released", || {
        metric(
            &get_from(other, s.addr, "/metrics").text(),
            "camstream_connections",
        ) == 1.0
    });
    wait_until("descriptors back to the baseline", || {
        fd_count(pid) <= base_fds
    });
    assert!(thread_count(pid) <= bound);
    held
}

#[test]
fn idle_sockets_far_past_the_old_cap_lock_nobody_out() {
    // The default connection cap (what the descriptor limit allows) holds them all.
    let held = flood_leaves_service_intact(Hold::Idle, 600, 1, &[]);
    assert!(held >= 600.0, "the server held only {held} connections");
}

#[test]
fn idle_sockets_from_many_addresses_lock_nobody_out() {
    let held = flood_leaves_service_intact(Hold::Idle, 600, 20, &[]);
    assert!(held >= 600.0, "the server held only {held} connections");
}

#[test]
fn slow_heads_from_one_address_lock_nobody_out() {
    flood_leaves_service_intact(Hold::SlowHead, 300, 1, &[]);
}

#[test]
fn a_flood_past_the_connection_cap_from_the_clients_own_address_locks_nobody_out() {
    // Far past a small cap, from the address the probes use too: the flooder's oldest
    // connections make room, over and over, and the probes still get in.
    let held = flood_leaves_service_intact(Hold::Idle, 600, 1, &["--max-connections", "100"]);
    assert!(held <= 100.0, "{held} connections held past the cap of 100");
}

#[test]
fn slow_heads_past_the_connection_cap_from_many_addresses_lock_nobody_out() {
    flood_leaves_service_intact(
        Hold::SlowHead,
        600,
        20,
        &["--max-connections", "100", "--max-pending-per-ip", "4"],
    );
}

/// True while the server has not closed `s` (nothing to read yet).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let open = matches!((&*s).read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

#[test]
fn at_the_cap_the_address_holding_most_heads_loses_its_own_oldest() {
    let s = pattern_server(&[
        "--max-clients",
        "2",
        "--max-connections",
        "8",
        "--max-pending-per-ip",
        "2",
        "--header-timeout",
        "60s",
    ]);
    let (a, b, c) = (
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
        Ipv4Addr::new(127, 0, 0, 4),
    );
    // The listener accepts in connection order, so ages are known without probing (a probe
    // would hold a slot of its own for a moment): b's two are the oldest of all, and within
    // b's share; then a's six make eight, the cap.
    let b_conns: Vec<_> = (0..2).map(|_| connect_from(b, s.addr).unwrap()).collect();
    let a_conns: Vec<_> = (0..6).map(|_| connect_from(a, s.addr).unwrap()).collect();

    // A newcomer from c: a holds the most heads, more than its share, so a's oldest goes, not
    // b's (older still).
    let c_conn = connect_from(c, s.addr).unwrap();
    closed_without_answer(&a_conns[0]);
    assert!(a_conns[1..].iter().all(still_open), "only a's oldest goes");
    assert!(
        b_conns.iter().all(still_open),
        "b, within its share, keeps its own"
    );
    // Again, from b itself: a still holds the most.
    let b_new = connect_from(b, s.addr).unwrap();
    closed_without_answer(&a_conns[1]);
    assert!(b_conns.iter().all(still_open) && still_open(&c_conn) && still_open(&b_new));
    // A probe from an address of its own, too, makes room at a's expense: three evicted in all.
    let r = get_from(Ipv4Addr::new(127, 0, 0, 9), s.addr, "/metrics");
    assert_eq!(
        metric(&r.text(), "camstream_connections_evicted_total"),
        3.0
    );
    closed_without_answer(&a_conns[2]);
    assert!(b_conns.iter().all(still_open));
}

#[test]
fn at_the_connection_cap_the_oldest_head_makes_room() {
    let s = pattern_server(&[
        "--max-clients",
        "2",
        "--max-connections",
        "4",
        "--header-timeout",
        "60s",
    ]);
    // One per address (within every share), accepted in this order.
    let idle: Vec<_> = (2..6)
        .map(|i| connect_from(Ipv4Addr::new(127, 0, 0, i), s.addr).unwrap())
        .collect();
    let r = get_from(Ipv4Addr::new(127, 0, 0, 9), s.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(metric(&r.text(), "camstream_connections"), 4.0);
    // Only the first idle one was closed to let /metrics in (it was the oldest).
    closed_without_answer(&idle[0]);
    assert!(idle[1..].iter().all(still_open));
}

/// Sends SIGSTOP or SIGCONT to `pid`.
fn signal(pid: u32, sig: i32) {
    // SAFETY: kill() on a child process we own.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// Reads a stream on a thread until the connection ends, so the viewer is never evicted.
fn keep_watching(mut c: MjpegClient) -> thread::JoinHandle<()> {
    thread::spawn(move || while c.next_part().is_some() {})
}

#[test]
fn refusals_past_the_lingering_bound_still_get_their_503() {
    let s = pattern_server(&["--max-clients", "2", "--max-connections", "2"]);
    let pid = s.pid();
    // Real viewers hold both slots; nobody is still sending a head, so newcomers are refused.
    let viewers: Vec<_> = (0..2)
        .map(|_| keep_watching(MjpegClient::open(s.addr, "/stream", 1).unwrap()))
        .collect();
    // Every request is in the server's socket buffers before it accepts any of them: far more
    // refusals at once than may linger.
    signal(pid, libc::SIGSTOP);
    let clients: Vec<TcpStream> = (0..150)
        .map(|_| {
            let mut c = util::connect(s.addr);
            c.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            c
        })
        .collect();
    signal(pid, libc::SIGCONT);
    let mut bad = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut buf = Vec::new();
        let res = c.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        if res.is_err() || !text.starts_with("HTTP/1.1 503 ") || !text.ends_with('\n') {
            bad.push(format!("#{i}: {res:?} after {text:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 150 refused clients lost their 503: {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    drop(viewers);
}

/// Runs `camstream serve --source pattern --listen 127.0.0.1:0 ARGS`, expecting it to exit at
/// once; a server that starts instead is killed after 10 s (exit code `None`). Returns the exit
/// code and stderr.
fn serve_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = camstream();
    cmd.args(["serve", "--source", "pattern", "--listen", "127.0.0.1:0"])
        .args(args);
    let out = util::run_bounded(cmd, Duration::from_secs(10));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_allow_origin_that_is_not_an_origin_exits_2() {
    for bad in [
        "https://a.example\r\nSet-Cookie: x=1",
        "https://a.example\n",
        "a.example",
        "https://",
        "https://a.example/path",
        "https://a b.example",
        "**",
        "ftp://a.example:99999",
    ] {
        let (code, err) = serve_exit(&["--allow-origin", bad]);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(err.contains("--allow-origin"), "{bad:?}: {err}");
    }
    let s = pattern_server(&["--allow-origin", "https://cam.example:8443"]);
    let r = s.get("/state");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://cam.example:8443")
    );
}

#[test]
fn fewer_connections_than_viewers_is_a_usage_error() {
    let (code, err) = serve_exit(&["--max-clients", "20", "--max-connections", "10"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--max-connections") && err.contains("--max-clients"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Floods of viewers, the connection cap and the header timeout
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
    // Once the server sees the viewers close, requests get through again. The second viewer's
    // close and the previous request's may not be seen yet when the next request comes, so
    // the metrics request may be refused too: every refusal is counted, and the count read
    // from the first /metrics that gets through.
    let mut refused = 1;
    let mut get_counting = |path: &str| {
        let r = get_allowing_reset(s.addr, path);
        if r.status == 503 {
            refused += 1;
        }
        r
    };
    util::wait_until("a free connection slot", || {
        get_counting("/healthz").status == 200
    });
    let mut metrics = String::new();
    util::wait_until("the metrics", || {
        let r = get_counting("/metrics");
        metrics = r.text();
        r.status == 200
    });
    assert_eq!(
        util::metric(&metrics, "camstream_connections_rejected_total"),
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
