//! HTTP/1.x on the wire: reading a request head with httparse into a rouille `Request`, and
//! turning a rouille `Response` into the bytes that go back ([`Outgoing`]); the one place status
//! lines and headers are written, CORS and no-cache included. Every response closes its connection, so a keep-alive
//! client never holds a thread; bodies go out with a `Content-Length`, never chunked.

use std::borrow::Cow;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

/// A request line longer than this gets 414.
pub const MAX_REQUEST_LINE: usize = 8 << 10;
/// A request head (line plus headers) larger than this gets 431.
pub const MAX_HEAD: usize = 16 << 10;
const MAX_HEADERS: usize = 64;
/// A request body (only `POST /controls` reads one) larger than this gets 413. It is read with
/// the head, within `--header-timeout`, so a worker never waits on a slow client.
pub const MAX_BODY: usize = 4 << 10;

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
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) if line_len > MAX_REQUEST_LINE => {
            return Err(HeadError::Reject(414, "request line too long"))
        }
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
            return Err(HeadError::Reject(431, "request header fields too large"))
        }
        Ok(httparse::Status::Complete(n)) => n,
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
    };
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
    let body = body(&list, &buf[head_len..])?;
    Ok(Head {
        request: rouille::Request::fake_http_from(peer, method, path, list, body),
        minor_version,
    })
}

/// The body after a head with these headers, once all of it is in `rest`: at most [`MAX_BODY`]
/// bytes by `Content-Length`. Chunked bodies are refused (no client of camstream sends one).
fn body(headers: &[(String, String)], rest: &[u8]) -> Result<Vec<u8>, HeadError> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if header("Transfer-Encoding").is_some() {
        return Err(HeadError::Reject(
            411,
            "a body must come with Content-Length",
        ));
    }
    let len = match header("Content-Length") {
        None => return Ok(Vec::new()),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| HeadError::Reject(400, "malformed Content-Length"))?,
    };
    if len > MAX_BODY {
        return Err(HeadError::Reject(
            413,
            "request body too large (at most 4 KiB)",
        ));
    }
    match rest.get(..len) {
        Some(b) => Ok(b.to_vec()),
        None => Err(HeadError::Partial),
    }
}

/// The reason phrase for the codes camstream sends.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response ready for the wire: a head made for one client, and a body that may be shared
/// with others (a snapshot's body is the frame's own JPEG, not a copy).
pub struct Outgoing {
    pub head: Vec<u8>,
    pub body: Arc<[u8]>,
}

impl Outgoing {
    /// `resp` with `Connection: close` and a `Content-Length`; with `head_only` the body is
    /// left out but its length still announced. `allow_origin` adds CORS.
    pub fn new(resp: rouille::Response, req: &ReplyTo) -> Outgoing {
        let (mut reader, len) = resp.data.into_reader_and_size();
        // Bodies made here are small and in memory; reading one fully gives it a length.
        let mut bytes = Vec::with_capacity(len.unwrap_or(0));
        let _ = reader.read_to_end(&mut bytes);
        Outgoing::with_body(resp.status_code, &resp.headers, bytes.into(), req)
    }

    /// A response with `status`, `headers` and `body`, which is shared, not copied.
    pub fn with_body(
        status: u16,
        headers: &[(Cow<'static, str>, Cow<'static, str>)],
        body: Arc<[u8]>,
        req: &ReplyTo,
    ) -> Outgoing {
        // RFC 9110 8.6: no Content-Length on 1xx and 204 answers.
        let length = (!(status < 200 || status == 204)).then_some(body.len());
        Outgoing {
            head: head(status, headers, length, req),
            body: if req.head_only { empty() } else { body },
        }
    }

    /// The response head of an MJPEG stream (no length: it ends when the connection does).
    pub fn stream(req: &ReplyTo, boundary: &str) -> Outgoing {
        let ct = format!("multipart/x-mixed-replace;boundary={boundary}");
        let mut headers = vec![(Cow::from("Content-Type"), Cow::from(ct))];
        headers.extend(NO_CACHE.map(|(k, v)| (Cow::from(k), Cow::from(v))));
        // X-Accel-Buffering tells nginx not to buffer this response even with proxy_buffering.
        headers.push(("X-Accel-Buffering".into(), "no".into()));
        Outgoing {
            head: head(200, &headers, None, req),
            body: empty(),
        }
    }

    /// Head and body, in the order they go out.
    pub fn bufs(&self) -> [&[u8]; 2] {
        [&self.head, &self.body]
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a response depends on besides itself: the request's HTTP version and method, and the
/// configured CORS origin.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub head_only: bool,
    pub allow_origin: Option<Arc<str>>,
}

fn empty() -> Arc<[u8]> {
    Arc::from(&[][..])
}

/// The one place a status line and header block are written. Every response closes its
/// connection; hop-by-hop and length headers of `headers` are replaced by camstream's own.
fn head(
    status: u16,
    headers: &[(Cow<'static, str>, Cow<'static, str>)],
    length: Option<usize>,
    req: &ReplyTo,
) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.{} {status} {}\r\n",
        req.minor_version.min(1),
        reason(status)
    );
    for (k, v) in headers {
        if !["connection", "content-length", "transfer-encoding"]
            .iter()
            .any(|n| k.eq_ignore_ascii_case(n))
        {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if let Some(o) = &req.allow_origin {
        h.push_str(&format!("Access-Control-Allow-Origin: {o}\r\n"));
    }
    if let Some(n) = length {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    h.push_str("Connection: close\r\n\r\n");
    h.into_bytes()
}

/// Headers that stop browsers and proxies from caching live pictures.
pub const NO_CACHE: [(&str, &str); 3] = [
    (
        "Cache-Control",
        "no-store, no-cache, must-revalidate, max-age=0",
    ),
    ("Pragma", "no-cache"),
    ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
];

/// A plain-text response with a one-line body.
pub fn text(code: u16, body: &str) -> rouille::Response {
    rouille::Response::text(format!("{body}\n")).with_status_code(code)
}

/// A short plain-text error response that closes the connection, without CORS headers: for
/// refusals before a request is routed (the connection cap, a full queue, a bad head).
pub fn error(code: u16, why: &str, retry_after: Option<u32>, minor_version: u8) -> Outgoing {
    let mut resp = text(code, why);
    if let Some(s) = retry_after {
        resp = resp.with_unique_header("Retry-After", s.to_string());
    }
    let to = ReplyTo {
        minor_version,
        head_only: false,
        allow_origin: None,
    };
    Outgoing::new(resp, &to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_are_complete_and_close() {
        let out = error(503, "server busy", Some(1), 1);
        let b = String::from_utf8([&out.head[..], &out.body[..]].concat()).unwrap();
        assert!(b.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(b.contains("Retry-After: 1\r\n") && b.contains("Connection: close\r\n"));
        assert!(b.ends_with("\r\n\r\nserver busy\n"));
        assert!(b.contains("Content-Length: 12\r\n"));
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn a_body_is_awaited_up_to_its_content_length_and_bounded() {
        let head = "POST /controls HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
        let partial = format!("{head}ab");
        assert_eq!(
            parse_head(partial.as_bytes(), peer()).err(),
            Some(HeadError::Partial)
        );
        let full = format!("{head}a=1&b");
        let h = parse_head(full.as_bytes(), peer()).unwrap();
        let mut body = String::new();
        h.request.data().unwrap().read_to_string(&mut body).unwrap();
        assert_eq!(body, "a=1&b");
        let big = "POST /controls HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n";
        assert_eq!(
            parse_head(big.as_bytes(), peer()).err(),
            Some(HeadError::Reject(
                413,
                "request body too large (at most 4 KiB)"
            ))
        );
        let bad = "POST /controls HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n";
        assert!(matches!(
            parse_head(bad.as_bytes(), peer()).err(),
            Some(HeadError::Reject(400, _))
        ));
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

    fn to(minor_version: u8, head_only: bool) -> ReplyTo {
        ReplyTo {
            minor_version,
            head_only,
            allow_origin: None,
        }
    }

    fn wire(o: &Outgoing) -> String {
        String::from_utf8([&o.head[..], &o.body[..]].concat()).unwrap()
    }

    #[test]
    fn writes_a_closing_response_with_length() {
        let s = wire(&Outgoing::new(text(404, "no such page"), &to(1, false)));
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(
            s.contains("Content-Length: 13\r\nConnection: close\r\n\r\nno such page\n"),
            "{s}"
        );
        let s = wire(&Outgoing::new(text(200, "hi"), &to(0, true)));
        assert!(
            s.starts_with("HTTP/1.0 200 OK\r\n")
                && s.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"),
            "{s}"
        );
        let s = wire(&Outgoing::new(
            rouille::Response::empty_204(),
            &to(1, false),
        ));
        assert!(!s.contains("Content-Length"), "{s}");
    }

    #[test]
    fn cors_is_added_once_and_streams_have_no_length() {
        let mut req = to(0, false);
        req.allow_origin = Some("*".into());
        let h = wire(&Outgoing::stream(&req, "b"));
        assert!(h.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(h.contains("Content-Type: multipart/x-mixed-replace;boundary=b\r\n"));
        assert_eq!(h.matches("Access-Control-Allow-Origin: *\r\n").count(), 1);
        assert!(h.contains("Cache-Control: no-store"));
        assert!(!h.contains("Content-Length"));
        assert!(h.ends_with("Connection: close\r\n\r\n"));
    }
}
