//! The latest-frame slot: one shared, lock-free "newest frame" that the capture loop publishes
//! into and every viewer reads from.
//!
//! Reading is an `ArcSwapOption` load, so publishing never waits for readers and a slow reader
//! simply finds a newer frame next time (it skips the ones in between). Readers that want the
//! next frame sleep on a futex over a generation counter that every publish bumps: one publish
//! wakes every waiter with one system call, and no waiter has to take a lock to go on (a
//! condition variable would make hundreds of viewers queue up on its mutex for every frame).
//! The slot also counts who is watching, so the capture loop encodes only while somebody wants
//! frames. Threads that sleep in epoll instead (the stream senders) register a listener that
//! wakes them.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Bumped after every publish and on close; waiters sleep while it keeps its value.
    generation: AtomicU32,
    closed: AtomicBool,
    watchers: AtomicUsize,
    listeners: Mutex<Vec<Listener>>,
}

impl Default for FrameSlot {
    fn default() -> Self {
        FrameSlot {
            latest: ArcSwapOption::empty(),
            born: Instant::now(),
            interest_until: AtomicU64::new(0),
            generation: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            watchers: AtomicUsize::new(0),
            listeners: Mutex::default(),
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

    /// Makes `frame` the newest frame and wakes every waiting reader.
    pub fn publish(&self, frame: Frame) {
        self.latest.store(Some(Arc::new(frame)));
        // Bumped after the store: a waiter that saw the old generation either sees the new frame
        // on its re-check or finds the generation changed and does not sleep.
        self.generation.fetch_add(1, Ordering::Release);
        futex::wake_all(&self.generation);
        self.notify_listeners();
    }

    /// Registers `f` to be called after every publish and on close.
    pub fn on_publish(&self, f: Listener) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    fn notify_listeners(&self) {
        for f in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
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
        loop {
            let generation = self.generation.load(Ordering::Acquire);
            if self.closed.load(Ordering::Acquire) {
                return Wait::Closed;
            }
            if let Some(f) = self
                .latest
                .load_full()
                .filter(|f| after.is_none_or(|s| f.seq > s))
            {
                return Wait::Frame(f);
            }
            let now = Instant::now();
            if now >= deadline {
                return Wait::Timeout;
            }
            futex::wait(&self.generation, generation, deadline - now);
        }
    }

    /// Wakes every reader for good: later waits return [`Wait::Closed`] at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
        futex::wake_all(&self.generation);
        self.notify_listeners();
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

/// The two futex operations the slot needs (Linux; camstream's cameras are V4L2 anyway).
mod futex {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `*word == expected`, at most `timeout`; may return early (spuriously).
    pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: the address is a live AtomicU32 for the duration of the call; FUTEX_WAIT only
        // reads it. Errors (EAGAIN: value changed, EINTR, ETIMEDOUT) all mean "re-check".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                &ts as *const libc::timespec,
            );
        }
    }

    /// Wakes every thread sleeping on `word`.
    pub fn wake_all(word: &AtomicU32) {
        // SAFETY: as above; FUTEX_WAKE does not touch the memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            );
        }
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
        slot.on_publish(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
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
