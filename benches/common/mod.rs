//! Helpers shared by the benchmarks: statistics, the server process guard, /proc readings. The
//! start-line parser, the way a child is stopped and the /proc counts are the tests' own
//! (tests/util/process.rs), so that tests and benches read the server the same way.

// Each bench uses its own share of these.
#![allow(dead_code)]

#[path = "../../tests/util/process.rs"]
mod process;
// Like the rest of this module: each bench uses its own share.
#[allow(unused_imports)]
pub use process::{banner_addr, fd_count, free_port, rss_mb, thread_count};

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The median of `v` (sorted in place); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p` quantile (0..=1, nearest rank) of an ascending slice; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[idx])
}

/// A server process; killed (SIGTERM, then SIGKILL) when dropped, also while panicking.
pub struct Proc {
    pub child: Child,
    pub stderr_log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        process::stop(&mut self.child, Duration::from_millis(1500));
    }
}

/// Starts `cmd` (a `camstream serve ... --listen 127.0.0.1:0`), its stderr into `log`, and waits
/// at most 15 s for its start line; returns the guard, the bound address and the line. Stdout
/// keeps being drained, so the server never blocks on it.
pub fn spawn_server(mut cmd: Command, log: PathBuf) -> Result<(Proc, SocketAddr, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = Proc {
        child,
        stderr_log: log,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let banner = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(Some(Ok(l))) => l,
        _ => {
            return Err(format!(
                "camstream printed no start line; stderr: {}",
                proc.stderr_tail()
            ))
        }
    };
    let addr = banner_addr(&banner).ok_or_else(|| format!("no address in {banner:?}"))?;
    assert!(addr.ip().is_loopback());
    Ok((proc, addr, banner))
}

/// CPU time of a process's live threads in seconds, from /proc/PID/task/*/schedstat
/// (nanoseconds, finer than the 10 ms ticks of /proc/PID/stat; a server's threads live as long
/// as it does, so none is missed). `pid` may be `self`. None where the kernel has no schedstat.
pub fn cpu_seconds_schedstat(pid: &str) -> Option<f64> {
    let threads = cpu_by_thread(pid);
    (!threads.is_empty()).then(|| threads.values().sum())
}

/// The same, summed by thread name with a trailing `-N` taken off (`sender-0` and `sender-1`
/// count as `sender`), so that the senders' fan-out and the capture thread's encoding can be
/// told apart. Empty where the kernel has no schedstat.
pub fn cpu_by_thread(pid: &str) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by;
    };
    for t in dir.flatten() {
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(t.path().join("comm")),
            std::fs::read_to_string(t.path().join("schedstat")),
        ) else {
            continue;
        };
        let Some(ns) = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        else {
            continue;
        };
        let comm = comm.trim();
        let name = match comm.rsplit_once('-') {
            Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => comm,
        };
        *by.entry(name.to_string()).or_insert(0.0) += ns as f64 / 1e9;
    }
    by
}

/// Clock ticks per second, the unit of /proc/stat.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// The machine's CPU time from /proc/stat's first line, in seconds: (busy, steal). Busy excludes
/// idle, iowait and steal.
pub fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 8 {
        return (f64::NAN, f64::NAN);
    }
    // user nice system idle iowait irq softirq steal (guest is already in user)
    let busy = f[0] + f[1] + f[2] + f[5] + f[6];
    (busy / clk_tck(), f[7] / clk_tck())
}

/// Raises this process's soft open-file limit to `want` (the hard limit too if allowed);
/// returns the soft limit in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_cur >= want {
            return r.rlim_cur;
        }
        let hard = r.rlim_max.max(want);
        let mut n = libc::rlimit {
            rlim_cur: want,
            rlim_max: hard,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &n) != 0 {
            // Not allowed to raise the hard limit: go as far as it allows.
            n = libc::rlimit {
                rlim_cur: r.rlim_max.min(want),
                rlim_max: r.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &n);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur
    }
}
