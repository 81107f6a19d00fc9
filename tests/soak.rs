//! Soak: viewers that come and go at random, some slow, some stalled, plus snapshots and
//! broken connections, for a bounded time (30 s by default; `CAMSTREAM_SOAK_SECONDS` sets it,
//! at most 600). Afterwards descriptors and connections are back at their baseline, threads
//! within the bound, memory close to where it started, and every part every viewer received
//! was a complete JPEG.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::{connect, fd_count, get, thread_count, wait_until, MjpegClient, Server};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[derive(Default)]
struct Tally {
    parts: AtomicU64,
    sessions: AtomicU64,
    rejected: AtomicU64,
    snapshots: AtomicU64,
}

#[test]
fn random_viewers_for_a_while_leave_nothing_behind() {
    let seconds: u64 = std::env::var("CAMSTREAM_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .min(600);
    let srv = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "320x240",
        "--fps",
        "30",
        "--max-clients",
        "16",
        "--send-timeout",
        "2s",
        "--header-timeout",
        "2s",
    ]);
    let pid = srv.pid();
    let bound: usize = srv
        .banner
        .split("threads <= ")
        .nth(1)
        .unwrap()
        .trim_end_matches([')', '\n'])
        .parse()
        .unwrap();
    // Warm up once so lazily made parts (buffers, the first frame) count in the baseline.
    let mut warm = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    assert!(warm.next_part().is_some());
    drop(warm);
    wait_until("the warm-up viewer to leave", || {
        srv.metric("camstream_viewers") == 0.0
    });
    let (fds0, rss0) = (fd_count(pid), rss_kib(pid));

    let tally = Arc::new(Tally::default());
    let end = Instant::now() + Duration::from_secs(seconds);
    let addr = srv.addr;
    let clients: Vec<_> = (0..24u64)
        .map(|i| {
            let tally = Arc::clone(&tally);
            std::thread::spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1);
                let mut rnd = move |n: u64| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed % n
                };
                while Instant::now() < end {
                    match rnd(10) {
                        // A normal viewer: a few frames, then away.
                        0..=3 => match MjpegClient::open(addr, "/stream", rnd(2) as u8) {
                            Ok(mut v) => {
                                tally.sessions.fetch_add(1, Ordering::Relaxed);
                                for _ in 0..1 + rnd(20) {
                                    let Some(p) = v.next_part() else { break };
                                    check_jpeg(&p.body);
                                    tally.parts.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(r) => {
                                assert_eq!(r.status, 503);
                                tally.rejected.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        },
                        // A slow viewer: reads a frame now and then.
                        4 | 5 => {
                            if let Ok(mut v) = MjpegClient::open(addr, "/stream?timestamp=1", 1) {
                                for _ in 0..1 + rnd(4) {
                                    let Some(p) = v.next_part() else { break };
                                    check_jpeg(&p.body);
                                    tally.parts.fetch_add(1, Ordering::Relaxed);
                                    std::thread::sleep(Duration::from_millis(150));
                                }
                            }
                        }
                        // A stalled viewer: takes the head, then reads nothing until evicted.
                        6 => stalled_viewer(addr, Duration::from_millis(5000 + rnd(2000))),
                        7 => {
                            let r = get(addr, "/snapshot");
                            assert_eq!(r.status, 200);
                            check_jpeg(&r.body);
                            tally.snapshots.fetch_add(1, Ordering::Relaxed);
                        }
                        // Broken clients: half a request, or nothing at all.
                        8 => {
                            let mut s = connect(addr);
                            let _ = s.write_all(b"GET /stream HTT");
                        }
                        _ => {
                            let mut s = connect(addr);
                            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
                            let mut buf = [0u8; 64];
                            let _ = s.read(&mut buf);
                        }
                    }
                }
            })
        })
        .collect();
    let mut max_threads = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        max_threads = max_threads.max(thread_count(pid));
        assert!(
            max_threads <= bound,
            "{max_threads} threads > bound {bound}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in clients {
        c.join().unwrap();
    }

    wait_until("every connection to close", || {
        srv.metric("camstream_connections") <= 1.0 && srv.metric("camstream_viewers") == 0.0
    });
    wait_until("descriptors back to baseline", || fd_count(pid) <= fds0);
    let rss1 = rss_kib(pid);
    let t = &tally;
    eprintln!(
        "soak {seconds}s: {} sessions, {} parts, {} rejected, {} snapshots, max threads {max_threads}/{bound}, \
         fds {fds0}, rss {rss0} -> {rss1} KiB, evicted {}",
        t.sessions.load(Ordering::Relaxed),
        t.parts.load(Ordering::Relaxed),
        t.rejected.load(Ordering::Relaxed),
        t.snapshots.load(Ordering::Relaxed),
        srv.metric("camstream_viewers_evicted_total"),
    );
    assert!(
        t.parts.load(Ordering::Relaxed) > 100,
        "the soak must actually stream"
    );
    assert!(
        srv.metric("camstream_viewers_evicted_total") >= 1.0,
        "stalled viewers are evicted"
    );
    assert!(thread_count(pid) <= bound);
    // Allocator caches may keep a little; beyond that memory must not grow.
    assert!(
        rss1 < rss0 + 24 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
}

/// A complete JPEG: starts with SOI, ends with EOI, decodes.
fn check_jpeg(data: &[u8]) {
    assert!(
        data.starts_with(&[0xFF, 0xD8]) && data.ends_with(&[0xFF, 0xD9]),
        "incomplete JPEG"
    );
    let _ = crate::util::jpeg_dims(data);
}

/// Asks for the stream with a tiny receive buffer, then reads nothing for `hold`.
fn stalled_viewer(addr: std::net::SocketAddr, hold: Duration) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect_timeout(&addr.into(), crate::util::IO_TIMEOUT)
        .unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_write_timeout(Some(crate::util::IO_TIMEOUT)).unwrap();
    let _ = s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(hold);
}
