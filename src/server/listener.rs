//! The connection layer camstream owns: the listening socket, the cap on open connections, and
//! the thread that reads request heads.
//!
//! One thread waits on every connection that has not finished sending its request head (epoll
//! through mio), so idle or slow sockets cost no worker thread. A complete head goes to the
//! bounded request queue; if the queue is full, or the connection cap is reached, the client is
//! answered 503 at once. A head not complete within `--header-timeout` is answered 408, one
//! that is too large 414/431, garbage 400; then the connection is closed.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Sender, TrySendError};
use mio::net::{TcpListener, TcpStream as MioStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::metrics::Metrics;
use crate::server::http::{self, Head, HeadError};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// How soon to try accepting again after an accept failed.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Refused connections allowed to linger beyond the cap.
const MAX_LINGERING: usize = 64;
/// How long a rejected connection may take to close after its error response.
const LINGER: Duration = Duration::from_secs(2);
/// Pending SYNs the kernel may hold: a burst of hundreds of viewers must not wait in SYN retries.
const BACKLOG: i32 = 1024;

/// Raises the soft open-file limit towards what `connections` need (each connection is one
/// descriptor; camstream itself needs a few dozen more), and says so if the hard limit is
/// lower, since connections past it would fail to be accepted.
pub fn ensure_fd_limit(connections: usize) {
    let needed = (connections + 64) as libc::rlim_t;
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
        eprintln!(
            "camstream: warning: the open-file limit is {}; --max-connections {connections} needs about {needed} \
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

/// One open connection counted against `--max-connections`; released when dropped.
pub struct ConnSlot {
    open: Arc<AtomicUsize>,
    gauge: prometheus::IntGauge,
}

impl ConnSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize, gauge: &prometheus::IntGauge) -> Option<ConnSlot> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        gauge.inc();
        Some(ConnSlot {
            open: Arc::clone(open),
            gauge: gauge.clone(),
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// A request ready for a worker.
pub struct Job {
    pub conn: TcpStream,
    pub head: Head,
    pub slot: ConnSlot,
}

pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub send_timeout: Duration,
}

struct Pending {
    conn: MioStream,
    buf: Vec<u8>,
    /// Answered with an error and half-closed; unread input is drained until the peer closes
    /// (or `deadline`), so the kernel never answers it with a reset that could destroy the
    /// error response before the client reads it.
    closing: bool,
    deadline: Instant,
    peer: SocketAddr,
    /// `None` for a connection refused at the cap that is only lingering to close cleanly.
    slot: Option<ConnSlot>,
}

/// The head-reading thread's state.
pub struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    pending: HashMap<Token, Pending>,
    next_token: usize,
    /// Connections refused at the cap that linger to close cleanly.
    lingering: usize,
    /// The last accept failed with something other than "nothing to accept".
    accept_failed: bool,
    open: Arc<AtomicUsize>,
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
            pending: HashMap::new(),
            next_token: 2,
            lingering: 0,
            accept_failed: false,
            open: Arc::new(AtomicUsize::new(0)),
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
            let mut timeout =
                self.pending.values().map(|p| p.deadline).min().map(|d| {
                    d.saturating_duration_since(Instant::now()) + Duration::from_millis(1)
                });
            // The listener is edge-triggered: after a failed accept (out of descriptors, say)
            // no new event comes for connections already waiting, so try again shortly.
            if self.accept_failed {
                timeout = Some(timeout.map_or(ACCEPT_RETRY, |t| t.min(ACCEPT_RETRY)));
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("camstream: error: polling connections failed: {e}");
                    return;
                }
            }
            if self.accept_failed {
                self.accept_all();
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    t => self.read_head(t),
                }
            }
            self.expire();
        }
    }

    fn accept_all(&mut self) {
        self.accept_failed = false;
        loop {
            let (mut conn, peer) = match self.listener.accept() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors (or a peer gone before we took it): try again shortly.
                Err(_) => {
                    self.accept_failed = true;
                    return;
                }
            };
            let slot = ConnSlot::take(
                &self.open,
                self.limits.max_connections,
                &self.metrics.connections,
            );
            if slot.is_none() {
                self.metrics.connections_rejected.inc();
                reject(&mut conn, 503, "too many connections", Some(1));
                // Linger to close cleanly (see `answer_and_close`), but only a bounded number
                // beyond the cap; past that, just close.
                if self.lingering >= MAX_LINGERING {
                    continue;
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
            }
            let _ = conn.set_nodelay(true);
            let token = Token(self.next_token);
            self.next_token = self.next_token.wrapping_add(1).max(2);
            if self
                .poll
                .registry()
                .register(&mut conn, token, Interest::READABLE)
                .is_err()
            {
                continue;
            }
            let closing = slot.is_none();
            if closing {
                self.lingering += 1;
            }
            let deadline = Instant::now()
                + if closing {
                    LINGER
                } else {
                    self.limits.header_timeout
                };
            self.pending.insert(
                token,
                Pending {
                    conn,
                    buf: Vec::new(),
                    closing,
                    deadline,
                    peer,
                    slot,
                },
            );
        }
    }

    fn read_head(&mut self, token: Token) {
        let Some(p) = self.pending.get_mut(&token) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        if p.closing {
            loop {
                match p.conn.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            self.drop_pending(token);
            return;
        }
        let mut eof = false;
        loop {
            match p.conn.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    p.buf.extend_from_slice(&chunk[..n]);
                    if p.buf.len() > http::MAX_HEAD {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        match http::parse_head(&p.buf, p.peer) {
            Err(HeadError::Partial) if !eof => {}
            Err(HeadError::Partial) => {
                self.drop_pending(token);
            }
            Err(HeadError::Reject(code, why)) => self.answer_and_close(token, code, why),
            Ok(head) => {
                if let Some(p) = self.drop_pending(token) {
                    self.hand_over(p, head);
                }
            }
        }
    }

    /// Gives a complete request to the workers, or answers 503 if they are all busy.
    fn hand_over(&mut self, p: Pending, head: Head) {
        let Pending { conn, slot, .. } = p;
        let Some(slot) = slot else { return };
        // Non-blocking from here to the end: workers and senders never wait on a client.
        let conn: TcpStream = conn.into();
        match self.jobs.try_send(Job { conn, head, slot }) {
            Ok(()) => {}
            Err(TrySendError::Full(mut job)) => {
                self.metrics.connections_rejected.inc();
                let _ = job.conn.write(&error_bytes(503, "server busy", Some(1)));
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn drop_pending(&mut self, token: Token) -> Option<Pending> {
        let mut p = self.pending.remove(&token)?;
        if p.slot.is_none() {
            self.lingering -= 1;
        }
        let _ = self.poll.registry().deregister(&mut p.conn);
        Some(p)
    }

    /// Answers 408 to every connection whose head did not arrive in time.
    fn expire(&mut self) {
        let now = Instant::now();
        let late: Vec<Token> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            match self.pending.get(&t) {
                // Only bother answering someone who started a request.
                Some(p) if !p.closing && !p.buf.is_empty() => {
                    self.answer_and_close(t, 408, "request head not received in time")
                }
                _ => drop(self.drop_pending(t)),
            }
        }
    }

    /// Sends a short error response, half-closes, and keeps the connection (still counted)
    /// only to drain what the client sends until it closes, at most [`LINGER`].
    fn answer_and_close(&mut self, token: Token, code: u16, why: &str) {
        let Some(p) = self.pending.get_mut(&token) else {
            return;
        };
        reject(&mut p.conn, code, why, None);
        let _ = p.conn.shutdown(std::net::Shutdown::Write);
        p.closing = true;
        p.buf = Vec::new();
        p.deadline = Instant::now() + LINGER;
    }
}

/// The bytes of a short error response that closes the connection.
pub fn error_bytes(code: u16, why: &str, retry_after: Option<u32>) -> Vec<u8> {
    let retry = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: text/plain; charset=utf-8\r\n{retry}Content-Length: {}\r\nConnection: close\r\n\r\n{why}\n",
        http::reason(code),
        why.len() + 1
    )
    .into_bytes()
}

/// Best-effort answer on a non-blocking socket: one write, then the socket is dropped. A short
/// response fits in any socket buffer, so this does not lose bytes in practice.
fn reject(conn: &mut MioStream, code: u16, why: &str, retry_after: Option<u32>) {
    let _ = conn.write(&error_bytes(code, why, retry_after));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_are_complete_and_close() {
        let b = String::from_utf8(error_bytes(503, "server busy", Some(1))).unwrap();
        assert!(b.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(b.contains("Retry-After: 1\r\n") && b.contains("Connection: close\r\n"));
        assert!(b.ends_with("\r\n\r\nserver busy\n"));
        assert!(b.contains("Content-Length: 12\r\n"));
    }
}
