//! Serving MJPEG streams: a fixed number of sender threads, each writing every new frame to
//! its share of the viewers over non-blocking sockets.
//!
//! A sender sleeps in epoll until the slot announces a frame, a viewer's socket has room again,
//! or a deadline comes (a `?fps=` cap, the idle resend, an eviction check). Each new frame goes
//! to every idle viewer with one `sendmsg` (part head, the shared JPEG bytes, the delimiter); a
//! viewer whose socket is full keeps its place in the frame and gets the rest when the socket
//! drains, then the newest frame; the frames it missed are counted as skipped. A viewer that
//! takes no byte for `--send-timeout` is evicted. Nobody waits for anybody: the capture loop
//! never waits for a sender and a sender never blocks on a viewer. With no new frame for a
//! second the last one is sent again, so proxies and players do not time out.
//!
//! Compared with a thread per viewer, this costs no context switch per delivered frame, and the
//! number of threads does not grow with `--max-clients`. Each sender runs with a long time
//! slice ([`crate::server::sched`]), which makes the wake-ups of the viewers' readers cheaper.
//!
//! Sends are one `sendmsg` each, not batched through io_uring: a batch moved the readers'
//! wake-ups to the other core, which cost the senders more with thread-per-viewer clients than
//! the system calls it saved (measured in BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::frame::Frame;
use crate::server::app::App;
use crate::server::conn::{
    interrupted, read_available, write_available, write_from, Conn, Input, SendMsg,
};
use crate::server::http::{Outgoing, ReplyTo};
use crate::server::permit::{Counter, Permit};
use crate::server::routes::{self, SNAPSHOT_WAIT};
use crate::server::sched;
use crate::server::viewers::{Ticket, ViewerJob};
use crate::slot::{Listener, WatchGuard};

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
/// A client sends nothing after its request; one that floods us this much is dropped.
const MAX_VIEWER_INPUT: usize = 64 << 10;
/// Hand-offs queued for one sender beyond its viewers (answers, waiting snapshots) before the
/// next one is refused; the sender takes them every time it wakes.
const QUEUE_SLACK: usize = 1024;
const WAKER: Token = Token(0);

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

/// What a worker gives the senders: everything that may have to wait for a client or a frame.
pub enum Handoff {
    /// An admitted viewer.
    Viewer(ViewerJob),
    /// A response whose first `off` bytes the worker already wrote; the rest goes out from here.
    Reply {
        conn: Conn,
        out: Outgoing,
        off: usize,
    },
    /// A snapshot request waiting for a frame newer than `after`.
    Snapshot {
        conn: Conn,
        after: Option<u64>,
        to: ReplyTo,
    },
}

/// The sender threads and the way to hand them clients.
pub struct Senders {
    lanes: Vec<Lane>,
}

/// One sender thread, seen from outside.
struct Lane {
    /// Each job travels with its place in this lane's count.
    tx: Sender<(Handoff, Permit)>,
    waker: Arc<Waker>,
    /// Clients this sender has or is about to take; it wakes on frames only while there are any.
    clients: Counter,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Senders {
    /// Starts `n` senders; each also wakes on every frame the slot publishes.
    pub fn start(app: &Arc<App>, n: usize) -> Result<Senders> {
        let mut lanes = Vec::with_capacity(n);
        let mut listeners: Vec<Listener> = Vec::with_capacity(n);
        for i in 0..n {
            let poll = Poll::new().context("cannot create a poller")?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            // Viewers hold admission tickets, so max_clients of them can always be queued.
            let (tx, rx) = crossbeam_channel::bounded(app.settings.max_clients + QUEUE_SLACK);
            let clients = Counter::unlimited();
            let (w, n) = (Arc::clone(&waker), clients.clone());
            // A sender without clients has nothing to do with a frame (waking it costs tens of
            // microseconds on a VM); shutdown and new clients wake it directly.
            listeners.push(Box::new(move || {
                if n.held() > 0 {
                    let _ = w.wake();
                }
            }));
            let sender = SenderLoop {
                poll,
                rx,
                app: Arc::clone(app),
                clients: HashMap::new(),
                next_token: 1,
                current: None,
                tally: Tally::default(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("sender-{i}"))
                .spawn(move || {
                    // Cheaper wake-ups of the viewers' readers (see `sched`); without it the
                    // sender works as well, only at a higher cost per frame.
                    if let Err(e) = sched::ask_for_slice(sched::SENDER_SLICE) {
                        log::debug!("a stream sender keeps the default time slice: {e}");
                    }
                    sender.run()
                })
                .context("cannot start a sender thread")?;
            lanes.push(Lane {
                tx,
                waker,
                clients,
                thread: Mutex::new(Some(thread)),
            });
        }
        app.slot.set_listeners(listeners)?;
        Ok(Senders { lanes })
    }

    /// Gives `job` to the sender with the fewest clients. Returns it if every queue is full.
    pub fn dispatch(&self, job: Handoff) -> Result<(), Handoff> {
        let Some(lane) = self.lanes.iter().min_by_key(|l| l.clients.held()) else {
            return Err(job);
        };
        let Some(place) = lane.clients.try_take() else {
            return Err(job);
        };
        match lane.tx.try_send((job, place)) {
            Ok(()) => {
                let _ = lane.waker.wake();
                Ok(())
            }
            Err(TrySendError::Full((job, _)) | TrySendError::Disconnected((job, _))) => Err(job),
        }
    }

    /// After the slot is closed: waits until `deadline` for the senders to finish their
    /// last parts and close every connection.
    pub fn join_until(&self, deadline: Instant) {
        for lane in &self.lanes {
            let _ = lane.waker.wake();
            if let Some(t) = lane.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                crate::shutdown::join_until(t, deadline);
            }
        }
    }
}

/// What a client's socket is being given.
enum Out {
    Idle,
    /// A response (or a stream's head); `off` bytes already written.
    Reply {
        out: Outgoing,
        off: usize,
    },
    /// A part: its head, the frame's JPEG, the delimiter; `off` bytes already written.
    Part {
        head: Arc<[u8]>,
        frame: Arc<Frame>,
        off: usize,
    },
}

/// What a connection on a sender is for.
enum Role {
    /// A stream viewer.
    Viewer(Viewer),
    /// A response on its way out; the connection closes once it is written.
    Reply,
    /// A snapshot request waiting for a frame newer than `after`, until `deadline`.
    Snapshot {
        after: Option<u64>,
        deadline: Instant,
        to: ReplyTo,
        _watch: WatchGuard,
    },
}

/// A stream viewer's place in the stream.
struct Viewer {
    /// The last frame started for this viewer.
    sent: Option<u64>,
    /// Last time a part was started, for the idle resend.
    started: Instant,
    min_gap: Option<Duration>,
    next_allowed: Instant,
    _watch: WatchGuard,
    _ticket: Ticket,
}

/// One connection a sender writes to.
struct Client {
    conn: TcpStream,
    out: Out,
    role: Role,
    /// Last time a byte went out (or the client arrived), for eviction.
    progress: Instant,
    /// Bytes the client sent after its request (it should send none).
    input: usize,
    /// The client shut its sending side; nothing more to read.
    eof: bool,
    peer: std::net::SocketAddr,
    /// Its place under `--max-connections`.
    _permit: Permit,
    /// Its place in this sender's count.
    _place: Permit,
}

enum Flush {
    /// Everything queued went out.
    Done,
    /// The socket is full; wait for it to drain.
    Blocked,
    /// The client left or the connection broke.
    Gone,
}

/// What a sender delivered since it last added to the shared metrics. The counters are atomics
/// shared by every sender; adding to them once per pass instead of once per viewer per frame
/// keeps their cache line from bouncing between the senders' cores.
#[derive(Default)]
struct Tally {
    bytes: u64,
    frames: u64,
    skipped: u64,
}

impl Tally {
    /// Adds what was counted to the metrics and starts again from zero.
    fn publish(&mut self, app: &App) {
        let m = &app.metrics;
        if self.bytes > 0 {
            m.bytes_sent.inc_by(self.bytes);
        }
        if self.frames > 0 {
            m.frames_sent.inc_by(self.frames);
        }
        if self.skipped > 0 {
            m.frames_skipped.inc_by(self.skipped);
        }
        *self = Tally::default();
    }
}

impl Client {
    /// Writes what is queued until done or the socket is full. `now` is the pass's clock,
    /// recorded as the last progress (a read of the clock per write would cost more than the
    /// precision is worth next to a `--send-timeout` of seconds).
    fn flush(&mut self, tally: &mut Tally, now: Instant) -> Flush {
        let viewer = matches!(self.role, Role::Viewer(_));
        loop {
            let mut socket = SendMsg::new(&self.conn);
            let result = match &self.out {
                Out::Idle => return Flush::Done,
                Out::Reply { out, off } => {
                    write_available(|| write_from(&mut socket, &out.bufs(), *off))
                }
                Out::Part { head, frame, off } => {
                    write_available(|| write_from(&mut socket, &[head, &frame.jpeg, TAIL], *off))
                }
            };
            match result {
                Ok(None) => return Flush::Blocked,
                Ok(Some(0)) | Err(_) => return Flush::Gone,
                Ok(Some(n)) => {
                    self.progress = now;
                    if viewer {
                        tally.bytes += n as u64;
                    }
                    let done = match &mut self.out {
                        Out::Reply { out, off } => {
                            *off += n;
                            *off == out.len()
                        }
                        Out::Part { head, frame, off } => {
                            *off += n;
                            let done = *off == head.len() + frame.jpeg.len() + TAIL.len();
                            if done {
                                tally.frames += 1;
                            }
                            done
                        }
                        Out::Idle => true,
                    };
                    if done {
                        self.out = Out::Idle;
                    }
                }
            }
        }
    }
}

/// One sender thread's state.
struct SenderLoop {
    poll: Poll,
    rx: Receiver<(Handoff, Permit)>,
    app: Arc<App>,
    clients: HashMap<Token, Client>,
    next_token: usize,
    /// The newest frame and its part head, built once per frame per sender.
    current: Option<Current>,
    /// Delivered since the last pass; added to the metrics at the end of each pass.
    tally: Tally,
}

struct Current {
    frame: Arc<Frame>,
    head: Arc<[u8]>,
}

/// What one pass of the loop must look at.
struct Pass {
    now: Instant,
    closing: bool,
    /// Every client gets a look (something changed for all of them).
    sweep: bool,
    /// Eviction checks are due.
    housekeeping: bool,
    leaving: Vec<Token>,
}

impl SenderLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        let mut finish_by: Option<Instant> = None;
        // The earliest moment a client held back by a `?fps=` cap may get a frame.
        let mut capped_due: Option<Instant> = None;
        loop {
            let now = Instant::now();
            // With no client there is nothing to check: sleep until one comes or shutdown.
            let timeout = (!self.clients.is_empty() || finish_by.is_some()).then(|| {
                [Some(next_tick), capped_due, finish_by]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(next_tick)
                    .saturating_duration_since(now)
            });
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if !interrupted(&e) {
                    log::error!("a stream sender's poll failed: {e}");
                    break;
                }
            }
            let closing = self.app.slot.is_closed();
            if closing && finish_by.is_none() {
                finish_by = Some(Instant::now() + FINISH_WAIT);
            }
            let mut pass = Pass {
                now: Instant::now(),
                closing,
                sweep: closing,
                housekeeping: false,
                leaving: Vec::new(),
            };
            pass.sweep |= self.take_new_clients(&pass);
            pass.sweep |= self.refresh_frame(closing);
            self.on_events(&events, &mut pass);
            if pass.now >= next_tick {
                next_tick = pass.now + TICK;
                pass.housekeeping = true;
                pass.sweep = true;
            }
            if capped_due.is_some_and(|d| pass.now >= d) {
                pass.sweep = true;
            }
            if pass.sweep {
                capped_due = self.sweep(&mut pass);
            }
            pass.leaving.sort_unstable_by_key(|t| t.0);
            pass.leaving.dedup();
            for t in pass.leaving {
                self.remove(t);
            }
            self.tally.publish(&self.app);
            if finish_by.is_some_and(|f| Instant::now() >= f)
                || (closing && self.clients.is_empty())
            {
                break;
            }
        }
        for t in self.clients.keys().copied().collect::<Vec<_>>() {
            self.remove(t);
        }
        self.tally.publish(&self.app);
    }

    /// Registers newly handed-over clients (none once shutting down). True if any came.
    fn take_new_clients(&mut self, pass: &Pass) -> bool {
        let mut any = false;
        // A job dropped here (shutting down, or a socket that failed) gives its places back.
        while let Ok((job, place)) = self.rx.try_recv() {
            if pass.closing {
                continue;
            }
            let token = Token(self.next_token);
            self.next_token = self.next_token.wrapping_add(1).max(1);
            if let Some(c) = self.admit(job, place, token, pass.now) {
                self.clients.insert(token, c);
                any = true;
            }
        }
        any
    }

    /// Takes the slot's newest frame if it is new. True if it is.
    fn refresh_frame(&mut self, closing: bool) -> bool {
        if closing {
            return false;
        }
        let Some(f) = self.app.slot.latest() else {
            return false;
        };
        if self.current.as_ref().is_some_and(|c| c.frame.seq == f.seq) {
            return false;
        }
        self.current = Some(Current {
            head: part_head(&f),
            frame: f,
        });
        true
    }

    /// Sockets that have room again, or that say something (usually: goodbye). A viewer that
    /// finishes a part gets the newest frame at once.
    fn on_events(&mut self, events: &Events, pass: &mut Pass) {
        for ev in events.iter() {
            let t = ev.token();
            let Some(c) = self.clients.get_mut(&t) else {
                continue;
            };
            let mut gone = ev.is_write_closed() || ev.is_error();
            if !gone && ev.is_readable() && !c.eof {
                gone = drain_input(c);
            }
            if !gone && ev.is_writable() {
                gone = feed(
                    &mut self.tally,
                    c,
                    self.current.as_ref(),
                    pass.now,
                    pass.closing,
                );
            }
            if gone {
                pass.leaving.push(t);
            }
        }
    }

    /// Looks at every client when there is news or a deadline: a new frame or client, the tick
    /// (evictions, idle resends, snapshot deadlines), a capped viewer's turn, shutdown. Returns
    /// when the next capped viewer is due.
    fn sweep(&mut self, pass: &mut Pass) -> Option<Instant> {
        let now = pass.now;
        let mut capped_due: Option<Instant> = None;
        for (t, c) in self.clients.iter_mut() {
            if let Role::Snapshot {
                after,
                deadline,
                to,
                ..
            } = &c.role
            {
                let newest = self.current.as_ref().map(|cur| &cur.frame);
                let fresh = newest.filter(|f| after.is_none_or(|s| f.seq > s));
                let frame = match fresh {
                    _ if pass.closing => None,
                    Some(f) => Some(f),
                    None if now >= *deadline => newest,
                    None => continue,
                };
                c.out = Out::Reply {
                    out: routes::snapshot(frame.map(|f| &**f), to),
                    off: 0,
                };
                c.role = Role::Reply;
                c.progress = now;
            }
            if pass.closing {
                if matches!(c.out, Out::Idle) || feed(&mut self.tally, c, None, now, true) {
                    pass.leaving.push(*t);
                }
                continue;
            }
            if !matches!(c.out, Out::Idle) {
                if pass.housekeeping
                    && now.duration_since(c.progress) >= self.app.settings.send_timeout
                {
                    if matches!(c.role, Role::Viewer(_)) {
                        self.app.metrics.viewers_evicted.inc();
                        log::info!(
                            "viewer {} evicted: it took no data for --send-timeout",
                            c.peer
                        );
                    }
                    pass.leaving.push(*t);
                    continue;
                }
                if !matches!(c.role, Role::Reply) {
                    continue;
                }
            }
            if feed(&mut self.tally, c, self.current.as_ref(), now, false) {
                pass.leaving.push(*t);
            } else if let (Out::Idle, Role::Viewer(v)) = (&c.out, &c.role) {
                if v.min_gap.is_some() && v.next_allowed > now {
                    capped_due = Some(capped_due.map_or(v.next_allowed, |d| d.min(v.next_allowed)));
                }
            }
        }
        capped_due
    }

    /// Registers a handed-over client and queues what it gets first.
    fn admit(&mut self, job: Handoff, place: Permit, token: Token, now: Instant) -> Option<Client> {
        let (conn, role, out) = match job {
            Handoff::Viewer(ViewerJob {
                conn,
                ticket,
                max_fps,
            }) => {
                let to = ReplyTo {
                    minor_version: conn.minor_version,
                    head_only: false,
                    allow_origin: self.app.settings.allow_origin.as_deref().map(Arc::from),
                };
                let mut out = Outgoing::stream(&to, BOUNDARY);
                out.body = format!("--{BOUNDARY}\r\n").into_bytes().into();
                let mut v = Viewer {
                    sent: None,
                    started: now,
                    min_gap: max_fps.map(|n| Duration::from_secs(1) / n),
                    next_allowed: now,
                    _watch: self.app.slot.watch(),
                    _ticket: ticket,
                };
                // A frame left in the slot from before anybody watched may be old: the viewer
                // then waits for a fresh one, and gets the old one only if none comes within
                // IDLE_RESEND.
                let stale_after = self.app.settings.source.frame_interval() * 2;
                if let Some(f) = self.app.slot.latest() {
                    if f.age() > stale_after {
                        v.sent = Some(f.seq);
                    }
                }
                (conn, Role::Viewer(v), Out::Reply { out, off: 0 })
            }
            Handoff::Reply { conn, out, off } => (conn, Role::Reply, Out::Reply { out, off }),
            Handoff::Snapshot { conn, after, to } => {
                let role = Role::Snapshot {
                    after,
                    deadline: now + SNAPSHOT_WAIT,
                    to,
                    // Watching makes the capture loop encode.
                    _watch: self.app.slot.watch(),
                };
                (conn, role, Out::Idle)
            }
        };
        let Conn {
            stream,
            permit,
            peer,
            ..
        } = conn;
        // The socket is non-blocking since accept.
        let mut conn = TcpStream::from_std(stream);
        self.poll
            .registry()
            .register(&mut conn, token, Interest::READABLE | Interest::WRITABLE)
            .ok()?;
        let mut c = Client {
            conn,
            out,
            role,
            progress: now,
            input: 0,
            eof: false,
            peer,
            _permit: permit,
            _place: place,
        };
        match c.flush(&mut self.tally, now) {
            Flush::Gone => None,
            _ => {
                if matches!(c.role, Role::Viewer(_)) {
                    self.app.metrics.viewers_accepted.inc();
                }
                Some(c)
            }
        }
    }

    fn remove(&mut self, t: Token) {
        if let Some(mut c) = self.clients.remove(&t) {
            let _ = self.poll.registry().deregister(&mut c.conn);
            // Dropping the client closes the socket and gives back its places: viewer slot,
            // connection, this sender's count.
        }
    }
}

/// Writes what is queued for `c` and, for a viewer that is done and due for `current`, starts
/// it. A response that is fully written ends its connection. Returns true when the client is
/// gone (or done).
fn feed(
    tally: &mut Tally,
    c: &mut Client,
    current: Option<&Current>,
    now: Instant,
    closing: bool,
) -> bool {
    loop {
        match c.flush(tally, now) {
            Flush::Gone => return true,
            Flush::Blocked => return false,
            Flush::Done => match &mut c.role {
                Role::Reply => {
                    // A FIN before anything else: the client reads the whole answer, then
                    // the end of the connection.
                    let _ = c.conn.shutdown(std::net::Shutdown::Write);
                    return true;
                }
                Role::Snapshot { .. } => return false,
                Role::Viewer(_) if closing => return false,
                Role::Viewer(v) => match current {
                    Some(cur) if offer(tally, v, &mut c.out, cur, now) => continue,
                    _ => return false,
                },
            },
        }
    }
}

/// Starts the current frame on an idle viewer if it is due: newer than what it has, or the
/// same one again after IDLE_RESEND; never before its `?fps=` cap allows. Returns whether a
/// part was started.
fn offer(tally: &mut Tally, v: &mut Viewer, out: &mut Out, c: &Current, now: Instant) -> bool {
    let newer = v.sent.is_none_or(|s| c.frame.seq > s);
    // Looked at only when there is no newer frame: most viewers on most passes have one.
    if !(newer || now.duration_since(v.started) >= IDLE_RESEND) || now < v.next_allowed {
        return false;
    }
    if let (Some(prev), true, None) = (v.sent, newer, v.min_gap) {
        // Frames published while this viewer was still taking the previous one.
        tally.skipped += c.frame.seq.saturating_sub(prev + 1);
    }
    v.sent = Some(c.frame.seq);
    v.started = now;
    if let Some(gap) = v.min_gap {
        v.next_allowed = now + gap;
    }
    *out = Out::Part {
        head: Arc::clone(&c.head),
        frame: Arc::clone(&c.frame),
        off: 0,
    };
    true
}

/// Reads and discards what a viewer sends; true when it broke the connection or sent too much.
/// A viewer that only shut its sending side may still be reading: it keeps its stream.
fn drain_input(v: &mut Client) -> bool {
    let room = (MAX_VIEWER_INPUT + 1).saturating_sub(v.input);
    let mut got = 0;
    let result = read_available(&mut v.conn, room, |b| got += b.len());
    v.input += got;
    match result {
        Ok(Input::Drained) => false,
        Ok(Input::Eof) => {
            v.eof = true;
            false
        }
        Ok(Input::Full) | Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_delimiter() {
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
