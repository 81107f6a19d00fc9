//! The latest-frame slot: one shared, lock-free "newest frame" that the capture loop publishes
//! into and every viewer reads from.
//!
//! Reading is an `ArcSwapOption` load, so publishing never waits for readers and a slow reader
//! simply finds a newer frame next time (it skips the ones in between). The stream senders
//! sleep in epoll, not here: they are woken by the listeners fixed when the server starts
//! ([`FrameSlot::set_listeners`]), which every publish calls without taking a lock; nothing
//! else waits on the slot. The slot also counts who is watching, so the capture loop encodes
//! only while somebody wants frames.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use arc_swap::ArcSwapOption;

use crate::frame::Frame;

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

    /// Makes `frame` the newest frame and calls the listeners.
    pub fn publish(&self, frame: Frame) {
        self.latest.store(Some(Arc::new(frame)));
        self.wake_all();
    }

    /// Calls the listeners, after a publish or the close.
    fn wake_all(&self) {
        for f in self.listeners.get().into_iter().flatten() {
            f();
        }
    }

    /// The newest frame, if any was published.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.latest.load_full()
    }

    /// Marks the slot closed for good (shutdown) and calls the listeners.
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
    fn a_slow_reader_gets_the_newest_frame_and_skips_the_rest() {
        let slot = FrameSlot::new();
        slot.publish(frame(1));
        assert_eq!(slot.latest().unwrap().seq, 1);
        // The reader is busy while three frames are published; it then gets only the newest.
        for s in 2..=4 {
            slot.publish(frame(s));
        }
        assert_eq!(slot.latest().unwrap().seq, 4);
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
        assert!(slot.is_closed());
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
