//! One shutdown flag observed by every loop, with sleeps that end early when it is raised, and
//! the SIGINT/SIGTERM handler that raises it (a second signal exits at once with 130).

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

/// Routes SIGINT and SIGTERM to `shutdown`; a second signal exits the process with 130.
pub fn install_signal_handler(shutdown: &Shutdown) -> anyhow::Result<()> {
    let s = shutdown.clone();
    ctrlc::set_handler(move || {
        if s.is_triggered() {
            std::process::exit(130);
        }
        s.trigger();
    })
    .map_err(|e| anyhow::anyhow!("cannot install the signal handler: {e}"))
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
