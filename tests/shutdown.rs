//! Shutdown: SIGTERM and SIGINT end every stream after a complete part and exit 0, even with a
//! viewer stuck in a write; a second signal exits 130 while the first shutdown is stuck.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::process::Stdio;
use std::time::Duration;

use crate::util::{
    self, assert_closed_by_server, check_part, metric, next, pattern_server, stalled_viewer, watch,
    MjpegClient, Server,
};

/// Signals the server with `sig` and checks a clean, prompt exit and that every viewer sees its
/// stream end.
fn assert_clean_shutdown(s: &mut Server, sig: i32, viewers: Vec<MjpegClient>) {
    let st = s
        .signal_and_wait(sig, Duration::from_secs(5))
        .expect("exit within 5 s of the signal");
    assert_eq!(st.code(), Some(0), "exit status after signal {sig}: {st:?}");
    for (i, mut v) in viewers.into_iter().enumerate() {
        // Whatever was still on the way, then the end: a bounded number of parts.
        let mut ended = false;
        for _ in 0..10_000 {
            if v.next_part().is_none() {
                ended = true;
                break;
            }
        }
        assert!(ended, "viewer {i}: the stream did not end");
        assert_closed_by_server(&mut v.reader, &format!("viewer {i}"));
    }
}

#[test]
fn sigterm_ends_streams_and_exits_0_even_with_a_stuck_viewer() {
    let mut s = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "1280x720",
        "--quality",
        "95",
        "--send-timeout",
        "60s",
    ]);
    // A viewer that never reads: wait until its thread is stuck in a write (no byte sent while
    // ten frames were captured).
    let _stuck = stalled_viewer(s.addr, "/stream");
    let mut last = (-1.0, 0.0);
    util::wait_until("the stalled viewer's write to block", || {
        let m = s.get("/metrics").text();
        let now = (
            metric(&m, "camstream_bytes_sent_total"),
            metric(&m, "camstream_frames_captured_total"),
        );
        if now.0 != last.0 {
            last = now;
            return false;
        }
        now.0 > 0.0 && now.1 >= last.1 + 10.0
    });
    let mut viewers: Vec<MjpegClient> = (0..2).map(|_| watch(s.addr, "/stream")).collect();
    for v in &mut viewers {
        check_part(&next(v), 1280, 720);
    }
    assert_eq!(s.metric("camstream_viewers"), 3.0);
    assert_clean_shutdown(&mut s, util::SIGTERM, viewers);
}

#[test]
/// Shutdown never cuts a frame: the body ends right after a complete part's delimiter. (No
/// close delimiter follows: every delimiter goes out with its CRLF at once so clients show a
/// frame without waiting for the next, and a close delimiter after that would need an empty
/// part, which players would try to show; like µStreamer and mjpg-streamer, the end of the
/// connection ends the stream.)
fn shutdown_ends_the_body_after_a_complete_part() {
    let mut s = pattern_server(&[]);
    let mut c = watch(s.addr, "/stream");
    check_part(&next(&mut c), 320, 240);
    let st = s
        .signal_and_wait(util::SIGTERM, Duration::from_secs(5))
        .expect("exit within 5 s");
    assert!(st.success());
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).expect("EOF");
    let delimiter = format!("\r\n--{}\r\n", c.boundary);
    let tail = String::from_utf8_lossy(&rest[rest.len().saturating_sub(64)..]).into_owned();
    assert!(
        rest.is_empty() || tail.ends_with(&delimiter),
        "the body ends {tail:?}, not with {delimiter:?}"
    );
}

#[test]
fn sigint_ends_streams_and_exits_0() {
    let mut s = pattern_server(&[]);
    let mut viewers: Vec<MjpegClient> = (0..2).map(|_| watch(s.addr, "/stream")).collect();
    for v in &mut viewers {
        check_part(&next(v), 320, 240);
    }
    assert_clean_shutdown(&mut s, util::SIGINT, viewers);
}

/// A pipe whose buffer is full and that nobody reads: a process writing to it blocks.
fn full_pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array; O_CLOEXEC keeps them out of other children.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fds are fresh and owned here.
    let (rd, mut wr) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    for chunk in [4096usize, 512, 64, 8, 1] {
        let bytes = vec![b'.'; chunk];
        for _ in 0..100_000 {
            if wr.write(&bytes).is_err() {
                break;
            }
        }
    }
    // Blocking again (the flag belongs to the shared file description the child gets).
    // SAFETY: as above.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, 0) };
    (rd, wr)
}

#[test]
fn a_second_signal_exits_130_while_shutdown_is_stuck() {
    // Deterministic: the server's stderr is a full pipe, so after the first SIGINT the main
    // thread blocks forever printing "shutting down"; only the second signal can end it.
    let (_keep_reader, stderr) = full_pipe();
    let mut cmd = util::camstream();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--source",
        "pattern",
        "--size",
        "160x120",
    ]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    let mut child = cmd.spawn().expect("start camstream serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    out.read_line(&mut banner).expect("the ready line");
    let addr = util::banner_addr(&banner).expect("URL in the banner");
    let mut s = Server {
        child,
        addr,
        banner,
    };

    let mut viewer = watch(s.addr, "/stream");
    check_part(&next(&mut viewer), 160, 120);
    let threads = util::thread_count(s.pid());
    // SAFETY: kill() on our own child.
    unsafe { libc::kill(s.pid() as i32, libc::SIGINT) };
    // The first signal is handled: the capture thread ends and the viewer's stream closes.
    util::wait_until("the capture thread to stop", || {
        util::thread_count(s.pid()) < threads
    });
    for _ in 0..10_000 {
        if viewer.next_part().is_none() {
            break;
        }
    }
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "exited before the second signal"
    );
    let st = s
        .signal_and_wait(util::SIGINT, Duration::from_secs(5))
        .expect("exit within 5 s of the second signal");
    assert_eq!(st.code(), Some(130), "{st:?}");
}
