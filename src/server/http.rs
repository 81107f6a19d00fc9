//! HTTP/1.x on the wire: reading a request head with httparse into a rouille `Request`, and
//! writing a rouille `Response` back. Every response closes its connection, so a keep-alive
//! client never holds a thread; bodies go out with a `Content-Length`, never chunked.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// A request line longer than this gets 414.
pub const MAX_REQUEST_LINE: usize = 8 << 10;
/// A request head (line plus headers) larger than this gets 431.
pub const MAX_HEAD: usize = 16 << 10;
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub request: rouille::Request,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
}

/// Why a head could not be used, with the status code that says so.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// More bytes are needed.
    Partial,
    /// Answer with this status and close.
    Reject(u16, &'static str),
}

/// Parses `buf` as a request head from `peer`.
pub fn parse_head(buf: &[u8], peer: SocketAddr) -> Result<Head, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let line_len = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) if line_len > MAX_REQUEST_LINE => {
            return Err(HeadError::Reject(414, "request line too long"))
        }
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
            return Err(HeadError::Reject(431, "request header fields too large"))
        }
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(if line_len > MAX_REQUEST_LINE {
                HeadError::Reject(414, "request line too long")
            } else if buf.len() > MAX_HEAD {
                HeadError::Reject(431, "request header fields too large")
            } else {
                HeadError::Partial
            });
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Reject(431, "too many header fields"))
        }
        Err(_) => return Err(HeadError::Reject(400, "malformed request")),
    }
    let (Some(method), Some(path), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HeadError::Reject(400, "malformed request"));
    };
    if !path.starts_with('/') {
        return Err(HeadError::Reject(400, "request target must be a path"));
    }
    let mut list = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(HeadError::Reject(400, "header value is not UTF-8"));
        };
        list.push((h.name.to_string(), value.to_string()));
    }
    // RFC 9112: an HTTP/1.1 request without Host is answered 400.
    if minor_version == 1 && !list.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        return Err(HeadError::Reject(400, "missing Host header"));
    }
    Ok(Head {
        request: rouille::Request::fake_http_from(peer, method, path, list, Vec::new()),
        minor_version,
    })
}

/// The reason phrase for the codes camstream sends.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes `resp` with `Connection: close`; with `head_only` the body is left out but its
/// length still announced. Returns the bytes written.
pub fn write_response(
    out: &mut impl Write,
    resp: rouille::Response,
    minor_version: u8,
    head_only: bool,
) -> io::Result<u64> {
    let (mut body, len) = resp.data.into_reader_and_size();
    // Bodies here are small and in memory; reading one fully gives it a Content-Length.
    let mut bytes = Vec::with_capacity(len.unwrap_or(0));
    body.read_to_end(&mut bytes)?;
    let mut head = format!(
        "HTTP/1.{} {} {}\r\n",
        minor_version.min(1),
        resp.status_code,
        reason(resp.status_code)
    );
    for (k, v) in &resp.headers {
        if !["connection", "content-length", "transfer-encoding"]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h))
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    // RFC 9110 8.6: no Content-Length on 1xx and 204 answers.
    if !(resp.status_code < 200 || resp.status_code == 204) {
        head.push_str(&format!("Content-Length: {}\r\n", bytes.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    out.write_all(head.as_bytes())?;
    if !head_only {
        out.write_all(&bytes)?;
    }
    out.flush()?;
    Ok((head.len() + if head_only { 0 } else { bytes.len() }) as u64)
}

/// A plain-text response with a one-line body.
pub fn text(code: u16, body: &str) -> rouille::Response {
    rouille::Response::text(format!("{body}\n")).with_status_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn parses_a_request_with_query() {
        let h = parse_head(
            b"GET /stream?fps=5&timestamp=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            peer(),
        )
        .unwrap();
        assert_eq!(h.request.method(), "GET");
        assert_eq!(h.request.url(), "/stream");
        assert_eq!(h.request.get_param("fps").as_deref(), Some("5"));
        assert_eq!(h.minor_version, 1);
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n", peer()).unwrap();
        assert_eq!(h.minor_version, 0);
    }

    #[test]
    fn rejects_bad_heads_with_the_right_status() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost", peer()).unwrap_err(),
            HeadError::Partial
        );
        assert_eq!(
            parse_head(b"\x00\x01garbage\r\n\r\n", peer()).unwrap_err(),
            HeadError::Reject(400, "malformed request")
        );
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n", peer()),
            Err(HeadError::Reject(400, _))
        ));
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(MAX_REQUEST_LINE));
        assert!(matches!(
            parse_head(long_line.as_bytes(), peer()),
            Err(HeadError::Reject(414, _))
        ));
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert!(matches!(
            parse_head(big.as_bytes(), peer()),
            Err(HeadError::Reject(431, _))
        ));
        let many: String = (0..100).map(|i| format!("X-{i}: 1\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert!(matches!(
            parse_head(req.as_bytes(), peer()),
            Err(HeadError::Reject(431, _))
        ));
    }

    #[test]
    fn writes_a_closing_response_with_length() {
        let mut out = Vec::new();
        write_response(&mut out, text(404, "no such page"), 1, false).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(
            s.contains("Content-Length: 13\r\nConnection: close\r\n\r\nno such page\n"),
            "{s}"
        );
        let mut out = Vec::new();
        write_response(&mut out, text(200, "hi"), 0, true).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("HTTP/1.0 200 OK\r\n") && s.ends_with("\r\n\r\n"),
            "{s}"
        );
    }
}
