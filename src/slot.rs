//! The latest-frame slot: one shared, lock-free "newest frame" that the capture loop publishes
//! into and every viewer reads from.
//!
//! Reading is an `ArcSwapOption` load, so publishing never waits for readers and a slow reader
//! simply finds a newer frame next time (it skips the ones in between). The stream senders
//! sleep in epoll, not here: they are woken by the listeners fixed when the server starts
//! ([`FrameSlot::set_listeners`]), which every publish calls without taking a lock. A thread
//! that wants to block until the next frame (`wait_newer`: tests, `snapshot`-style callers)
//! sleeps on a `Condvar`; nothing in the server does so per frame, so the mutex is taken only
//! while somebody actually waits. The slot also counts who is watching, so the capture loop
//! encodes only while somebody wants frames.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use arc_swap::ArcSwapOption;

use crate::frame::Frame;

/// The outcome of waiting for a frame.
#[derive(Debug)]
pub enum Wait {
    /// A frame newer than the one asked about.
    Frame(Arc<Frame>),
    /// Nothing newer within the timeout.
    Timeout,
    /// The slot was closed (shutdown).
    Closed,
}

/// Called after every publish and on close, for waiters that sleep elsewhere (in epoll).
pub type Listener = Box<dyn Fn() + Send + Sync>;

/// How long a snapshot request keeps the capture loop encoding after it: a client that polls
/// snapshots (Mainsail's "adaptive MJPEG", say) must find each new frame already encoded, not
/// wait for the next one and so see every other frame.
pub const SNAPSHOT_INTEREST: Duration = Duration::from_secs(2);

pub struct FrameSlot {
    latest: ArcSwapOption<Frame>,
    /// When the slot was made; [`FrameSlot::interest_until`] counts from it.
    born: Instant,
    /// Milliseconds after `born` until which frames are wanted without a watcher.
    interest_until: AtomicU64,
    closed: AtomicBool,
    watchers: AtomicUsize,
    /// Set once, before any viewer arrives; a publish reads it without a lock.
    listeners: OnceLock<Box<[Listener]>>,
    /// Threads inside [`FrameSlot::wait_newer`]. A publish takes `sleep`'s lock and notifies
    /// only when this is above zero, so with nobody blocked it costs no lock and no syscall.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

impl Default for FrameSlot {
    fn default() -> Self {
        FrameSlot {
            latest: ArcSwapOption::empty(),
            born: Instant::now(),
            interest_until: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            watchers: AtomicUsize::new(0),
            listeners: OnceLock::new(),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        }
    }
}

impl FrameSlot {
    pub fn new() -> FrameSlot {
        FrameSlot::default()
    }

    /// Keeps frames coming for [`SNAPSHOT_INTEREST`] from now, with nobody watching.
    pub fn want_frames_for_a_while(&self) {
        let until = (self.born.elapsed() + SNAPSHOT_INTEREST).as_millis() as u64;
        self.interest_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Fixes the functions called after every publish and on close. Done once, by the server
    /// as it starts its senders (before any viewer is taken, so a publish before it has nobody
    /// to wake); a second call fails.
    pub fn set_listeners(&self, listeners: Vec<Listener>) -> Result<()> {
        if self.listeners.set(listeners.into_boxed_slice()).is_err() {
            bail!("the frame slot's listeners are already set");
        }
        Ok(())
    }

    /// Makes `frame` the newest frame and wakes every waiting reader.
    pub fn publish(&self, frame: Frame) {
        self.latest.store(Some(Arc::new(frame)));
        self.wake_all();
    }

    /// Wakes the threads in [`FrameSlot::wait_newer`] and calls the listeners, after a
    /// publish or the close.
    fn wake_all(&self) {
        // Pairs with the fence in `wait_newer`: either this load sees its sleeper count, or
        // that sleeper's check sees the frame (or the close) stored above. The lock is taken
        // so that a sleeper between its check and its wait cannot miss the notification.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
            self.wake.notify_all();
        }
        for f in self.listeners.get().into_iter().flatten() {
            f();
        }
    }

    /// The newest frame, if any was published.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.latest.load_full()
    }

    /// Waits until a frame with a sequence number above `after` is published, the timeout
    /// passes, or the slot is closed. Sleeps meanwhile; never polls.
    pub fn wait_newer(&self, after: Option<u64>, timeout: Duration) -> Wait {
        let deadline = Instant::now() + timeout;
        let mut guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let outcome = loop {
            if self.closed.load(Ordering::Acquire) {
                break Wait::Closed;
            }
            if let Some(f) = self
                .latest
                .load_full()
                .filter(|f| after.is_none_or(|s| f.seq > s))
            {
                break Wait::Frame(f);
            }
            let now = Instant::now();
            if now >= deadline {
                break Wait::Timeout;
            }
            // Spurious wake-ups and timeouts both just lead to the re-check above.
            guard = match self.wake.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        };
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        outcome
    }

    /// Wakes every reader for good: later waits return [`Wait::Closed`] at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Registers interest in frames for as long as the guard lives.
    pub fn watch(self: &Arc<Self>) -> WatchGuard {
        self.watchers.fetch_add(1, Ordering::AcqRel);
        WatchGuard {
            slot: Arc::clone(self),
        }
    }

    /// Whether anybody wants frames now, i.e. whether encoding is worth doing: a viewer or
    /// waiting snapshot, or a recent snapshot request.
    pub fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Acquire) > 0
            || self.interest_until.load(Ordering::Relaxed) > self.born.elapsed().as_millis() as u64
    }
}

/// Keeps the slot's watcher count up while alive.
pub struct WatchGuard {
    slot: Arc<FrameSlot>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.slot.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn frame(seq: u64) -> Frame {
        Frame {
            seq,
            captured: SystemTime::now(),
            width: 2,
            height: 2,
            placeholder: false,
            jpeg: Arc::from(vec![seq as u8]),
        }
    }

    #[test]
    fn publishing_without_readers_works() {
        let slot = FrameSlot::new();
        assert!(slot.latest().is_none());
        for s in 1..=100 {
            slot.publish(frame(s));
        }
        assert_eq!(slot.latest().unwrap().seq, 100);
    }

    #[test]
    fn a_snapshot_request_keeps_frames_wanted_for_a_while() {
        let slot = FrameSlot::new();
        assert!(!slot.is_watched());
        slot.want_frames_for_a_while();
        assert!(slot.is_watched());
        let until = slot.interest_until.load(Ordering::Relaxed);
        assert!(until >= SNAPSHOT_INTEREST.as_millis() as u64);
    }

    #[test]
    fn readers_see_increasing_sequence_numbers() {
        let slot = Arc::new(FrameSlot::new());
        let reader = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut last = None;
                while let Wait::Frame(f) = slot.wait_newer(last, Duration::from_secs(10)) {
                    last = Some(f.seq);
                    seen.push(f.seq);
                }
                seen
            })
        };
        for s in 1..=500 {
            slot.publish(frame(s));
        }
        slot.close();
        let seen = reader.join().unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }

    #[test]
    fn a_slow_reader_gets_the_newest_frame_and_skips_the_rest() {
        let slot = FrameSlot::new();
        slot.publish(frame(1));
        let Wait::Frame(f) = slot.wait_newer(None, Duration::ZERO) else {
            panic!()
        };
        assert_eq!(f.seq, 1);
        // The reader is busy while three frames are published; it then gets only the newest.
        for s in 2..=4 {
            slot.publish(frame(s));
        }
        let Wait::Frame(f) = slot.wait_newer(Some(1), Duration::ZERO) else {
            panic!()
        };
        assert_eq!(f.seq, 4);
    }

    #[test]
    fn waiting_readers_wake_on_publish() {
        let slot = Arc::new(FrameSlot::new());
        slot.publish(frame(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (slot, tx) = (Arc::clone(&slot), tx.clone());
                std::thread::spawn(move || {
                    tx.send(()).unwrap();
                    match slot.wait_newer(Some(1), Duration::from_secs(30)) {
                        Wait::Frame(f) => f.seq,
                        other => panic!("{other:?}"),
                    }
                })
            })
            .collect();
        for _ in 0..3 {
            rx.recv().unwrap();
        }
        slot.publish(frame(2));
        for r in readers {
            assert_eq!(r.join().unwrap(), 2);
        }
    }

    #[test]
    fn no_wake_up_is_lost_when_publish_races_the_wait() {
        // Each frame is published the moment the reader has taken the previous one, so the
        // publish lands anywhere from before the reader's check to after it fell asleep. A lost
        // wake-up would show as a timeout.
        let slot = Arc::new(FrameSlot::new());
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        let reader = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                for s in 1..=2000 {
                    match slot.wait_newer(Some(s - 1), Duration::from_secs(10)) {
                        Wait::Frame(f) => assert_eq!(f.seq, s),
                        other => panic!("frame {s}: {other:?}"),
                    }
                    tx.send(()).unwrap();
                }
            })
        };
        for s in 1..=2000 {
            slot.publish(frame(s));
            rx.recv().unwrap();
        }
        reader.join().unwrap();
        assert_eq!(slot.sleepers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn waiting_readers_wake_on_close() {
        let slot = Arc::new(FrameSlot::new());
        let reader = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || slot.wait_newer(None, Duration::from_secs(30)))
        };
        slot.close();
        assert!(matches!(reader.join().unwrap(), Wait::Closed));
        assert!(matches!(
            slot.wait_newer(None, Duration::from_secs(30)),
            Wait::Closed
        ));
    }

    #[test]
    fn times_out_when_nothing_new() {
        let slot = FrameSlot::new();
        slot.publish(frame(7));
        assert!(matches!(
            slot.wait_newer(Some(7), Duration::from_millis(20)),
            Wait::Timeout
        ));
    }

    #[test]
    fn listeners_hear_every_publish_and_the_close() {
        let slot = FrameSlot::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let l: Listener = Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        slot.set_listeners(vec![l]).unwrap();
        assert!(
            slot.set_listeners(Vec::new()).is_err(),
            "listeners are set once"
        );
        slot.publish(frame(1));
        slot.publish(frame(2));
        slot.close();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn watchers_are_counted() {
        let slot = Arc::new(FrameSlot::new());
        assert!(!slot.is_watched());
        let a = slot.watch();
        let b = slot.watch();
        drop(a);
        assert!(slot.is_watched());
        drop(b);
        assert!(!slot.is_watched());
    }
}
