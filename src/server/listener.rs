//! The connection layer camstream owns: the listening socket, the cap on open connections, and
//! the thread that reads request heads.
//!
//! One thread waits on every connection that has not finished sending its request head (epoll
//! through mio), so idle or slow sockets cost no worker thread, and no memory until bytes
//! arrive. A complete head goes to the bounded request queue (503 if it is full). A head not
//! complete within `--header-timeout` is answered 408, one that is too large 414/431, garbage
//! 400; then the connection is closed. A body (`POST /controls`; at most `http::MAX_BODY`,
//! else 413) is read with its head, under the same timeout.
//!
//! Whoever has delivered least makes room first. A connection still sending its head has
//! delivered nothing, so when the connection cap is reached (or descriptors run out), a head is
//! closed (counted as evicted) to let the newcomer in: the oldest of the address (IPv6: the /64)
//! holding the most heads, if that is more than its share (`--max-pending-per-ip`), else the
//! oldest of all. Only when every connection has delivered its request (viewers, requests in the
//! queue or with a worker) is a newcomer answered 503. Partial heads held in memory have a
//! total budget, past which the oldest one holding bytes is closed.
//!
//! The share applies only when room is needed, not as a hard cap per address: an idle
//! connection costs one descriptor and no memory, so holding them all is cheaper than closing
//! them, which makes a flooder reconnect at once and keeps the kernel's accept queue full of its
//! connections (measured: 10,000 sockets from one address were reopened 11,000 times a second
//! under a hard cap of 64, against 1,500, their header timeouts, when held).
//!
//! Every head shares one timeout and every answered connection one linger time, so accept
//! order is deadline order: both are kept in maps ordered by a growing id (which is also the
//! connection's poll token), and every step is O(log n) however many connections wait.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Sender, TrySendError};
use mio::net::{TcpListener, TcpStream as MioStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::metrics::Metrics;
use crate::server::conn::{
    client_key, interrupted, read_available, would_block, write_from, Conn, Input,
};
use crate::server::http::{self, Head, HeadError};
use crate::server::permit::{Counter, Permit};
use crate::settings::ServeSettings;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// The first connection id; ids below are the tokens above.
const FIRST_ID: usize = 2;
/// How soon to try accepting again after an accept failed.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Connections accepted per wake-up before the heads that arrived meanwhile are read: a client
/// whose request is already here must not wait behind a flood of newcomers (which, at the cap,
/// could even evict it).
const ACCEPT_BATCH: usize = 32;
/// Answered connections (refused at the cap, or answered 4xx) kept open beyond the cap to drain
/// the client's input; past this many, a connection is drained of what already arrived and closed
/// at once.
const MAX_LINGERING: usize = 64;
/// How long an answered connection may take to close after its error response.
const LINGER: Duration = Duration::from_secs(2);
/// Input discarded at most before closing an answered connection at once.
const DRAIN_LIMIT: usize = 64 << 10;
/// Bytes that partial request heads may hold together; past it, the oldest connection holding
/// bytes is closed. 10,000 slow heads of up to 16 KiB each would otherwise hold 160 MB.
const HEAD_BUFFER_BUDGET: usize = 16 << 20;
/// Pending SYNs the kernel may hold: a burst of hundreds of viewers must not wait in SYN retries.
const BACKLOG: i32 = 1024;
/// Descriptors camstream needs beyond `--max-connections`: lingering answered connections
/// ([`MAX_LINGERING`]) and its own files, pollers and pipes.
const FD_RESERVE: usize = 128;
/// The most connections by default, however high the descriptor limit (the usual systemd hard
/// limit is 524288): enough for thousands of viewers and a large flood of idle sockets.
const MAX_DEFAULT_CONNECTIONS: usize = 16384;

/// The connection cap when `--max-connections` is not given: what the hard open-file limit
/// allows after a reserve of 128 (an idle connection costs one descriptor and, as its buffer is
/// only allocated when bytes arrive, no memory), at most 16384, and at least `max_clients + 64`
/// (room for every viewer and the short requests of a busy host).
pub fn default_max_connections(max_clients: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid rlimit struct.
    let hard =
        (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_max);
    connections_for(hard, max_clients)
}

fn connections_for(hard_fd_limit: Option<libc::rlim_t>, max_clients: usize) -> usize {
    let by_fds = hard_fd_limit.map_or(MAX_DEFAULT_CONNECTIONS, |h| {
        usize::try_from(h)
            .unwrap_or(usize::MAX)
            .saturating_sub(FD_RESERVE)
            .min(MAX_DEFAULT_CONNECTIONS)
    });
    by_fds.max(max_clients + 64)
}

/// Raises the soft open-file limit towards what `connections` need (each connection is one
/// descriptor; camstream itself needs 128 more), and says so if the hard limit is
/// lower, since connections past it would fail to be accepted.
pub fn ensure_fd_limit(connections: usize) {
    let needed = (connections + FD_RESERVE) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= needed {
            return;
        }
        let want = libc::rlimit {
            rlim_cur: needed.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            lim = want;
        }
    }
    if lim.rlim_cur < needed {
        log::warn!(
            "the open-file limit is {}; --max-connections {connections} needs about {needed} \
             (raise it with ulimit -n or LimitNOFILE= in the service)",
            lim.rlim_cur
        );
    }
}

/// Binds the listening socket with a large backlog.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .context("cannot create the listening socket")?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into()).map_err(|e| bind_error(addr, e))?;
    sock.listen(BACKLOG).map_err(|e| bind_error(addr, e))?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

fn bind_error(addr: SocketAddr, e: io::Error) -> anyhow::Error {
    let why = match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".to_string(),
        _ => e.to_string(),
    };
    anyhow::anyhow!("failed to bind {addr}: {why}")
}

/// A request ready for a worker: the connection and what it asks.
pub struct Job {
    pub conn: Conn,
    pub request: rouille::Request,
}

pub struct Limits {
    pub max_connections: usize,
    pub max_pending_per_ip: usize,
    pub header_timeout: Duration,
}

impl From<&ServeSettings> for Limits {
    fn from(s: &ServeSettings) -> Self {
        Limits {
            max_connections: s.max_connections,
            max_pending_per_ip: s.max_pending_per_ip,
            header_timeout: s.header_timeout,
        }
    }
}

/// A connection still sending its request head.
struct HeadReader {
    conn: MioStream,
    /// The head so far; empty (no allocation) until bytes arrive.
    buf: Vec<u8>,
    peer: SocketAddr,
    accepted: Instant,
    permit: Permit,
}

/// A connection that got its error response and is half-closed: unread input is drained until
/// the peer closes (or `deadline`), so the kernel never answers it with a reset that could
/// destroy the response before the client reads it. It holds no connection slot.
struct Lingering {
    conn: MioStream,
    deadline: Instant,
}

/// The head-reading thread's state.
pub struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    /// Connections still sending their head, by id: oldest first, which (one timeout for all)
    /// is also the first to expire.
    heads: BTreeMap<usize, HeadReader>,
    /// The same connections per client address ([`client_key`]), oldest first.
    heads_by_addr: HashMap<IpAddr, BTreeSet<usize>>,
    /// (heads, address) for every address with heads: the last holds the most.
    addr_load: BTreeSet<(usize, IpAddr)>,
    /// The heads holding bytes, oldest first, and the bytes their buffers hold.
    buffered: BTreeSet<usize>,
    buffered_bytes: usize,
    /// Answered connections, by id: oldest (and first to expire) first.
    lingering: BTreeMap<usize, Lingering>,
    next_id: usize,
    /// The last accept batch stopped before the listener ran dry.
    backlog: bool,
    /// The last accept failed with something other than "nothing to accept".
    accept_failed: bool,
    /// Open connections against `--max-connections`.
    open: Counter,
    limits: Limits,
    jobs: Sender<Job>,
    metrics: Arc<Metrics>,
}

impl Acceptor {
    /// Sets up polling on `listener`; the returned waker interrupts [`Acceptor::run`].
    pub fn new(
        listener: std::net::TcpListener,
        limits: Limits,
        jobs: Sender<Job>,
        metrics: Arc<Metrics>,
    ) -> Result<(Acceptor, Arc<Waker>)> {
        let poll = Poll::new().context("cannot create the poller")?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let acceptor = Acceptor {
            poll,
            listener,
            heads: BTreeMap::new(),
            heads_by_addr: HashMap::new(),
            addr_load: BTreeSet::new(),
            buffered: BTreeSet::new(),
            buffered_bytes: 0,
            lingering: BTreeMap::new(),
            next_id: FIRST_ID,
            backlog: false,
            accept_failed: false,
            open: Counter::limited(limits.max_connections, Some(metrics.connections.clone())),
            limits,
            jobs,
            metrics,
        };
        Ok((acceptor, waker))
    }

    /// Accepts and reads heads until `stop()` says so (checked on every wake-up).
    pub fn run(mut self, stop: impl Fn() -> bool) {
        let mut events = Events::with_capacity(1024);
        while !stop() {
            if let Err(e) = self.poll.poll(&mut events, self.next_timeout()) {
                if !interrupted(&e) {
                    log::error!("polling connections failed: {e}");
                    return;
                }
            }
            // Heads first, then newcomers: a request that has arrived is taken before anyone
            // new can make it the oldest of its address.
            let mut listener_ready = false;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => listener_ready = true,
                    WAKER => {}
                    Token(id) => self.on_readable(id),
                }
            }
            // The listener is edge-triggered: after a partial batch or a failed accept (out of
            // descriptors, say) no new event comes for connections already waiting.
            if listener_ready || self.backlog || self.accept_failed {
                self.accept_some();
            }
            self.expire(Instant::now());
        }
    }

    /// Until the next deadline: the oldest head's or the oldest lingering connection's.
    fn next_timeout(&self) -> Option<Duration> {
        if self.backlog {
            return Some(Duration::ZERO);
        }
        let head = self
            .heads
            .values()
            .next()
            .map(|h| h.accepted + self.limits.header_timeout);
        let linger = self.lingering.values().next().map(|l| l.deadline);
        let now = Instant::now();
        let timeout = head
            .into_iter()
            .chain(linger)
            .min()
            .map(|d| d.saturating_duration_since(now) + Duration::from_millis(1));
        if self.accept_failed {
            return Some(timeout.map_or(ACCEPT_RETRY, |t| t.min(ACCEPT_RETRY)));
        }
        timeout
    }

    fn new_id(&mut self) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Accepts up to [`ACCEPT_BATCH`] connections.
    fn accept_some(&mut self) {
        self.accept_failed = false;
        self.backlog = false;
        let mut taken = 0;
        while taken < ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((conn, peer)) => {
                    taken += 1;
                    self.admit(conn, peer);
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                // The peer gave up before we took it.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                // Out of descriptors: a head still in progress gives its descriptor back.
                Err(e) if out_of_descriptors(&e) && self.make_room() => taken += 1,
                Err(_) => {
                    self.accept_failed = true;
                    return;
                }
            }
        }
        self.backlog = true;
    }

    /// Takes a new connection: as a head reader if there is room (made if need be), otherwise
    /// answered 503.
    fn admit(&mut self, mut conn: MioStream, peer: SocketAddr) {
        let Some(permit) = self.take_permit() else {
            self.metrics.connections_rejected.inc();
            log::info!("client {peer} refused with 503: --max-connections is reached");
            reject(&mut conn, 503, "too many connections", Some(1));
            self.linger(conn);
            return;
        };
        let _ = conn.set_nodelay(true);
        log::debug!("client {peer} connected");
        let id = self.new_id();
        if self
            .poll
            .registry()
            .register(&mut conn, Token(id), Interest::READABLE)
            .is_err()
        {
            return;
        }
        let key = client_key(peer.ip());
        let ids = self.heads_by_addr.entry(key).or_default();
        self.addr_load.remove(&(ids.len(), key));
        ids.insert(id);
        self.addr_load.insert((ids.len(), key));
        self.heads.insert(
            id,
            HeadReader {
                conn,
                buf: Vec::new(),
                peer,
                accepted: Instant::now(),
                permit,
            },
        );
        // The head often arrives with the connection: take it now, not after another wait.
        self.read_head(id);
    }

    /// A connection permit; at the cap, a head is closed to free one ([`Acceptor::make_room`]).
    fn take_permit(&mut self) -> Option<Permit> {
        loop {
            let permit = self.open.try_take();
            if permit.is_some() || !self.make_room() {
                return permit;
            }
        }
    }

    fn on_readable(&mut self, id: usize) {
        if self.heads.contains_key(&id) {
            self.read_head(id);
        } else if let Some(l) = self.lingering.get_mut(&id) {
            if drain(&mut l.conn) != Drained::Open {
                self.close_lingering(id);
            }
        }
    }

    fn read_head(&mut self, id: usize) {
        let Some(h) = self.heads.get_mut(&id) else {
            return;
        };
        let had = h.buf.capacity();
        // One byte past the largest head (and the body it may bring, see `http::MAX_BODY`) is
        // enough to know it is too large.
        let room = (http::MAX_HEAD + http::MAX_BODY + 1).saturating_sub(h.buf.len());
        let buf = &mut h.buf;
        let eof = !matches!(
            read_available(&mut h.conn, room, |b| buf.extend_from_slice(b)),
            Ok(Input::Drained | Input::Full)
        );
        let has = h.buf.capacity();
        let parsed = http::parse_head(&h.buf, h.peer);
        self.buffered_bytes += has - had;
        if had == 0 && has > 0 {
            self.buffered.insert(id);
        }
        match parsed {
            Err(HeadError::Partial) if !eof => self.keep_within_budget(),
            // The peer closed before finishing its head.
            Err(HeadError::Partial) => drop(self.remove_head(id)),
            Err(HeadError::Reject(code, why)) => self.answer_and_close(id, code, why),
            Ok(head) => {
                if let Some(h) = self.remove_head(id) {
                    self.hand_over(h, head);
                }
            }
        }
    }

    /// Closes the oldest heads holding bytes until partial heads fit [`HEAD_BUFFER_BUDGET`].
    fn keep_within_budget(&mut self) {
        while self.buffered_bytes > HEAD_BUFFER_BUDGET {
            let Some(&id) = self.buffered.first() else {
                return;
            };
            self.evict(id);
        }
    }

    /// Gives a complete request to the workers, or answers 503 if they are all busy.
    fn hand_over(&mut self, h: HeadReader, head: Head) {
        let HeadReader {
            conn, peer, permit, ..
        } = h;
        let conn = Conn {
            // Non-blocking from here to the end: workers and senders never wait on a client.
            stream: TcpStream::from(conn),
            peer,
            minor_version: head.minor_version,
            permit,
        };
        let job = Job {
            conn,
            request: head.request,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(mut job)) => {
                self.metrics.connections_rejected.inc();
                let out = http::error(503, "server busy", Some(1), job.conn.minor_version);
                let _ = write_from(&mut job.conn.stream, &out.bufs(), 0);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Takes a head reader out of every index and the poller; its buffer goes with it.
    fn remove_head(&mut self, id: usize) -> Option<HeadReader> {
        let mut h = self.heads.remove(&id)?;
        let key = client_key(h.peer.ip());
        if let Some(ids) = self.heads_by_addr.get_mut(&key) {
            self.addr_load.remove(&(ids.len(), key));
            ids.remove(&id);
            if ids.is_empty() {
                self.heads_by_addr.remove(&key);
            } else {
                self.addr_load.insert((ids.len(), key));
            }
        }
        if self.buffered.remove(&id) {
            self.buffered_bytes -= h.buf.capacity();
        }
        let _ = self.poll.registry().deregister(&mut h.conn);
        Some(h)
    }

    /// Closes a connection that has not delivered its head, to make room; counted.
    fn evict(&mut self, id: usize) {
        if let Some(h) = self.remove_head(id) {
            self.metrics.connections_evicted.inc();
            log::debug!(
                "client {} closed to make room: its request head is unfinished",
                h.peer
            );
            close_now(h.conn);
        }
    }

    /// Evicts one head to make room: the oldest of the address holding the most heads if that is
    /// more than its share, else the oldest of all. False if no connection is sending its head.
    fn make_room(&mut self) -> bool {
        let over_share = self
            .addr_load
            .last()
            .filter(|(n, _)| *n > self.limits.max_pending_per_ip)
            .and_then(|(_, key)| self.heads_by_addr.get(key))
            .and_then(|ids| ids.first().copied());
        match over_share.or_else(|| self.heads.keys().next().copied()) {
            Some(id) => {
                self.evict(id);
                true
            }
            None => false,
        }
    }

    /// Answers 408 to every head that did not arrive in time (a silent connection is just
    /// closed), and closes lingering connections whose time is up.
    fn expire(&mut self, now: Instant) {
        while let Some((&id, h)) = self.heads.first_key_value() {
            if h.accepted + self.limits.header_timeout > now {
                break;
            }
            // Only bother answering someone who started a request.
            if h.buf.is_empty() {
                if let Some(h) = self.remove_head(id) {
                    close_now(h.conn);
                }
            } else {
                self.answer_and_close(id, 408, "request head not received in time");
            }
        }
        while let Some((&id, l)) = self.lingering.first_key_value() {
            if l.deadline > now {
                break;
            }
            self.close_lingering(id);
        }
    }

    /// Sends a short error response to a head reader and lets it linger to close cleanly; its
    /// connection slot is free at once.
    fn answer_and_close(&mut self, id: usize, code: u16, why: &str) {
        if let Some(mut h) = self.remove_head(id) {
            reject(&mut h.conn, code, why, None);
            self.linger(h.conn);
        }
    }

    /// Half-closes an answered connection and keeps it, at most [`LINGER`], to drain what the
    /// client still sends; past [`MAX_LINGERING`], drains what has already arrived and closes.
    fn linger(&mut self, mut conn: MioStream) {
        if self.lingering.len() >= MAX_LINGERING {
            close_now(conn);
            return;
        }
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let id = self.new_id();
        if self
            .poll
            .registry()
            .register(&mut conn, Token(id), Interest::READABLE)
            .is_ok()
        {
            let deadline = Instant::now() + LINGER;
            self.lingering.insert(id, Lingering { conn, deadline });
        }
    }

    fn close_lingering(&mut self, id: usize) {
        if let Some(mut l) = self.lingering.remove(&id) {
            let _ = self.poll.registry().deregister(&mut l.conn);
        }
    }
}

/// What [`drain`] found.
#[derive(Debug, PartialEq, Eq)]
enum Drained {
    /// Nothing more to read for now.
    Open,
    /// The peer closed (or the connection failed).
    Closed,
    /// [`DRAIN_LIMIT`] bytes read and still more.
    Limit,
}

/// Reads and discards what the peer has sent, at most [`DRAIN_LIMIT`] bytes.
fn drain(conn: &mut MioStream) -> Drained {
    match read_available(conn, DRAIN_LIMIT, |_| {}) {
        Ok(Input::Drained) => Drained::Open,
        Ok(Input::Full) => Drained::Limit,
        Ok(Input::Eof) | Err(_) => Drained::Closed,
    }
}

/// Closes a connection now, as cleanly as that can be: what the client already sent is read
/// first, because closing a socket with unread input makes the kernel send a reset instead of
/// a FIN, and a reset can destroy a response the client has not read yet.
fn close_now(mut conn: MioStream) {
    drain(&mut conn);
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

/// True for accept errors that say this process (or the system) is out of descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Best-effort answer on a non-blocking socket before the request is known: one write. A short
/// response fits in any socket buffer, so this does not lose bytes in practice.
fn reject(conn: &mut MioStream, code: u16, why: &str, retry_after: Option<u32>) {
    let out = http::error(code, why, retry_after, 1);
    let _ = write_from(conn, &out.bufs(), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_follows_the_descriptor_limit() {
        assert_eq!(connections_for(Some(20_000), 10), 16384);
        assert_eq!(connections_for(Some(4096), 10), 4096 - FD_RESERVE);
        assert_eq!(connections_for(Some(1024), 10), 1024 - FD_RESERVE);
        assert_eq!(
            connections_for(Some(libc::RLIM_INFINITY), 10),
            MAX_DEFAULT_CONNECTIONS
        );
        assert_eq!(connections_for(None, 10), MAX_DEFAULT_CONNECTIONS);
        // Never below room for every viewer, whatever the limit (a warning says it is short).
        assert_eq!(connections_for(Some(48), 10), 74);
        assert_eq!(connections_for(Some(1024), 5000), 5064);
    }
}
