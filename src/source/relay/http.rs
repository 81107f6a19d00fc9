//! A small HTTP/1.1 client for one upstream request at a time: connect, send a GET, read the
//! response head with httparse, and read the body (by length, chunked, or to the close) with a
//! deadline on every read. Every buffer here is bounded.
//!
//! Why not a client crate: an MJPEG stream is an endless body, and what matters is the time
//! between frames. ureq 3's timeouts cover whole phases (the whole body), not a read; ureq 2 has
//! a per-read timeout but it is fixed per connection, so a trickling upstream could hold a
//! frame for a multiple of it. Here each read gets what is left of the caller's deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::url::RelayUrl;

/// Most bytes of a response head (status line and headers); cameras send a few hundred.
const MAX_HEAD: usize = 16 << 10;
const MAX_HEADERS: usize = 64;
/// Read size from the socket.
const READ_CHUNK: usize = 64 << 10;
/// Longest chunk-size line (with extensions) of a chunked body.
const MAX_CHUNK_LINE: usize = 1024;

/// Why a request failed; `Timeout` and `Closed` are told apart by callers.
#[derive(Debug)]
pub enum Error {
    /// The deadline passed.
    Timeout,
    /// The upstream closed the connection where more was expected.
    Closed,
    /// Anything else, with a message that does not name the URL (the caller adds it).
    Other(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout,
            io::ErrorKind::UnexpectedEof => Error::Closed,
            _ => Error::Other(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Resolves the URL's host; a failure names only the host.
pub fn resolve(url: &RelayUrl) -> std::result::Result<Vec<SocketAddr>, String> {
    // getaddrinfo has no timeout parameter; it is bounded by the resolver's own settings
    // (resolv.conf: 5 s per try by default). A literal address resolves without a lookup.
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{} resolves to no address", url.host));
    }
    Ok(addrs)
}

/// A TCP connection with a read buffer; every read is bounded by a deadline.
pub struct Wire {
    stream: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Wire {
    /// Connects to the first address that answers before `deadline`.
    pub fn connect(addrs: &[SocketAddr], deadline: Instant) -> Result<Wire> {
        let mut last = Error::Timeout;
        for addr in addrs {
            let left = remaining(deadline)?;
            match TcpStream::connect_timeout(addr, left) {
                Ok(stream) => {
                    // Frames are small writes from the far side; our only writes are requests.
                    let _ = stream.set_nodelay(true);
                    return Ok(Wire {
                        stream,
                        buf: vec![0; READ_CHUNK].into_boxed_slice(),
                        start: 0,
                        end: 0,
                    });
                }
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    pub fn write_all(&mut self, data: &[u8], deadline: Instant) -> Result<()> {
        self.stream.set_write_timeout(Some(remaining(deadline)?))?;
        self.stream.write_all(data)?;
        Ok(())
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more into the buffer; `Ok(0)` at the end of the stream.
    fn fill(&mut self, deadline: Instant) -> Result<usize> {
        if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(Error::Other("response line too long".into()));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = read_until(&mut self.stream, &mut self.buf[self.end..], deadline)?;
        self.end += n;
        Ok(n)
    }

    /// Reads into `out`, from the buffer first; `Ok(0)` at the end of the stream.
    fn read(&mut self, out: &mut [u8], deadline: Instant) -> Result<usize> {
        if self.start == self.end {
            return read_until(&mut self.stream, out, deadline);
        }
        let n = self.buffered().len().min(out.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        Ok(n)
    }
}

/// One read with the time left before `deadline` as the socket's timeout.
fn read_until(stream: &mut TcpStream, out: &mut [u8], deadline: Instant) -> Result<usize> {
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn remaining(deadline: Instant) -> Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Timeout);
    }
    Ok(left)
}

/// A response head: status, headers (names lower-cased), and the HTTP minor version.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header (WWW-Authenticate may come several times).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection may carry another request after this response's body.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.minor == 0 {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }
}

/// Sends `GET target` and reads the response head, all before `deadline`.
pub fn get(
    wire: &mut Wire,
    url: &RelayUrl,
    authorization: Option<&str>,
    deadline: Instant,
) -> Result<Head> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: camstream/{}\r\nAccept: multipart/x-mixed-replace, image/jpeg, */*\r\n",
        url.target,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(a) = authorization {
        req.push_str("Authorization: ");
        req.push_str(a);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    wire.write_all(req.as_bytes(), deadline)?;
    read_head(wire, deadline)
}

fn read_head(wire: &mut Wire, deadline: Instant) -> Result<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(wire.buffered()) {
            Ok(httparse::Status::Complete(n)) => {
                let head = Head {
                    status: resp.code.unwrap_or(0),
                    reason: resp.reason.unwrap_or("").to_string(),
                    minor: resp.version.unwrap_or(1),
                    headers: resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).trim().to_string(),
                            )
                        })
                        .collect(),
                };
                wire.consume(n);
                // 1xx answers (100 Continue) are followed by the real one.
                if (100..200).contains(&head.status) {
                    continue;
                }
                return Ok(head);
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                return Err(Error::Other(format!(
                    "sent a malformed response head ({e})"
                )))
            }
        }
        if wire.buffered().len() >= MAX_HEAD {
            return Err(Error::Other(format!(
                "sent a response head longer than {} KiB",
                MAX_HEAD >> 10
            )));
        }
        if wire.fill(deadline)? == 0 {
            return Err(Error::Closed);
        }
    }
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Bytes left of a Content-Length body.
    Length(u64),
    /// Chunked: bytes left of the current chunk (0: a size line comes next).
    Chunked { left: u64, first: bool },
    /// Runs until the connection closes (HTTP/1.0, or no length given).
    Close,
    /// Fully read.
    Done,
}

/// A response body, read in pieces; the framing is undone here, so readers see the payload.
pub struct Body {
    pub wire: Wire,
    framing: Framing,
    /// Payload read ahead by [`Body::peek`], handed out first.
    peeked: Vec<u8>,
}

impl Body {
    pub fn new(wire: Wire, head: &Head) -> Result<Body> {
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let framing = if chunked {
            Framing::Chunked {
                left: 0,
                first: true,
            }
        } else if let Some(cl) = head.header("content-length") {
            let n: u64 = cl
                .trim()
                .parse()
                .map_err(|_| Error::Other(format!("sent a bad Content-Length '{cl}'")))?;
            if n == 0 {
                Framing::Done
            } else {
                Framing::Length(n)
            }
        } else {
            Framing::Close
        };
        Ok(Body {
            wire,
            framing,
            peeked: Vec::new(),
        })
    }

    /// The first payload bytes (up to `n`, fewer if the body is shorter), without consuming
    /// them: later reads return them again.
    pub fn peek(&mut self, n: usize, deadline: Instant) -> Result<&[u8]> {
        let mut buf = vec![0u8; n];
        let mut have = std::mem::take(&mut self.peeked);
        while have.len() < n {
            let got = self.read(&mut buf[..n - have.len()], deadline)?;
            if got == 0 {
                break;
            }
            have.extend_from_slice(&buf[..got]);
        }
        self.peeked = have;
        Ok(&self.peeked)
    }

    /// The declared length of the body, if there is one.
    pub fn length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            Framing::Done => Some(0),
            _ => None,
        }
    }

    /// Whether the whole body has been read (so the connection may be reused).
    pub fn is_done(&self) -> bool {
        self.framing == Framing::Done && self.peeked.is_empty()
    }

    /// Reads payload bytes into `out`; `Ok(0)` at the body's end. A connection closed before
    /// the declared end is [`Error::Closed`].
    pub fn read(&mut self, out: &mut [u8], deadline: Instant) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if !self.peeked.is_empty() {
            let n = self.peeked.len().min(out.len());
            out[..n].copy_from_slice(&self.peeked[..n]);
            self.peeked.drain(..n);
            return Ok(n);
        }
        loop {
            match self.framing {
                Framing::Done => return Ok(0),
                Framing::Close => return self.wire.read(out, deadline),
                Framing::Length(left) => {
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.wire.read(&mut out[..want], deadline)?;
                    if n == 0 {
                        return Err(Error::Closed);
                    }
                    self.framing = match left - n as u64 {
                        0 => Framing::Done,
                        l => Framing::Length(l),
                    };
                    return Ok(n);
                }
                Framing::Chunked { left: 0, first } => {
                    let size = self.chunk_size(first, deadline)?;
                    if size == 0 {
                        self.skip_trailers(deadline)?;
                        self.framing = Framing::Done;
                    } else {
                        self.framing = Framing::Chunked {
                            left: size,
                            first: false,
                        };
                    }
                }
                Framing::Chunked { left, .. } => {
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.wire.read(&mut out[..want], deadline)?;
                    if n == 0 {
                        return Err(Error::Closed);
                    }
                    self.framing = Framing::Chunked {
                        left: left - n as u64,
                        first: false,
                    };
                    return Ok(n);
                }
            }
        }
    }

    /// Reads the next chunk-size line (after the CRLF that ends the previous chunk).
    fn chunk_size(&mut self, first: bool, deadline: Instant) -> Result<u64> {
        if !first {
            let line = self.line(deadline)?;
            if !line.is_empty() {
                return Err(Error::Other("sent a chunk without its CRLF".into()));
            }
        }
        let line = self.line(deadline)?;
        let hex = line.split(';').next().unwrap_or("").trim();
        u64::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.is_empty() && hex.len() <= 15)
            .ok_or_else(|| Error::Other(format!("sent a bad chunk size '{}'", line.escape_debug())))
    }

    fn skip_trailers(&mut self, deadline: Instant) -> Result<()> {
        // A few trailer lines at most, then the empty line.
        for _ in 0..MAX_HEADERS {
            if self.line(deadline)?.is_empty() {
                return Ok(());
            }
        }
        Err(Error::Other("sent too many trailer lines".into()))
    }

    /// One line of the chunked framing, without its line end (CRLF or LF).
    fn line(&mut self, deadline: Instant) -> Result<String> {
        loop {
            if let Some(i) = self.wire.buffered().iter().position(|&b| b == b'\n') {
                let line = String::from_utf8_lossy(&self.wire.buffered()[..i])
                    .trim_end_matches('\r')
                    .to_string();
                self.wire.consume(i + 1);
                return Ok(line);
            }
            if self.wire.buffered().len() > MAX_CHUNK_LINE {
                return Err(Error::Other(
                    "sent a chunk-size line that never ends".into(),
                ));
            }
            if self.wire.fill(deadline)? == 0 {
                return Err(Error::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves `raw` to one client and returns the address.
    fn serve_once(raw: Vec<u8>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req);
            let _ = s.write_all(&raw);
        });
        addr
    }

    fn fetch(raw: &[u8]) -> (Head, Result<Vec<u8>>) {
        let addr = serve_once(raw.to_vec());
        let url = RelayUrl::parse(&format!("http://{addr}/x")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut wire = Wire::connect(&[addr], deadline).unwrap();
        let head = get(&mut wire, &url, None, deadline).unwrap();
        let mut body = Body::new(wire, &head).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        let res = loop {
            match body.read(&mut buf, deadline) {
                Ok(0) => break Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        (head, res)
    }

    #[test]
    fn reads_bodies_by_length_chunks_and_close() {
        let (h, b) = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello worldEXTRA");
        assert_eq!(h.status, 200);
        assert_eq!(b.unwrap(), b"hello world");
        let (_, b) = fetch(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
        );
        assert_eq!(b.unwrap(), b"hello world");
        let (h, b) = fetch(b"HTTP/1.0 200 OK\nContent-Type: image/jpeg\n\nuntil the close");
        assert_eq!((h.minor, h.header("content-type")), (0, Some("image/jpeg")));
        assert!(!h.keep_alive());
        assert_eq!(b.unwrap(), b"until the close");
        let (_, b) = fetch(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort");
        assert!(matches!(b, Err(Error::Closed)));
        let (_, b) = fetch(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert!(matches!(b, Err(Error::Other(_))));
    }
}
