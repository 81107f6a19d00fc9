//! Who holds a viewer slot: `--max-clients` admits exactly N and refuses the rest at once with a
//! 503, and a viewer that stops reading is evicted after `--send-timeout` so its slot frees while
//! the others keep streaming.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    self, assert_closed_by_server, check_part, jpeg_dims, metric, next, pattern_server,
    stalled_viewer, watch, MjpegClient, Server,
};

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

// ---------------------------------------------------------------------------------------------
// Admission control
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
// Eviction of a viewer that stops reading
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
