//! The stream as players and raw sockets see it: ffmpeg decodes it, the wire format over HTTP/1.1
//! and HTTP/1.0, HEAD, freshness after nobody watched, query parameters and the `?fps=` cap, and
//! a file source's JPEGs passed through untouched. Synchronised on parts and gauges, not sleeps.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    self, check_part, connect, jpeg_dims, jpeg_not_uniform, next, now_secs, pattern_server,
    run_bounded, watch, MjpegClient, Server,
};

// ---------------------------------------------------------------------------------------------
// Real players: ffmpeg
// ---------------------------------------------------------------------------------------------

#[test]
fn ffmpeg_decodes_frames_from_stream_and_the_mjpg_streamer_url() {
    let s = pattern_server(&[]);
    let url_stream = format!("http://{}/stream", s.addr);
    let url_action = format!("http://{}/?action=stream", s.addr);
    // Both players at once: /stream decoded to nothing (the documented command) and the
    // mjpg-streamer URL decoded with one checksum line per frame, to count them.
    let a = thread::spawn(move || {
        let mut c = Command::new("ffmpeg");
        c.args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "mpjpeg",
            "-i",
            &url_stream,
            "-frames:v",
            "20",
            "-f",
            "null",
            "-",
        ]);
        run_bounded(c, Duration::from_secs(60))
    });
    let b = thread::spawn(move || {
        let mut c = Command::new("ffmpeg");
        c.args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "mpjpeg",
            "-i",
            &url_action,
            "-frames:v",
            "20",
            "-f",
            "framecrc",
            "-",
        ]);
        run_bounded(c, Duration::from_secs(60))
    });
    for (name, out) in [
        ("/stream", a.join().unwrap()),
        ("/?action=stream", b.join().unwrap()),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ffmpeg on {name} failed: {err}");
        assert!(
            err.trim().is_empty(),
            "ffmpeg on {name} reported errors: {err}"
        );
        if name == "/?action=stream" {
            let text = String::from_utf8_lossy(&out.stdout);
            let frames: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(frames.len(), 20, "decoded frames: {text}");
        }
    }
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 2.0);
    util::wait_until("both ffmpeg viewers to be gone", || {
        s.metric("camstream_viewers") == 0.0
    });
}

// ---------------------------------------------------------------------------------------------
// The stream on the wire
// ---------------------------------------------------------------------------------------------

#[test]
fn stream_wire_format_over_http_1_1() {
    let s = pattern_server(&[]);
    let mut c = MjpegClient::open(s.addr, "/stream", 1).unwrap();
    let raw = c.raw_head.clone();
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    let h = &c.head;
    let ct = h.header("content-type").unwrap();
    assert!(
        ct.starts_with("multipart/x-mixed-replace;boundary="),
        "{ct}"
    );
    assert!(
        !c.boundary.is_empty() && !c.boundary.starts_with("--"),
        "boundary declared without '--': {ct}"
    );
    assert!(
        !c.boundary.contains([' ', '"', ';']),
        "plain boundary token: {ct}"
    );
    let cc = h.header("cache-control").expect("Cache-Control");
    for d in ["no-store", "no-cache", "must-revalidate"] {
        assert!(cc.contains(d), "Cache-Control {cc:?} lacks {d}");
    }
    assert_eq!(h.header("pragma"), Some("no-cache"));
    let expires = h.header("expires").expect("Expires");
    let year: u32 = expires
        .split_whitespace()
        .find_map(|w| (w.len() == 4).then(|| w.parse().ok()).flatten())
        .unwrap_or_else(|| panic!("Expires {expires:?} has no year"));
    assert!(year < 2000, "Expires must be in the past: {expires:?}");
    assert!(
        h.header("transfer-encoding").is_none(),
        "no chunked encoding: {raw}"
    );
    assert!(
        h.header("content-length").is_none(),
        "an endless body has no length: {raw}"
    );
    assert!(
        h.header("access-control-allow-origin").is_none(),
        "no CORS unless asked: {raw}"
    );

    let mut last = 0.0;
    for i in 0..8 {
        let p = next(&mut c);
        let ts = check_part(&p, 320, 240);
        assert!(jpeg_not_uniform(&p.body));
        assert!(ts > last, "part {i}: X-Timestamp {ts} not after {last}");
        last = ts;
    }
    assert!(s.metric("camstream_frames_sent_total") >= 1.0);
}

#[test]
fn stream_works_for_http_1_0_clients() {
    let s = pattern_server(&[]);
    // HTTP/1.0 needs no Host header.
    let mut st = connect(s.addr);
    st.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
    let mut r = BufReader::new(st);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK\r\n");
    drop(r);

    let mut c = MjpegClient::open(s.addr, "/stream", 0).unwrap();
    let raw = c.raw_head.clone();
    assert!(raw.starts_with("HTTP/1.0 200 OK\r\n"), "{raw}");
    assert!(c.head.header("transfer-encoding").is_none(), "{raw}");
    let mut last = 0.0;
    for _ in 0..4 {
        let ts = check_part(&next(&mut c), 320, 240);
        assert!(ts > last);
        last = ts;
    }
}

#[test]
fn head_stream_sends_the_stream_head_and_no_parts() {
    let s = pattern_server(&[]);
    let r = util::request(s.addr, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("multipart/x-mixed-replace;boundary="));
    assert!(r.body.is_empty(), "HEAD got a body: {:?}", r.text());
    // A HEAD is no viewer.
    assert_eq!(s.metric("camstream_viewers_accepted_total"), 0.0);
}

#[test]
fn stream_first_part_is_fresh_after_nobody_watched() {
    let s = pattern_server(&[]);
    let mut c = watch(s.addr, "/stream");
    next(&mut c);
    drop(c);
    util::wait_until("the viewer to be gone", || {
        s.metric("camstream_viewers") == 0.0
    });
    // Nobody watches for >= 2 s of capture (60 frames at 30 fps): nothing is encoded meanwhile.
    let captured = s.metric("camstream_frames_captured_total");
    util::wait_until("2 s of unwatched capture", || {
        s.metric("camstream_frames_captured_total") >= captured + 60.0
    });
    let asked = now_secs();
    let mut c = watch(s.addr, "/stream");
    let ts = check_part(&next(&mut c), 320, 240);
    assert!(
        ts > asked - 1.0,
        "first part was captured {:.1} s before it was asked for",
        asked - ts
    );
}

// ---------------------------------------------------------------------------------------------
// Query parameters and the per-viewer fps cap
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_query_params_are_ignored_and_fps_caps_the_rate() {
    let s = pattern_server(&[]);
    let mut c = watch(s.addr, "/stream?timestamp=123");
    check_part(&next(&mut c), 320, 240);
    drop(c);
    let r = s.get("/snapshot?foo=bar");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(jpeg_dims(&r.body), (320, 240));
    let mut c = watch(s.addr, "/?action=stream&timestamp=1");
    check_part(&next(&mut c), 320, 240);
    drop(c);

    for bad in ["fps=0", "fps=abc", "fps=", "fps=-1", "fps=2.5", "fps=121"] {
        let r = s.get(&format!("/stream?{bad}"));
        assert_eq!(r.status, 400, "/stream?{bad}: {}", r.text());
        assert_eq!(r.text().lines().count(), 1, "{:?}", r.text());
    }

    // ?fps=2: at most one part per 0.5 s. Part k cannot leave before k * 0.5 s after the request
    // (the server paces from when it starts serving), so this bound on arrival holds strictly.
    let asked = Instant::now();
    let mut c = watch(s.addr, "/stream?fps=2");
    let mut stamps = Vec::new();
    for k in 0..4u32 {
        let ts = check_part(&next(&mut c), 320, 240);
        let arrived = asked.elapsed();
        let earliest = Duration::from_millis(500) * k;
        assert!(
            arrived + Duration::from_millis(2) >= earliest,
            "part {k} arrived after {arrived:?}, before {earliest:?}"
        );
        stamps.push(ts);
    }
    for w in stamps.windows(2) {
        assert!(
            w[1] - w[0] >= 0.4,
            "capped parts are {:.3} s apart: {stamps:?}",
            w[1] - w[0]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// File sources: pass-through
// ---------------------------------------------------------------------------------------------

/// Writes an MJPEG clip of `n` frames with ffmpeg's test source.
fn mjpeg_clip(dir: &Path, n: u32) -> std::path::PathBuf {
    let out = dir.join("clip.mjpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=5",
    ])
    .args(["-frames:v", &n.to_string(), "-f", "mjpeg"])
    .arg(&out);
    let o = run_bounded(cmd, Duration::from_secs(60));
    assert!(
        o.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn a_file_source_streams_its_jpegs_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let clip = mjpeg_clip(dir.path(), 10);
    let data = std::fs::read(&clip).unwrap();
    let (ranges, bad) = camstream::source::file::split_jpegs(&data);
    assert_eq!((ranges.len(), bad), (10, 0));
    let frames: HashSet<&[u8]> = ranges.iter().map(|r| &data[r.clone()]).collect();

    let src = format!("file:{}", clip.display());
    let s = Server::start(&["--source", &src, "--fps", "10"]);
    let mut c = watch(s.addr, "/stream");
    let mut seen = HashSet::new();
    let mut last = 0.0;
    for i in 0..12 {
        let p = next(&mut c);
        let ts = check_part(&p, 320, 240);
        assert!(ts >= last, "part {i}");
        last = ts;
        assert!(
            frames.contains(p.body.as_slice()),
            "part {i} is not one of the clip's JPEGs byte for byte"
        );
        seen.insert(p.body);
    }
    assert!(seen.len() >= 2, "the clip is replayed, not one frame");
    let snap = s.get("/snapshot");
    assert!(frames.contains(snap.body.as_slice()));
    assert_eq!(
        s.metric("camstream_frames_encoded_total"),
        0.0,
        "passed through, never re-encoded"
    );
}
