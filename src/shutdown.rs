//! One shutdown flag observed by every loop, with sleeps that end early when it is raised, and
//! the signal thread that raises it on SIGINT/SIGTERM (a second signal exits at once with 130)
//! and reloads the auth file on SIGHUP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Raises the flag and wakes every sleeper.
    pub fn trigger(&self) {
        self.0.flag.store(true, Ordering::Release);
        let _g = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.0.cond.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.flag.load(Ordering::Acquire)
    }

    /// Sleeps until `deadline` or shutdown; returns true when shutting down.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        let mut g = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_triggered() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = self
                .0
                .cond
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Sleeps for `d` or until shutdown; returns true when shutting down.
    pub fn sleep(&self, d: Duration) -> bool {
        self.sleep_until(Instant::now() + d)
    }

    /// Blocks until shutdown.
    pub fn wait(&self) {
        while !self.sleep(Duration::from_secs(3600)) {}
    }
}

/// Takes SIGINT, SIGTERM and SIGHUP on a thread of their own: the first SIGINT or SIGTERM
/// raises `shutdown`, a second one exits the process with 130. SIGHUP calls `hangup` if given
/// (serve reloads its auth file), and otherwise counts as SIGTERM.
///
/// The signals are blocked in the calling thread, and so in every thread it starts afterwards
/// (call this before starting any), and taken with `sigwait`: the handler is ordinary code that
/// may read files, not an async-signal handler.
pub fn install_signal_handler(
    shutdown: &Shutdown,
    hangup: Option<Box<dyn Fn() + Send>>,
) -> anyhow::Result<()> {
    // SAFETY: sigemptyset/sigaddset on a local set, pthread_sigmask on the calling thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            anyhow::bail!(
                "cannot install the signal handler: {}",
                std::io::Error::from_raw_os_error(rc)
            );
        }
        set
    };
    let s = shutdown.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig = 0;
            // SAFETY: sigwait on the set built above, which this thread has blocked.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            match (&hangup, sig) {
                // A panic here would leave the signals blocked with nobody taking them.
                (Some(reload), libc::SIGHUP) => {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(reload));
                }
                _ if s.is_triggered() => std::process::exit(130),
                _ => s.trigger(),
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the signal thread: {e}"))?;
    Ok(())
}

/// Joins `h` if it finishes by `deadline`; otherwise leaves it to end with the process.
pub fn join_until(h: std::thread::JoinHandle<()>, deadline: std::time::Instant) {
    while !h.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if h.is_finished() {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_wakes_sleepers() {
        let s = Shutdown::new();
        let t = {
            let s = s.clone();
            std::thread::spawn(move || s.sleep(Duration::from_secs(60)))
        };
        s.trigger();
        assert!(t.join().unwrap());
        assert!(s.sleep(Duration::from_secs(60)));
    }

    #[test]
    fn sleep_ends_at_deadline_without_trigger() {
        assert!(!Shutdown::new().sleep(Duration::from_millis(5)));
    }
}
