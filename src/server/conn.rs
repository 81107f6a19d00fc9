//! One client connection from the moment its request head is complete to its close: the socket
//! (non-blocking from accept to close, so no thread ever waits on a client), the peer, the
//! request's HTTP version and the connection permit it holds. The acceptor makes it, a worker
//! answers on it, a sender may finish it; dropping it closes the socket and frees the permit.
//!
//! Also the two small helpers every non-blocking loop here uses instead of repeating the
//! `WouldBlock`/`Interrupted` ladder (as mio's `tcp_server` example does).

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream};

use crate::server::permit::Permit;

/// A connection with a complete request head.
pub struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Its place under `--max-connections`.
    pub permit: Permit,
}

/// The address a client is counted by (heads per address at the connection cap, failed
/// logins): an IPv4 address, or the /64 network of an IPv6 address, since one host can pick a
/// new address in its /64 for every connection; an IPv4-mapped address counts as the IPv4 one.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
        v4 => v4,
    }
}

/// What [`read_available`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// Everything the socket had was read; more may come.
    Drained,
    /// The peer closed its sending side.
    Eof,
    /// `limit` bytes were read and more may be waiting.
    Full,
}

/// The operation would block: the socket has nothing for us now (or no room).
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call: try again.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// Reads what a non-blocking socket has, at most `limit` bytes, handing each chunk to `sink`.
/// An error other than "would block" (a reset, say) is returned.
pub fn read_available(
    r: &mut impl Read,
    limit: usize,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<Input> {
    let mut chunk = [0u8; 4096];
    let mut total = 0;
    loop {
        if total >= limit {
            return Ok(Input::Full);
        }
        let want = chunk.len().min(limit - total);
        match r.read(&mut chunk[..want]) {
            Ok(0) => return Ok(Input::Eof),
            Ok(n) => {
                total += n;
                sink(&chunk[..n]);
            }
            Err(e) if would_block(&e) => return Ok(Input::Drained),
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes as much of `bufs`, from byte `off` on, as the socket takes with one vectored write
/// (`writev`, or `sendmsg` through [`SendMsg`]).
pub fn write_from(w: &mut impl Write, bufs: &[&[u8]], mut off: usize) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); 3];
    let mut n = 0;
    for b in bufs {
        if off >= b.len() {
            off -= b.len();
        } else if n < slices.len() {
            slices[n] = IoSlice::new(&b[off..]);
            off = 0;
            n += 1;
        }
    }
    w.write_vectored(&slices[..n])
}

/// A socket written with `sendmsg(2)` instead of `write`/`writev`: the socket call skips the VFS
/// layer (`vfs_writev`, the file-position lock) that a socket does not need, and `MSG_NOSIGNAL`
/// makes a write to a closed connection an error instead of a `SIGPIPE`.
pub struct SendMsg<'a>(socket2::SockRef<'a>);

impl<'a> SendMsg<'a> {
    pub fn new(s: &'a impl std::os::fd::AsFd) -> SendMsg<'a> {
        SendMsg(socket2::SockRef::from(s))
    }
}

impl Write for SendMsg<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs one non-blocking write, retrying on interruption; `Ok(None)` when it would block.
pub fn write_available(w: impl FnMut() -> io::Result<usize>) -> io::Result<Option<usize>> {
    let mut w = w;
    loop {
        match w() {
            Ok(n) => return Ok(Some(n)),
            Err(e) if would_block(&e) => return Ok(None),
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_network() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    /// A reader that returns its script, one step per call.
    struct Script(Vec<io::Result<Vec<u8>>>);

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.remove(0) {
                Ok(b) => {
                    buf[..b.len()].copy_from_slice(&b);
                    Ok(b.len())
                }
                Err(e) => Err(e),
            }
        }
    }

    fn err(kind: io::ErrorKind) -> io::Result<Vec<u8>> {
        Err(io::Error::from(kind))
    }

    #[test]
    fn reads_until_it_would_block_retrying_interruptions() {
        let mut r = Script(vec![
            Ok(b"ab".to_vec()),
            err(io::ErrorKind::Interrupted),
            Ok(b"c".to_vec()),
            err(io::ErrorKind::WouldBlock),
        ]);
        let mut got = Vec::new();
        let res = read_available(&mut r, 100, |b| got.extend_from_slice(b)).unwrap();
        assert_eq!((res, &got[..]), (Input::Drained, &b"abc"[..]));
        let mut r = Script(vec![Ok(b"x".to_vec()), Ok(Vec::new())]);
        assert_eq!(read_available(&mut r, 100, |_| {}).unwrap(), Input::Eof);
        let mut r = Script(vec![err(io::ErrorKind::ConnectionReset)]);
        assert!(read_available(&mut r, 100, |_| {}).is_err());
        let mut r = Script(vec![Ok(b"abcd".to_vec())]);
        assert_eq!(read_available(&mut r, 4, |_| {}).unwrap(), Input::Full);
    }

    #[test]
    fn a_write_that_would_block_is_none() {
        let mut calls = 0;
        let r = write_available(|| {
            calls += 1;
            if calls == 1 {
                Err(io::Error::from(io::ErrorKind::Interrupted))
            } else {
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            }
        });
        assert_eq!(r.unwrap(), None);
        assert_eq!(calls, 2);
        assert_eq!(write_available(|| Ok(3)).unwrap(), Some(3));
    }

    #[test]
    fn writes_resume_at_any_offset() {
        let mut out = Vec::new();
        let n = write_from(&mut out, &[b"ab", b"", b"cde"], 1).unwrap();
        assert_eq!((n, &out[..]), (4, &b"bcde"[..]));
        out.clear();
        write_from(&mut out, &[b"ab", b"cde"], 3).unwrap();
        assert_eq!(out, b"de");
    }
}
