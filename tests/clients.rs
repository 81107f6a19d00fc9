//! What real clients ran into: snapshot pollers (Mainsail's adaptive mode), monitors probing
//! with HEAD, mjpg-streamer URL variants, tools written for µStreamer's `/state`, and process
//! metrics precise enough for `rate()`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::util::{connect, get, metric, request, wait_until, MjpegClient, Server};

#[test]
fn a_snapshot_poller_gets_every_frame_while_nobody_watches_the_stream() {
    let srv = Server::start(&["--source", "pattern", "--size", "160x120", "--fps", "10"]);
    let a = srv.addr;
    // Polling starts from an idle server (no viewer), back to back, as Mainsail does.
    let before = srv.metric("camstream_frames_captured_total");
    let mut stamps = HashSet::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let r = get(a, "/?action=snapshot&timestamp=1");
        assert_eq!(r.status, 200);
        stamps.insert(r.header("x-timestamp").unwrap().to_string());
    }
    let text = get(a, "/metrics").text();
    let captured = metric(&text, "camstream_frames_captured_total") - before;
    let encoded = metric(&text, "camstream_frames_encoded_total");
    // Before: only every other frame was encoded while no stream viewer was connected, so a
    // poller saw half the rate. The first poll may wait for one frame; allow a little slack.
    assert!(
        stamps.len() as f64 >= 0.8 * captured,
        "{} distinct frames of {captured} captured",
        stamps.len()
    );
    // Snapshots still cannot drive the encoder beyond the source's rate.
    assert!(
        encoded <= metric(&text, "camstream_frames_captured_total"),
        "{text}"
    );
}

/// Sends `HEAD path` and returns the response (which must have no body).
fn head(addr: std::net::SocketAddr, path: &str) -> crate::util::Response {
    let r = request(addr, &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(r.body.is_empty(), "HEAD has no body: {:?}", r.text());
    r
}

#[test]
fn head_on_the_stream_says_what_a_get_would_get_without_taking_a_slot() {
    let srv = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "160x120",
        "--max-clients",
        "2",
    ]);
    let a = srv.addr;
    for path in ["/stream", "/?action=stream"] {
        let r = head(a, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("multipart/x-mixed-replace"));
    }
    assert_eq!(srv.metric("camstream_viewers"), 0.0, "HEAD took no slot");
    let mut v1 = MjpegClient::open(a, "/stream", 1).unwrap();
    let mut v2 = MjpegClient::open(a, "/stream", 1).unwrap();
    assert!(v1.next_part().is_some() && v2.next_part().is_some());
    let rejected = srv.metric("camstream_viewers_rejected_total");
    for path in ["/stream", "/?action=stream"] {
        let r = head(a, path);
        assert_eq!(r.status, 503, "{path}: a GET would be refused now");
        assert_eq!(r.header("retry-after"), Some("1"));
        let get = MjpegClient::open(a, path, 1).err().expect("refused");
        assert_eq!(get.status, 503);
        assert_eq!(
            r.header("content-length"),
            get.header("content-length"),
            "same answer"
        );
    }
    // Only the GETs count as refused viewers.
    assert_eq!(
        srv.metric("camstream_viewers_rejected_total") - rejected,
        2.0
    );
    drop(v2);
    wait_until("a slot to free", || srv.metric("camstream_viewers") == 1.0);
    assert_eq!(head(a, "/stream").status, 200);
}

#[test]
fn mjpg_streamer_url_variants_stream_snapshot_or_say_not_found() {
    let srv = Server::start(&["--source", "pattern", "--size", "160x120"]);
    let a = srv.addr;
    let mut s = MjpegClient::open(a, "/?action=stream_0", 1).unwrap();
    assert!(s.next_part().is_some());
    drop(s);
    let r = get(a, "/?action=snapshot_0");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    for (path, says) in [
        ("/?action=STREAM", "unknown action 'STREAM'"),
        ("/?action=bogus", "unknown action 'bogus'"),
        ("/?action=", "unknown action ''"),
        ("/?action=stream_1", "no input '1'"),
    ] {
        let r = get(a, path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains(says), "{path}: {}", r.text());
        assert_eq!(r.text().lines().count(), 1, "one line: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    }
    // Some NSURLSession-based players POST for the stream, as mjpg-streamer allows.
    let mut c = connect(a);
    c.write_all(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while crate::util::find(&got, b"Content-Type: image/jpeg").is_none() {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // Other endpoints take no POST.
    let r = request(
        a,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
}

#[test]
fn state_answers_in_ustreamer_shape_as_well() {
    let srv = Server::start(&["--source", "pattern", "--size", "320x240", "--fps", "15"]);
    // Nobody has watched yet: the frame's size is known all the same.
    let v: serde_json::Value = serde_json::from_slice(&srv.get("/state").body).unwrap();
    assert_eq!(v["frame"]["width"], 320, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    let r = &v["result"];
    assert_eq!(r["encoder"]["type"], "CPU", "{v}");
    assert_eq!(r["encoder"]["quality"], 80, "{v}");
    assert_eq!(r["source"]["resolution"]["width"], 320, "{v}");
    assert_eq!(r["source"]["resolution"]["height"], 240, "{v}");
    assert_eq!(r["source"]["online"], true, "{v}");
    assert_eq!(r["source"]["desired_fps"], 15, "{v}");
    assert!(r["source"]["captured_fps"].is_u64(), "{v}");
    assert!(r["stream"]["queued_fps"].is_u64(), "{v}");
    assert_eq!(r["stream"]["clients"], 0, "{v}");
    assert!(r["stream"]["clients_stat"].is_object(), "{v}");
    let mut viewer = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    assert!(viewer.next_part().is_some());
    let v: serde_json::Value = serde_json::from_slice(&srv.get("/state").body).unwrap();
    assert_eq!(v["result"]["stream"]["clients"], 1, "{v}");
    // camstream's own fields stay beside µStreamer's.
    assert_eq!(v["viewers"]["active"], 1, "{v}");
}

#[test]
fn process_cpu_time_is_exported_below_a_second() {
    let srv = Server::start(&["--source", "pattern", "--size", "160x120"]);
    let text = srv.get("/metrics").text();
    let cpu = metric(&text, "process_cpu_seconds_total");
    // A server that just started has used a fraction of a second, which the integer counter
    // of the prometheus crate exported as 0.
    assert!(cpu > 0.0 && cpu.fract() != 0.0, "{cpu}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            "camstream_build_info{{version=\"{version}\"}} 1\n"
        )),
        "{text}"
    );
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        assert!(metric(&text, name) > 0.0, "{name}");
    }
}

#[test]
fn a_posted_stream_needs_the_same_credentials_as_a_get() {
    let srv = crate::util::auth_server("viewer:secret", "metrics");
    for method in ["GET", "POST", "HEAD"] {
        let r = request(
            srv.addr,
            &format!("{method} /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(r.status, 401, "{method}");
    }
    assert_eq!(srv.metric("camstream_viewers_accepted_total"), 0.0);
}
