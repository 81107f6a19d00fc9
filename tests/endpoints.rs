//! The plain endpoints: /snapshot, /metrics, /state, /healthz and the index with curl, routing,
//! methods, OPTIONS and CORS on every answer; and the metrics following viewers, frames and
//! encoding (checked by promtool).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{
    self, check_part, jpeg_dims, jpeg_not_uniform, metric, next, parse_timestamp, pattern_server,
    run_bounded, watch, MjpegClient, Response,
};

/// `curl -sS -i ARGS`: the parsed response (curl must exit 0).
fn curl(args: &[&str]) -> Response {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "20"]).args(args);
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    util::parse_response(&out.stdout)
}

// ---------------------------------------------------------------------------------------------
// Plain requests with curl, routing, methods, CORS
// ---------------------------------------------------------------------------------------------

#[test]
fn curl_gets_snapshot_metrics_state_and_health() {
    let s = pattern_server(&["--max-clients", "5"]);
    let base = format!("http://{}", s.addr);

    // The snapshot first: it waits for a frame, so the source is up afterwards.
    for path in ["/snapshot", "/?action=snapshot"] {
        let r = curl(&[&format!("{base}{path}")]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("image/jpeg"), "{path}");
        assert_eq!(
            r.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            r.body.len(),
            "{path}"
        );
        assert_eq!(jpeg_dims(&r.body), (320, 240), "{path}");
        assert!(jpeg_not_uniform(&r.body));
        parse_timestamp(r.header("x-timestamp").expect("snapshot X-Timestamp"));
        assert!(r.header("cache-control").unwrap().contains("no-store"));
        assert!(r.header("access-control-allow-origin").is_none());
    }

    // HEAD: the headers with the length, and not one byte of body on the wire.
    let r = curl(&["-I", &format!("{base}/snapshot")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    let r = util::request(s.addr, "HEAD /snapshot HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    assert!(
        r.body.is_empty(),
        "HEAD /snapshot sent {} body bytes",
        r.body.len()
    );

    let r = curl(&[&format!("{base}/metrics")]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    assert_eq!(metric(&r.text(), "camstream_viewers_max"), 5.0);
    assert_eq!(metric(&r.text(), "camstream_source_up"), 1.0);

    let r = curl(&[&format!("{base}/state")]);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("/state is JSON");
    assert_eq!(v["viewers"]["max"], 5, "{v}");
    assert_eq!(v["viewers"]["active"], 0, "{v}");
    assert_eq!(v["settings"]["size"], "320x240", "{v}");
    assert_eq!(v["source"]["up"], true, "{v}");
    assert_eq!(v["frame"]["width"], 320, "{v}");
    assert_eq!(v["frame"]["height"], 240, "{v}");

    let r = curl(&[&format!("{base}/healthz")]);
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("ok"), "{:?}", r.text());

    let r = curl(&[&format!("{base}/")]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("stream"));

    for path in [
        "/nope",
        "/stream/extra",
        "/snapshot.jpg",
        "/?action=nothing&x",
    ] {
        let r = curl(&[&format!("{base}{path}")]);
        // An unknown `?action=` is not the index page: a player with a wrong URL sees an error.
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }

    for args in [
        vec!["-X", "POST", "-d", "x=1"],
        vec!["-X", "PUT", "--data-binary", "frame"],
        vec!["-X", "DELETE"],
        vec!["-X", "PATCH", "-d", "{}"],
    ] {
        let mut all = args.clone();
        let url = format!("{base}/snapshot");
        all.push(&url);
        let r = curl(&all);
        assert_eq!(r.status, 405, "{args:?}");
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("405 without Allow: {:?}", r.headers));
        for m in ["GET", "HEAD"] {
            assert!(allow.contains(m), "Allow: {allow}");
        }
    }
    // Only the stream takes POST (as mjpg-streamer's does; see clients.rs).
    let r = curl(&["-X", "POST", &format!("{base}/metrics")]);
    assert_eq!(r.status, 405);

    let r = curl(&["-X", "OPTIONS", &format!("{base}/stream")]);
    assert_eq!(r.status, 204);
    assert!(r.header("allow").unwrap().contains("OPTIONS"));
    assert!(r.body.is_empty());

    // HTTP/1.1 without Host is refused (RFC 9112).
    let r = util::request(s.addr, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400);
    // No viewer was involved in any of this.
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 0.0);
}

#[test]
fn options_answer_is_204_without_content_length() {
    let s = pattern_server(&["--allow-origin", "*"]);
    let r = util::request(
        s.addr,
        "OPTIONS /stream HTTP/1.1\r\nHost: t\r\nOrigin: http://x\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert!(r.header("content-length").is_none(), "{:?}", r.headers);
}

#[test]
fn allow_origin_is_on_every_response_including_the_stream() {
    let s = pattern_server(&["--allow-origin", "*", "--max-clients", "1"]);
    let base = format!("http://{}", s.addr);
    let acao = |r: &Response, what: &str| {
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "{what}: {:?}",
            r.headers
        );
    };
    for path in [
        "/snapshot",
        "/metrics",
        "/state",
        "/healthz",
        "/",
        "/nope",
        "/stream?fps=0",
    ] {
        acao(&curl(&[&format!("{base}{path}")]), path);
    }
    acao(
        &curl(&["-I", &format!("{base}/snapshot")]),
        "HEAD /snapshot",
    );
    acao(
        &util::request(s.addr, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n"),
        "HEAD /stream",
    );
    acao(
        &curl(&["-X", "POST", "-d", "x", &format!("{base}/snapshot")]),
        "POST",
    );
    let r = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "Origin: http://example.com",
        "-H",
        "Access-Control-Request-Method: GET",
        &format!("{base}/stream"),
    ]);
    assert_eq!(r.status, 204);
    acao(&r, "OPTIONS");
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));

    let mut c = watch(s.addr, "/stream");
    acao(&c.head, "the stream");
    check_part(&next(&mut c), 320, 240);
    // The one slot is taken: the refusal carries the header too.
    let r = MjpegClient::open(s.addr, "/stream", 1)
        .err()
        .expect("503 for the second viewer");
    assert_eq!(r.status, 503);
    acao(&r, "503");
}

// ---------------------------------------------------------------------------------------------
// Metrics follow what happened
// ---------------------------------------------------------------------------------------------

#[test]
fn metrics_follow_viewers_frames_and_encoding() {
    let s = pattern_server(&["--max-clients", "4"]);
    // Nobody has watched yet: a second of capture, and only the first frame after the open
    // encoded (so that its size is known).
    util::wait_until("a second of capture", || {
        s.metric("camstream_frames_captured_total") >= 30.0
    });
    util::wait_until("capture fps to be measured", || {
        s.metric("camstream_capture_fps") > 0.0
    });
    let m = s.get("/metrics").text();
    assert_eq!(metric(&m, "camstream_frames_encoded_total"), 1.0);
    assert_eq!(metric(&m, "camstream_frames_sent_total"), 0.0);
    assert_eq!(metric(&m, "camstream_source_up"), 1.0);
    assert_eq!(metric(&m, "camstream_viewers"), 0.0);
    assert_eq!(metric(&m, "camstream_viewers_max"), 4.0);

    // Viewers come: the gauge follows, frames are sent, each frame is encoded once for all.
    let mut a = watch(s.addr, "/stream");
    assert_eq!(s.metric("camstream_viewers"), 1.0);
    let mut b = watch(s.addr, "/stream");
    let mut c = watch(s.addr, "/stream");
    assert_eq!(s.metric("camstream_viewers"), 3.0);
    let m0 = s.get("/metrics").text();
    for _ in 0..10 {
        for v in [&mut a, &mut b, &mut c] {
            check_part(&next(v), 320, 240);
        }
    }
    let m1 = s.get("/metrics").text();
    let d = |name: &str| metric(&m1, name) - metric(&m0, name);
    assert!(d("camstream_frames_sent_total") > 0.0);
    assert!(d("camstream_bytes_sent_total") > 0.0);
    assert!(
        d("camstream_frames_encoded_total") <= d("camstream_frames_captured_total") + 1.0,
        "encoded {} for {} captured with 3 viewers: encoding must not be per viewer",
        d("camstream_frames_encoded_total"),
        d("camstream_frames_captured_total")
    );
    util::wait_until("30 parts counted as sent", || {
        s.metric("camstream_frames_sent_total") >= 30.0
    });
    assert!(metric(&m1, "camstream_frame_bytes") > 0.0);
    assert!(metric(&m1, "camstream_encode_seconds_count") >= 1.0);

    drop(c);
    util::wait_until("the gauge to drop to 2", || {
        s.metric("camstream_viewers") == 2.0
    });
    drop(a);
    drop(b);
    util::wait_until("the gauge to drop to 0", || {
        s.metric("camstream_viewers") == 0.0
    });
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 3.0);

    // Nobody watches: once an encode that may have been under way is done (two more captures),
    // a further second of capture encodes and sends nothing.
    let c0 = s.metric("camstream_frames_captured_total");
    util::wait_until("two captures", || {
        s.metric("camstream_frames_captured_total") >= c0 + 2.0
    });
    let m2 = s.get("/metrics").text();
    let c2 = metric(&m2, "camstream_frames_captured_total");
    util::wait_until("a second of unwatched capture", || {
        s.metric("camstream_frames_captured_total") >= c2 + 30.0
    });
    let m3 = s.get("/metrics").text();
    for name in [
        "camstream_frames_encoded_total",
        "camstream_frames_sent_total",
        "camstream_bytes_sent_total",
    ] {
        assert_eq!(
            metric(&m3, name),
            metric(&m2, name),
            "{name} changed while nobody watched"
        );
    }
    assert!(metric(&m3, "camstream_capture_fps") > 0.0);
    assert_eq!(metric(&m3, "camstream_source_up"), 1.0);

    // Prometheus' own checker accepts the exposition, lint included.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(m3.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed: {said}"
    );
    assert!(said.trim().is_empty(), "promtool lint: {said}");
}
