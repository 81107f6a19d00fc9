//! Hostile and broken input: random bytes through the parser and router, malformed, oversized,
//! slow and pipelined requests against a live server, authentication, per-address limits, and
//! bad flag values. Never a panic, never a stuck worker; slots and descriptors always return.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use camstream::server::http::{parse_head, HeadError};
use camstream::server::routes::{route, Reply};

use crate::util::{
    camstream, closed_without_answer, connect, detached_app, fd_count, get, request, wait_until,
    MjpegClient, Server,
};

const TEMPLATES: [&str; 8] = [
    "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /?action=snapshot&timestamp=1 HTTP/1.0\r\n\r\n",
    "HEAD /metrics HTTP/1.1\r\nHost: a\r\nAuthorization: Basic YTpi\r\n\r\n",
    "OPTIONS /state HTTP/1.1\r\nHost: a\r\nOrigin: http://x\r\n\r\n",
    "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "GET /stream?fps=7 HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /%2e%2e/%00?x=%ff HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX: \u{e9}\r\n\r\n",
];

#[test]
fn random_requests_through_parser_and_router_never_panic() {
    let app = detached_app(Some("user:pass"));
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    // Seeded, so a failure reproduces.
    let mut rng = fastrand::Rng::with_seed(0x5EED_CAFE);
    let mut parsed = 0;
    for i in 0..20_000 {
        let mut buf: Vec<u8> = if i % 4 == 0 {
            (0..rng.usize(..200)).map(|_| rng.u8(..)).collect()
        } else {
            TEMPLATES[rng.usize(..TEMPLATES.len())].as_bytes().to_vec()
        };
        for _ in 0..rng.usize(..4) {
            if buf.is_empty() {
                break;
            }
            let at = rng.usize(..buf.len());
            match rng.usize(..5) {
                0 => buf[at] = rng.u8(..),
                1 => buf.truncate(at),
                2 => buf.insert(at, b"\r\n:/?%\x00 "[rng.usize(..8)]),
                3 => buf
                    .splice(at..at, std::iter::repeat_n(b'a', rng.usize(..20_000)))
                    .for_each(drop),
                _ => {
                    let copy = buf.clone();
                    buf.extend_from_slice(&copy);
                }
            }
        }
        match parse_head(&buf, peer) {
            Ok(head) => {
                parsed += 1;
                match route(&head.request, &app) {
                    Reply::Response(r) => {
                        assert!(
                            [200, 204, 400, 401, 404, 405, 429, 503].contains(&r.status_code),
                            "{}",
                            r.status_code
                        )
                    }
                    Reply::Stream { max_fps } => {
                        assert!(max_fps.is_none_or(|f| (1..=120).contains(&f)))
                    }
                    Reply::Snapshot => {}
                }
            }
            Err(HeadError::Partial) => {}
            Err(HeadError::Reject(code, _)) => assert!([400, 414, 431].contains(&code), "{code}"),
        }
    }
    assert!(
        parsed > 1_000,
        "the mutations should leave many requests valid: {parsed}"
    );
}

/// Sends raw bytes and reads whatever comes back until the server closes.
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = connect(addr);
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn malformed_oversized_slow_and_pipelined_requests_get_the_right_answer() {
    let srv = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "160x120",
        "--header-timeout",
        "1s",
        "--workers",
        "2",
    ]);
    let a = srv.addr;
    let fds_before = fd_count(srv.pid());

    assert_eq!(
        status_of(&raw(a, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")),
        400
    );
    assert_eq!(
        status_of(&raw(a, b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")),
        405
    );
    assert_eq!(
        status_of(&raw(a, b"GET /healthz HTTP/1.1\r\n\r\n")),
        400,
        "HTTP/1.1 without Host"
    );
    assert_eq!(
        status_of(&raw(a, b"GET /healthz HTTP/1.0\r\n\r\n")),
        200,
        "HTTP/1.0 needs no Host"
    );
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10_000));
    assert_eq!(status_of(&raw(a, long_line.as_bytes())), 414);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    assert_eq!(status_of(&raw(a, big_header.as_bytes())), 431);

    // Pipelined: the first request is answered, then the connection closes.
    let two = raw(
        a,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /state HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status_of(&two), 200);
    assert_eq!(two.matches("HTTP/1.1 ").count(), 1, "{two}");

    // A head that never completes gets 408 after --header-timeout; one byte a while too.
    assert_eq!(
        status_of(&raw(a, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")),
        408
    );
    let mut slow = connect(a);
    let mut answer = Vec::new();
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let _ = slow.set_nonblocking(true);
        let mut tmp = [0u8; 256];
        if let Ok(n) = slow.read(&mut tmp) {
            answer.extend_from_slice(&tmp[..n]);
            break;
        }
        let _ = slow.set_nonblocking(false);
    }
    let _ = slow.set_nonblocking(false);
    let _ = slow.read_to_end(&mut answer);
    assert_eq!(status_of(&String::from_utf8_lossy(&answer)), 408);

    // An idle connection that sends nothing is closed after the header timeout.
    // (A read that times out instead is a failure, not an empty answer.)
    closed_without_answer(&connect(a));

    // Nothing leaked: every connection released, every worker still answering.
    wait_until("connections to drain", || {
        srv.metric("camstream_connections") <= 1.0
    });
    for _ in 0..8 {
        assert_eq!(srv.get("/healthz").status, 200);
    }
    wait_until("descriptors back to baseline", || {
        fd_count(srv.pid()) <= fds_before
    });
}

#[test]
fn authentication_guards_everything_but_the_exempt_endpoints() {
    let srv = crate::util::auth_server("viewer:letmein", "healthz,metrics");
    let a = srv.addr;
    for path in ["/stream", "/snapshot", "/state", "/", "/?action=stream"] {
        let r = get(a, path);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"camstream\", charset=\"UTF-8\"")
        );
    }
    assert_eq!(get(a, "/healthz").status, 200);
    assert_eq!(get(a, "/metrics").status, 200);
    assert_eq!(
        request(a, "OPTIONS /stream HTTP/1.1\r\nHost: x\r\n\r\n").status,
        204
    );
    // "viewer:letmein" and a wrong password, in base64.
    let good = "Authorization: Basic dmlld2VyOmxldG1laW4=";
    let bad = "Authorization: Basic dmlld2VyOmxldG1lb3V0";
    assert_eq!(
        request(
            a,
            &format!("GET /snapshot HTTP/1.1\r\nHost: x\r\n{bad}\r\n\r\n")
        )
        .status,
        401
    );
    let r = request(
        a,
        &format!("GET /snapshot HTTP/1.1\r\nHost: x\r\n{good}\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
}

#[test]
fn a_hashed_auth_file_works_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = camstream()
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let users = dir.path().join("users");
    std::fs::write(&users, format!("alice:{hash}")).unwrap();
    let srv = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "160x120",
        "--auth-file",
        users.to_str().unwrap(),
    ]);
    // "alice:s3cret"
    let r = request(
        srv.addr,
        "GET /state HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(srv.addr, "/state").status, 401);

    std::fs::write(&users, "alice:not-a-hash\n").unwrap();
    let o = camstream()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            "pattern",
            "--auth-file",
            users.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 1") && err.contains(users.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn one_address_cannot_take_every_slot_with_a_per_address_limit() {
    let srv = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "160x120",
        "--max-clients",
        "4",
        "--max-clients-per-ip",
        "2",
    ]);
    let mut v1 = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    let mut v2 = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    assert!(v1.next_part().is_some() && v2.next_part().is_some());
    let third = MjpegClient::open(srv.addr, "/stream", 1)
        .err()
        .expect("refused");
    assert_eq!(third.status, 503);
    assert!(
        third.text().contains("this address already has 2 streams"),
        "{}",
        third.text()
    );
    assert_eq!(third.header("retry-after"), Some("1"));
    drop(v1);
    wait_until("the address's slot to free", || {
        srv.metric("camstream_viewers") == 1.0
    });
    let mut again = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    assert!(again.next_part().is_some());
}

#[test]
fn snapshots_cannot_make_the_encoder_outrun_the_source() {
    let srv = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "320x240",
        "--fps",
        "10",
        "--workers",
        "4",
    ]);
    let a = srv.addr;
    let hammers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..40 {
                    assert_eq!(get(a, "/snapshot").status, 200);
                }
            })
        })
        .collect();
    for h in hammers {
        h.join().unwrap();
    }
    let text = get(a, "/metrics").text();
    let encoded = crate::util::metric(&text, "camstream_frames_encoded_total");
    let captured = crate::util::metric(&text, "camstream_frames_captured_total");
    assert!(
        encoded <= captured,
        "encoded {encoded} > captured {captured}"
    );
}

#[test]
fn bad_serve_flags_exit_2_naming_flag_and_value() {
    let cases: [(&[&str], &str); 9] = [
        (&["--listen", "nonsense"], "'nonsense'"),
        (&["--max-clients", "0"], "--max-clients"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--workers", "0"], "--workers"),
        (&["--workers", "many"], "'many'"),
        (&["--send-timeout", "0"], "'0'"),
        (&["--header-timeout", "x"], "'x'"),
        (&["--auth-exempt", "admin"], "'admin'"),
        (&["--max-clients-per-ip", "0"], "--max-clients-per-ip"),
    ];
    let source_cases: [(&[&str], &str); 3] = [
        (&["--format", "h264"], "'h264'"),
        (&["--fps", "121"], "--fps"),
        (&["--size", "640x"], "'640x'"),
    ];
    for (args, needle) in cases.into_iter().chain(source_cases) {
        let o = camstream().arg("serve").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn bad_snapshot_only_flags_exit_2() {
    for (args, needle) in [(["--skip", "-1"], "'-1'"), (["--skip", "1001"], "--skip")] {
        let o = camstream()
            .arg("snapshot")
            .args(args)
            .args(["--source", "pattern", "-"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = camstream()
        .args(["serve", "--source", "pattern", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim(),
        format!("camstream: error: failed to bind {addr}: address already in use")
    );
}

#[test]
fn running_out_of_descriptors_delays_connections_but_loses_none() {
    use std::os::unix::process::CommandExt;
    let mut cmd = camstream();
    // SAFETY: setrlimit is async-signal-safe and runs in the forked child only.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 48,
                rlim_max: 48,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let srv = Server::start_with(
        cmd,
        &[
            "--source",
            "pattern",
            "--size",
            "160x120",
            "--max-connections",
            "100",
        ],
    );
    // More connections than descriptors: the server takes what it can, the kernel queues the
    // rest in the backlog (the server cannot even answer /metrics now).
    let mut socks: Vec<_> = (0..60).map(|_| connect(srv.addr)).collect();
    // Free descriptors; the queued connections must then be taken and answered.
    let mut last = socks.pop().unwrap();
    socks.truncate(20);
    drop(socks);
    last.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    last.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}
