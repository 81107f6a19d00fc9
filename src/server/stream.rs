//! Serving MJPEG streams: a fixed number of sender threads, each writing every new frame to
//! its share of the viewers over non-blocking sockets.
//!
//! A sender sleeps in epoll until the slot announces a frame, a viewer's socket has room again,
//! or a deadline comes (a `?fps=` cap, the idle resend, an eviction check). Each new frame goes
//! to every idle viewer with one `writev` (part head, the shared JPEG bytes, the delimiter); a
//! viewer whose socket is full keeps its place in the frame and gets the rest when the socket
//! drains, then the newest frame; the frames it missed are counted as skipped. A viewer that
//! takes no byte for `--send-timeout` is evicted. Nobody waits for anybody: the capture loop
//! never waits for a sender and a sender never blocks on a viewer. With no new frame for a
//! second the last one is sent again, so proxies and players do not time out.
//!
//! Compared with a thread per viewer, this costs no context switch per delivered frame, and the
//! number of threads does not grow with `--max-clients`.

use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::frame::Frame;
use crate::server::listener::ConnSlot;
use crate::server::routes::NO_CACHE;
use crate::server::viewers::{Ticket, ViewerJob};
use crate::server::App;
use crate::slot::WatchGuard;

/// The multipart boundary, declared without the leading `--`.
pub const BOUNDARY: &str = "camstreamframe";
/// With no new frame for this long, the last one is sent again.
pub const IDLE_RESEND: Duration = Duration::from_secs(1);
/// What ends every part: the delimiter line, CRLF included, so a client can show the frame as
/// soon as it arrives (browsers wait for the end of the delimiter line before they show a
/// part). A close delimiter could then only follow an empty part, which players would try to
/// show; so, as with µStreamer and mjpg-streamer, closing the connection ends the stream.
const TAIL: &[u8] = b"\r\n--camstreamframe\r\n";
/// How often a sender looks for evictions and idle resends when nothing else wakes it.
const TICK: Duration = Duration::from_millis(100);
/// On shutdown, how long a sender may spend finishing the parts it has started.
const FINISH_WAIT: Duration = Duration::from_millis(500);
/// A viewer sends nothing after its request; one that floods us this much is dropped.
const MAX_VIEWER_INPUT: usize = 64 << 10;
const WAKER: Token = Token(0);

/// The response head of a stream.
pub fn response_head(minor_version: u8, allow_origin: Option<&str>) -> String {
    let mut h = format!(
        "HTTP/1.{} 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary={BOUNDARY}\r\n",
        minor_version.min(1)
    );
    for (k, v) in NO_CACHE {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(o) = allow_origin {
        h.push_str(&format!("Access-Control-Allow-Origin: {o}\r\n"));
    }
    // X-Accel-Buffering tells nginx not to buffer this response even if proxy_buffering is on.
    h.push_str("X-Accel-Buffering: no\r\nConnection: close\r\n\r\n");
    h
}

/// The headers of one part; the same for every viewer of the frame, so built once per frame.
pub fn part_head(f: &Frame) -> Arc<[u8]> {
    format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\n\r\n",
        f.jpeg.len(),
        f.timestamp()
    )
    .into_bytes()
    .into()
}

/// How many sender threads: one per core, at most four (each can feed hundreds of viewers).
pub fn sender_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

/// The sender threads and the way to hand them viewers.
pub struct Senders {
    lanes: Vec<Lane>,
}

/// One sender thread, seen from outside.
struct Lane {
    tx: Sender<ViewerJob>,
    waker: Arc<Waker>,
    viewers: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Senders {
    /// Starts `n` senders; each also wakes on every frame the slot publishes.
    pub fn start(app: &Arc<App>, n: usize) -> Result<Senders> {
        let mut lanes = Vec::with_capacity(n);
        for i in 0..n {
            let poll = Poll::new().context("cannot create a poller")?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = crossbeam_channel::bounded(app.settings.max_clients);
            let viewers = Arc::new(AtomicUsize::new(0));
            let (w, n) = (Arc::clone(&waker), Arc::clone(&viewers));
            // A sender without viewers has nothing to do with a frame (waking it costs tens of
            // microseconds on a VM); shutdown and new viewers wake it directly.
            app.slot.on_publish(Box::new(move || {
                if n.load(Ordering::Relaxed) > 0 {
                    let _ = w.wake();
                }
            }));
            let sender = SenderLoop {
                poll,
                rx,
                app: Arc::clone(app),
                count: Arc::clone(&viewers),
            };
            let thread = std::thread::Builder::new()
                .name(format!("sender-{i}"))
                .spawn(move || sender.run())
                .context("cannot start a sender thread")?;
            lanes.push(Lane {
                tx,
                waker,
                viewers,
                thread: Mutex::new(Some(thread)),
            });
        }
        Ok(Senders { lanes })
    }

    /// Gives an admitted viewer to the sender with the fewest viewers.
    pub fn dispatch(&self, job: ViewerJob) {
        let Some(lane) = self
            .lanes
            .iter()
            .min_by_key(|l| l.viewers.load(Ordering::Relaxed))
        else {
            return;
        };
        lane.viewers.fetch_add(1, Ordering::Relaxed);
        // Capacity is max_clients and each job holds an admission ticket: this cannot block.
        if lane.tx.send(job).is_ok() {
            let _ = lane.waker.wake();
        }
    }

    /// After the slot is closed: waits until `deadline` for the senders to finish their
    /// last parts and close every stream.
    pub fn join_until(&self, deadline: Instant) {
        for lane in &self.lanes {
            let _ = lane.waker.wake();
            if let Some(t) = lane.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                crate::server::join_until(t, deadline);
            }
        }
    }
}

/// What a viewer's socket is being given.
enum Out {
    Idle,
    /// The response head and the first delimiter.
    Head {
        buf: Vec<u8>,
        off: usize,
    },
    /// A part: its head, the frame's JPEG, the delimiter; `off` bytes already written.
    Part {
        head: Arc<[u8]>,
        frame: Arc<Frame>,
        off: usize,
    },
}

struct Viewer {
    conn: TcpStream,
    out: Out,
    /// The last frame started for this viewer.
    sent: Option<u64>,
    /// Last time a byte went out (or the viewer arrived), for eviction.
    progress: Instant,
    /// Last time a part was started, for the idle resend.
    started: Instant,
    min_gap: Option<Duration>,
    next_allowed: Instant,
    /// Bytes the viewer sent after its request (it should send none).
    input: usize,
    /// The viewer shut its sending side; nothing more to read.
    eof: bool,
    _watch: WatchGuard,
    _ticket: Ticket,
    _slot: ConnSlot,
}

enum Flush {
    /// Everything queued went out.
    Done,
    /// The socket is full; wait for it to drain.
    Blocked,
    /// The viewer left or the connection broke.
    Gone,
}

impl Viewer {
    /// Writes what is queued until done or the socket is full.
    fn flush(&mut self, app: &App) -> Flush {
        loop {
            let result = match &self.out {
                Out::Idle => return Flush::Done,
                Out::Head { buf, off } => self.conn.write(&buf[*off..]),
                Out::Part { head, frame, off } => {
                    let bufs: [&[u8]; 3] = [head, &frame.jpeg, TAIL];
                    let mut slices = [IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[])];
                    let (mut skip, mut n) = (*off, 0);
                    for b in bufs {
                        if skip >= b.len() {
                            skip -= b.len();
                        } else {
                            slices[n] = IoSlice::new(&b[skip..]);
                            skip = 0;
                            n += 1;
                        }
                    }
                    self.conn.write_vectored(&slices[..n])
                }
            };
            match result {
                Ok(0) => return Flush::Gone,
                Ok(n) => {
                    self.progress = Instant::now();
                    app.metrics.bytes_sent.inc_by(n as u64);
                    match &mut self.out {
                        Out::Head { buf, off } => {
                            *off += n;
                            if *off == buf.len() {
                                self.out = Out::Idle;
                            }
                        }
                        Out::Part { head, frame, off } => {
                            *off += n;
                            if *off == head.len() + frame.jpeg.len() + TAIL.len() {
                                app.metrics.frames_sent.inc();
                                self.out = Out::Idle;
                            }
                        }
                        Out::Idle => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flush::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Flush::Gone,
            }
        }
    }
}

/// One sender thread's state.
struct SenderLoop {
    poll: Poll,
    rx: Receiver<ViewerJob>,
    app: Arc<App>,
    count: Arc<AtomicUsize>,
}

/// The newest frame and its part head, built once per frame per sender.
struct Current {
    frame: Arc<Frame>,
    head: Arc<[u8]>,
}

impl SenderLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut viewers: HashMap<Token, Viewer> = HashMap::new();
        let mut next_token = 1usize;
        let mut current: Option<Current> = None;
        let mut next_tick = Instant::now() + TICK;
        let mut finish_by: Option<Instant> = None;
        // The earliest moment a viewer held back by its `?fps=` cap may get a frame.
        let mut capped_due: Option<Instant> = None;
        loop {
            let now = Instant::now();
            // With no viewer there is nothing to check: sleep until a viewer or shutdown comes.
            let timeout = (!viewers.is_empty() || finish_by.is_some()).then(|| {
                let wake_at = [Some(next_tick), capped_due, finish_by]
                    .into_iter()
                    .flatten()
                    .min();
                wake_at.unwrap_or(next_tick).saturating_duration_since(now)
            });
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("camstream: error: a stream sender's poll failed: {e}");
                    break;
                }
            }
            let closing = self.app.slot.is_closed();
            if closing && finish_by.is_none() {
                finish_by = Some(Instant::now() + FINISH_WAIT);
            }
            let mut sweep = closing;

            // Newly admitted viewers (none are taken once shutting down).
            while let Ok(job) = self.rx.try_recv() {
                if closing {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                let token = Token(next_token);
                next_token = next_token.wrapping_add(1).max(1);
                if let Some(v) = self.admit(job, token) {
                    viewers.insert(token, v);
                    sweep = true;
                }
            }

            // A new frame?
            if !closing {
                if let Some(f) = self.app.slot.latest() {
                    if current.as_ref().is_none_or(|c| c.frame.seq != f.seq) {
                        current = Some(Current {
                            head: part_head(&f),
                            frame: f,
                        });
                        sweep = true;
                    }
                }
            }

            // Sockets that have room again, or that say something (usually: goodbye). A viewer
            // that finishes a part gets the newest frame at once.
            let now = Instant::now();
            let mut leaving = Vec::new();
            for ev in events.iter() {
                let t = ev.token();
                let Some(v) = viewers.get_mut(&t) else {
                    continue;
                };
                let mut gone = ev.is_write_closed() || ev.is_error();
                if !gone && ev.is_readable() && !v.eof {
                    gone = drain_input(v);
                }
                if !gone && ev.is_writable() {
                    gone = self.feed(v, current.as_ref(), now, closing);
                }
                if gone {
                    leaving.push(t);
                }
            }

            // Everyone, when there is news or a deadline: a new frame or viewer, the tick
            // (evictions, idle resends), a capped viewer's turn, shutdown.
            let housekeeping = now >= next_tick;
            if housekeeping {
                next_tick = now + TICK;
                sweep = true;
            }
            if capped_due.is_some_and(|d| now >= d) {
                sweep = true;
            }
            if sweep {
                capped_due = None;
                for (t, v) in viewers.iter_mut() {
                    if closing {
                        if matches!(v.out, Out::Idle) || self.feed(v, None, now, true) {
                            leaving.push(*t);
                        }
                        continue;
                    }
                    if !matches!(v.out, Out::Idle) {
                        if housekeeping
                            && now.duration_since(v.progress) >= self.app.settings.send_timeout
                        {
                            self.app.metrics.viewers_evicted.inc();
                            leaving.push(*t);
                        }
                        continue;
                    }
                    if self.feed(v, current.as_ref(), now, false) {
                        leaving.push(*t);
                    } else if matches!(v.out, Out::Idle)
                        && v.min_gap.is_some()
                        && v.next_allowed > now
                    {
                        capped_due =
                            Some(capped_due.map_or(v.next_allowed, |d| d.min(v.next_allowed)));
                    }
                }
            }
            leaving.sort_unstable_by_key(|t| t.0);
            leaving.dedup();
            for t in leaving {
                self.remove(&mut viewers, t);
            }
            if finish_by.is_some_and(|f| Instant::now() >= f) || (closing && viewers.is_empty()) {
                break;
            }
        }
        for t in viewers.keys().copied().collect::<Vec<_>>() {
            self.remove(&mut viewers, t);
        }
    }

    /// Writes what is queued for `v` and, when that is done and `current` is due, starts it.
    /// Returns true when the viewer is gone.
    fn feed(&self, v: &mut Viewer, current: Option<&Current>, now: Instant, closing: bool) -> bool {
        loop {
            match v.flush(&self.app) {
                Flush::Gone => return true,
                Flush::Blocked => return false,
                Flush::Done if closing => return false,
                Flush::Done => match current {
                    Some(c) if self.offer(v, c, now) => continue,
                    _ => return false,
                },
            }
        }
    }

    /// Registers a new viewer and queues its response head.
    fn admit(&self, job: ViewerJob, token: Token) -> Option<Viewer> {
        let ViewerJob {
            conn,
            slot,
            ticket,
            minor_version,
            max_fps,
        } = job;
        if conn.set_nonblocking(true).is_err() {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut conn = TcpStream::from_std(conn);
        if self
            .poll
            .registry()
            .register(&mut conn, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.app.metrics.viewers_accepted.inc();
        let mut head = response_head(minor_version, self.app.settings.allow_origin.as_deref());
        head.push_str(&format!("--{BOUNDARY}\r\n"));
        let now = Instant::now();
        let mut v = Viewer {
            conn,
            out: Out::Head {
                buf: head.into_bytes(),
                off: 0,
            },
            sent: None,
            progress: now,
            started: now,
            min_gap: max_fps.map(|n| Duration::from_secs(1) / n),
            next_allowed: now,
            input: 0,
            eof: false,
            _watch: self.app.slot.watch(),
            _ticket: ticket,
            _slot: slot,
        };
        // A frame left in the slot from before anybody watched may be old: the viewer then
        // waits for a fresh one, and gets the old one only if none comes within IDLE_RESEND.
        let stale_after = self.app.settings.source.frame_interval() * 2;
        if let Some(f) = self.app.slot.latest() {
            if f.age() > stale_after {
                v.sent = Some(f.seq);
            }
        }
        match v.flush(&self.app) {
            Flush::Gone => {
                self.count.fetch_sub(1, Ordering::Relaxed);
                None
            }
            _ => Some(v),
        }
    }

    /// Starts the current frame on an idle viewer if it is due: newer than what it has, or
    /// the same one again after IDLE_RESEND; never before its `?fps=` cap allows. Returns
    /// whether a part was started.
    fn offer(&self, v: &mut Viewer, c: &Current, now: Instant) -> bool {
        let newer = v.sent.is_none_or(|s| c.frame.seq > s);
        let resend = now.duration_since(v.started) >= IDLE_RESEND;
        if !(newer || resend) || now < v.next_allowed {
            return false;
        }
        if let (Some(prev), true, None) = (v.sent, newer, v.min_gap) {
            // Frames published while this viewer was still taking the previous one.
            self.app
                .metrics
                .frames_skipped
                .inc_by(c.frame.seq.saturating_sub(prev + 1));
        }
        v.sent = Some(c.frame.seq);
        v.started = now;
        if let Some(gap) = v.min_gap {
            v.next_allowed = now + gap;
        }
        v.out = Out::Part {
            head: Arc::clone(&c.head),
            frame: Arc::clone(&c.frame),
            off: 0,
        };
        true
    }

    fn remove(&self, viewers: &mut HashMap<Token, Viewer>, t: Token) {
        if let Some(mut v) = viewers.remove(&t) {
            let _ = self.poll.registry().deregister(&mut v.conn);
            self.count.fetch_sub(1, Ordering::Relaxed);
            // Dropping the viewer closes the socket and frees its viewer and connection slots.
        }
    }
}

/// Reads and discards what a viewer sends; true when it broke the connection or sent too much.
/// A viewer that only shut its sending side may still be reading: it keeps its stream.
fn drain_input(v: &mut Viewer) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match v.conn.read(&mut buf) {
            Ok(0) => {
                v.eof = true;
                return false;
            }
            Ok(n) => {
                v.input += n;
                if v.input > MAX_VIEWER_INPUT {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_declares_the_boundary_without_dashes() {
        let h = response_head(0, Some("*"));
        assert!(h.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(h.contains("Content-Type: multipart/x-mixed-replace;boundary=camstreamframe\r\n"));
        assert!(h.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(h.contains("Cache-Control: no-store"));
        assert!(h.ends_with("\r\n\r\n"));
        assert_eq!(TAIL, format!("\r\n--{BOUNDARY}\r\n").as_bytes());
    }

    #[test]
    fn part_heads_carry_length_and_timestamp() {
        let f = Frame {
            seq: 1,
            captured: std::time::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            width: 2,
            height: 2,
            placeholder: false,
            jpeg: Arc::from(vec![0u8; 1234]),
        };
        let h = String::from_utf8(part_head(&f).to_vec()).unwrap();
        assert_eq!(
            h,
            "Content-Type: image/jpeg\r\nContent-Length: 1234\r\nX-Timestamp: 1700000000.123456\r\n\r\n"
        );
    }
}
