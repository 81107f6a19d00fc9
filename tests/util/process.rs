//! Process helpers shared by the tests (`tests/util.rs`) and the benchmarks (`benches/common`,
//! which includes this file by path): finding the address in `camstream serve`'s start line,
//! stopping a child for certain, and thread and descriptor counts from /proc. Only std and libc,
//! so that both can build it.

// Each user takes its own share.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

/// The address in `camstream serve`'s start line, "... serving SOURCE on http://ADDR/ (...)";
/// the SOURCE may be a URL too, hence the " on ".
pub fn banner_addr(banner: &str) -> Option<SocketAddr> {
    banner
        .split(" on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
}

/// Stops `child` for certain and reaps it: SIGTERM first when `grace` is not zero (a server
/// that exits cleanly leaves nothing behind), SIGKILL once `grace` has passed. Meant for a
/// guard's `Drop`, so it also runs while a test or a bench panics.
pub fn stop(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if !grace.is_zero() {
        // SAFETY: kill() on a child we started and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Threads of a process, from /proc.
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Open file descriptors of a process, from /proc.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of a process from /proc/PID/status, in MiB: (now, peak) = (VmRSS, VmHWM);
/// NaN where unreadable.
pub fn rss_mb(pid: u32) -> (f64, f64) {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |key: &str| {
        st.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// A TCP port that was free a moment ago, for a server that must be given one.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
