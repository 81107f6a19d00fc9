//! Clients that ask for a response and never read it: they must not hold a worker, so
//! `/healthz`, `/metrics` and the viewer past the limit keep their prompt answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use camstream::encoder::Encoder;
use camstream::frame::{Chroma, Planar};

use crate::util::{get, wait_until, MjpegClient, Server, IO_TIMEOUT};

/// Writes a large JPEG (noise at quality 100, several MB) for a `file:` source, so a snapshot
/// never fits in the socket buffers of a client that does not read.
fn write_big_jpeg(path: &Path) -> usize {
    let (w, h) = (1920, 1080);
    let mut pic = Planar::filled(w, h, Chroma::Yuv420, [0, 128, 128]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in pic.data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let jpeg = Encoder::new(100).unwrap().encode(&pic).unwrap();
    std::fs::write(path, &jpeg).unwrap();
    jpeg.len()
}

/// A connection with a tiny receive buffer that sends `request` and then never reads.
fn non_reader(addr: SocketAddr, request: &str) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
    let mut s: TcpStream = sock.into();
    s.write_all(request.as_bytes()).unwrap();
    s
}

/// How long a plain GET takes, answer included.
fn timed_get(addr: SocketAddr, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = get(addr, path);
    (r.status, t.elapsed())
}

#[test]
fn snapshot_clients_that_never_read_do_not_hold_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.jpg");
    let size = write_big_jpeg(&file);
    assert!(size > 2 << 20, "the test JPEG should be large: {size}");
    let source = format!("file:{}", file.display());
    let srv = Server::start(&[
        "--source",
        &source,
        "--fps",
        "5",
        "--workers",
        "4",
        "--max-clients",
        "1",
        "--max-connections",
        "200",
    ]);
    let a = srv.addr;
    // The one viewer slot is taken by a reading viewer.
    let mut viewer = MjpegClient::open(a, "/stream", 1).unwrap();
    assert!(viewer.next_part().is_some());

    let stuck: Vec<TcpStream> = (0..50)
        .map(|_| non_reader(a, "GET /snapshot HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    // Every one of them has been taken by a worker by now (or will be soon); the answers must
    // not wait for them. A worker that blocks on one of them would hold it for --send-timeout.
    std::thread::sleep(Duration::from_millis(300));
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (status, took) = timed_get(a, "/healthz");
        assert_eq!(status, 200);
        slowest = slowest.max(took);
        let (status, took) = timed_get(a, "/metrics");
        assert_eq!(status, 200);
        slowest = slowest.max(took);
    }
    let t = Instant::now();
    let refused = MjpegClient::open(a, "/stream", 1).err().expect("refused");
    assert_eq!(refused.status, 503);
    slowest = slowest.max(t.elapsed());
    // Generous: a blocked worker would take --send-timeout (10 s) to come back.
    assert!(
        slowest < Duration::from_secs(3),
        "answers waited for clients that do not read: {slowest:?}"
    );
    assert!(viewer.next_part().is_some(), "the viewer keeps streaming");

    // Clients that never read are dropped after --send-timeout at the latest; when they close
    // their side, their connections are released.
    drop(stuck);
    wait_until("the stuck connections to be released", || {
        srv.metric("camstream_connections") <= 2.0
    });
}

#[test]
fn a_snapshot_that_waits_for_a_frame_does_not_hold_a_worker() {
    // While the source is down a snapshot request waits for the next picture (the NO SIGNAL
    // placeholder comes about once a second); with more such requests than workers, /healthz
    // must still answer at once.
    let srv = Server::start(&["--source", "file:/nonexistent", "--workers", "2"]);
    let a = srv.addr;
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let r = get(a, "/snapshot");
                    assert_eq!(r.status, 200);
                    assert_eq!(r.header("content-type"), Some("image/jpeg"));
                    let len: usize = r.header("content-length").unwrap().parse().unwrap();
                    assert_eq!(len, r.body.len());
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..5 {
        let (status, took) = timed_get(a, "/healthz");
        assert_eq!(status, 503, "the source is down");
        assert!(
            took < Duration::from_millis(500),
            "/healthz waited behind snapshots: {took:?}"
        );
    }
    for w in waiting {
        w.join().unwrap();
    }
    // A HEAD snapshot has the headers and no body.
    let mut s = crate::util::connect(a);
    s.write_all(b"HEAD /snapshot HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let r = crate::util::parse_response(&buf);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
}
