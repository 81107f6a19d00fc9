//! The relay source (`--source http://...`): frames from another MJPEG server over HTTP, over
//! exactly one upstream connection whatever the number of viewers. Two kinds of upstream, told
//! apart by the response's Content-Type:
//!
//! - `multipart/x-mixed-replace` (IP cameras, µStreamer, mjpg-streamer, another camstream):
//!   each part's JPEG is passed through untouched, as soon as its last byte arrives; the
//!   upstream paces itself;
//! - `image/jpeg` (snapshot-only cameras): the URL is polled at `--fps`, one request at a time,
//!   over a kept-alive connection when the camera allows it.
//!
//! Basic and Digest authentication (the `http-auth` crate answers the challenge) with the
//! URL's user and password or `CAMSTREAM_SOURCE_USER` / `CAMSTREAM_SOURCE_PASSWORD`. Every
//! error names the URL without its password. Every wait is bounded by `--timeout`: connecting,
//! the first byte, and the time between two frames; a stalled upstream is a failed source, and
//! the capture loop shows NO SIGNAL and reconnects with backoff.

mod http;
mod multipart;
pub mod url;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use http_auth::{PasswordClient, PasswordParams};

use self::http::{Body, Head, Wire};
use self::multipart::{JpegEnd, Multipart, Scan};
pub use self::url::RelayUrl;
use crate::frame::RawFrame;
use crate::settings::SourceSettings;
use crate::source::Source;

/// The largest frame accepted from an upstream. The largest picture camstream handles
/// elsewhere is 7680x4320; a real 8K JPEG at high quality is 10 to 25 MB, so 32 MiB holds it
/// with room to spare, while the memory a hostile upstream can make a relay hold stays bounded
/// at about twice this (the read buffer and the published frame).
pub const MAX_FRAME: usize = 32 << 20;

/// Tries per polled frame before a snapshot-only upstream that sends no valid JPEG has failed.
const POLL_TRIES: u32 = 3;

pub struct Relay {
    url: RelayUrl,
    /// The URL as shown: no password.
    shown: String,
    addrs: Vec<SocketAddr>,
    creds: Option<(String, String)>,
    /// The answer to the upstream's last challenge, reused (Digest counts its nonce uses).
    auth: Option<PasswordClient>,
    timeout: Duration,
    kind: Kind,
    /// Bad frames not counted by the multipart reader (undecodable headers, bad snapshots).
    bad: u64,
}

enum Kind {
    Stream(Box<Multipart>),
    Poll {
        /// The frame that came with the open, handed out by the first grab.
        first: Option<RawFrame>,
        /// A kept-alive connection for the next request.
        conn: Option<Wire>,
    },
}

/// What one request got: a 200 head and the connection with its body.
struct Answer {
    head: Head,
    body: Body,
}

impl Relay {
    /// Connects, authenticates, and tells the upstream kind, all within `--timeout`.
    pub fn open(url: &RelayUrl, settings: &SourceSettings) -> Result<Relay> {
        let shown = url.to_string();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let user = url.user.clone().or_else(|| env("CAMSTREAM_SOURCE_USER"));
        let password = url
            .password
            .clone()
            .or_else(|| env("CAMSTREAM_SOURCE_PASSWORD"));
        let creds = match (user, password) {
            (None, None) => None,
            (u, p) => Some((u.unwrap_or_default(), p.unwrap_or_default())),
        };
        let addrs = http::resolve(url).map_err(|e| anyhow!("{shown}: {e}"))?;
        let mut relay = Relay {
            url: url.clone(),
            shown,
            addrs,
            creds,
            auth: None,
            timeout: settings.timeout,
            kind: Kind::Poll {
                first: None,
                conn: None,
            },
            bad: 0,
        };
        let deadline = Instant::now() + settings.timeout;
        let Answer { head, mut body } = relay.request(None, deadline)?;
        let ct = head.header("content-type").unwrap_or("").to_string();
        let mut mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime.is_empty() || mime == "application/octet-stream" {
            // No type, or ffmpeg's listen mode, which does not say what it muxes: look.
            mime = relay.sniff(&mut body, deadline)?.into();
        }
        if mime.starts_with("multipart/") {
            let boundary = multipart::boundary_of(&ct);
            relay.kind = Kind::Stream(Box::new(Multipart::new(body, boundary, MAX_FRAME)));
        } else if is_jpeg_type(&mime) {
            let (frame, conn) = relay.read_snapshot(&head, body, deadline)?;
            relay.kind = Kind::Poll {
                first: Some(frame),
                conn,
            };
        } else {
            let ct = if ct.is_empty() {
                "none".into()
            } else {
                format!("'{}'", clip(&ct))
            };
            bail!(
                "{} answered with Content-Type {ct}: neither an MJPEG stream \
                 (multipart/x-mixed-replace) nor a JPEG (image/jpeg)",
                relay.shown
            );
        }
        Ok(relay)
    }

    /// The type of a body that did not say: a delimiter line or a JPEG's start marker.
    fn sniff(&self, body: &mut Body, deadline: Instant) -> Result<&'static str> {
        let start = body
            .peek(64, deadline)
            .map_err(|e| anyhow!("{}: {}", self.shown, self.describe_error(e)))?;
        if start.trim_ascii_start().starts_with(b"--") {
            Ok("multipart/x-mixed-replace")
        } else if start.starts_with(&[0xFF, 0xD8]) {
            Ok("image/jpeg")
        } else {
            Ok("")
        }
    }

    /// Sends the GET (answering an auth challenge once) and returns a 200's head and body;
    /// anything else is an error that names the URL. `reuse` is a kept-alive connection.
    fn request(&mut self, mut reuse: Option<Wire>, deadline: Instant) -> Result<Answer> {
        let mut challenged = false;
        loop {
            let reused = reuse.is_some();
            let mut wire = match reuse.take() {
                Some(w) => w,
                None => Wire::connect(&self.addrs, deadline).map_err(|e| match e {
                    http::Error::Timeout => anyhow!(
                        "cannot connect to {} within {}",
                        self.shown,
                        show_duration(self.timeout)
                    ),
                    e => anyhow!(
                        "cannot connect to {}: {}",
                        self.shown,
                        self.describe_error(e)
                    ),
                })?,
            };
            let authorization = match (&mut self.auth, &self.creds) {
                (Some(client), Some((user, password))) => Some(
                    client
                        .respond(&PasswordParams {
                            username: user,
                            password,
                            uri: &self.url.target,
                            method: "GET",
                            body: Some(&[]),
                        })
                        .map_err(|e| anyhow!("{}: cannot answer its challenge: {e}", self.shown))?,
                ),
                _ => None,
            };
            let head = match http::get(&mut wire, &self.url, authorization.as_deref(), deadline) {
                Ok(h) => h,
                // A kept-alive connection the camera closed meanwhile: once more, afresh.
                Err(http::Error::Closed | http::Error::Other(_)) if reused => continue,
                Err(http::Error::Timeout) => bail!(
                    "{} sent no answer within {}",
                    self.shown,
                    show_duration(self.timeout)
                ),
                Err(e) => bail!("{}: {}", self.shown, self.describe_error(e)),
            };
            match head.status {
                200 => {
                    let body = Body::new(wire, &head)
                        .map_err(|e| anyhow!("{}: {}", self.shown, self.describe_error(e)))?;
                    return Ok(Answer { head, body });
                }
                401 if self.creds.is_none() => bail!(
                    "{} needs a user and password ({}); give them in the URL or in \
                     CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD",
                    self.shown,
                    status_line(&head)
                ),
                // A stale Digest nonce is answered afresh once; a refused password is final.
                401 if !challenged => {
                    challenged = true;
                    let mut builder = PasswordClient::builder();
                    for v in head.all("www-authenticate") {
                        builder = builder.challenges(v);
                    }
                    self.auth = Some(builder.build().map_err(|e| {
                        anyhow!(
                            "{} asks for authentication camstream cannot give (401: {e})",
                            self.shown
                        )
                    })?);
                }
                401 => bail!(
                    "{} refused the user and password ({})",
                    self.shown,
                    status_line(&head)
                ),
                300..=399 => bail!(
                    "{} answered {} (to {}); use that URL",
                    self.shown,
                    status_line(&head),
                    clip(&url::redact_str(head.header("location").unwrap_or("?")))
                ),
                _ => bail!("{} answered {}", self.shown, status_line(&head)),
            }
        }
    }

    /// Reads a whole JPEG response body; returns the frame and, when the connection may be
    /// reused, the connection.
    fn read_snapshot(
        &mut self,
        head: &Head,
        mut body: Body,
        deadline: Instant,
    ) -> Result<(RawFrame, Option<Wire>)> {
        if body.length().is_some_and(|n| n > MAX_FRAME as u64) {
            bail!(
                "{} sent a JPEG of {} MiB; at most {} MiB are accepted",
                self.shown,
                body.length().unwrap_or(0) >> 20,
                MAX_FRAME >> 20
            );
        }
        let mut data = vec![0u8; body.length().map_or(64 << 10, |n| n as usize)];
        let mut len = 0;
        loop {
            if len == data.len() {
                if data.len() >= MAX_FRAME {
                    bail!("{} sent a JPEG over {} MiB", self.shown, MAX_FRAME >> 20);
                }
                data.resize((data.len() * 2).min(MAX_FRAME), 0);
            }
            match body.read(&mut data[len..], deadline) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(http::Error::Timeout) => bail!(
                    "{} sent no whole JPEG within {}",
                    self.shown,
                    show_duration(self.timeout)
                ),
                Err(e) => bail!("{}: {}", self.shown, self.describe_error(e)),
            }
        }
        data.truncate(len);
        let conn = (body.is_done() && head.keep_alive()).then_some(body.wire);
        let captured = head
            .header("x-timestamp")
            .and_then(|t| stamp(t, self.timeout));
        match self.frame(&data, captured) {
            Some(f) => Ok((f, conn)),
            None => {
                self.bad += 1;
                bail!("{} sent an image that is not a whole JPEG", self.shown)
            }
        }
    }

    /// A frame from JPEG bytes, if they are one whole JPEG.
    fn frame(&self, data: &[u8], captured: Option<SystemTime>) -> Option<RawFrame> {
        let mut scan = JpegEnd::default();
        let Scan::End(n) = scan.feed(data) else {
            return None;
        };
        let (width, height) = scan.dims()?;
        Some(RawFrame::Jpeg {
            data: Arc::from(&data[..n]),
            width,
            height,
            captured,
        })
    }

    fn describe_error(&self, e: http::Error) -> String {
        match e {
            http::Error::Timeout => format!("no data for {}", show_duration(self.timeout)),
            http::Error::Closed => "the upstream closed the connection".into(),
            http::Error::Other(m) => m,
        }
    }

    /// The next frame of a multipart upstream; `copy`: whether the caller wants it.
    fn next_part(&mut self, copy: bool) -> Result<Option<RawFrame>> {
        let deadline = Instant::now() + self.timeout;
        let Kind::Stream(mp) = &mut self.kind else {
            unreachable!("next_part on a polled upstream");
        };
        let part = match mp.next_part(deadline) {
            Ok(p) => p,
            Err(http::Error::Timeout) => bail!(
                "{} sent no frame for {}",
                self.shown,
                show_duration(self.timeout)
            ),
            Err(http::Error::Closed) => bail!("{} ended the stream", self.shown),
            Err(http::Error::Other(m)) => bail!("{}: {m}", self.shown),
        };
        if !copy {
            return Ok(None);
        }
        Ok(Some(RawFrame::Jpeg {
            data: Arc::from(part.jpeg),
            width: part.width,
            height: part.height,
            captured: part.timestamp.and_then(|t| stamp(t, self.timeout)),
        }))
    }

    /// One poll of a snapshot-only upstream: up to [`POLL_TRIES`] requests, one at a time.
    fn poll(&mut self) -> Result<RawFrame> {
        let deadline = Instant::now() + self.timeout;
        let mut last_err = None;
        for _ in 0..POLL_TRIES {
            let Kind::Poll { conn, .. } = &mut self.kind else {
                unreachable!("poll on a stream");
            };
            let reuse = conn.take();
            let Answer { head, body } = self.request(reuse, deadline)?;
            let mime = head
                .header("content-type")
                .unwrap_or("")
                .to_ascii_lowercase();
            if !is_jpeg_type(mime.split(';').next().unwrap_or("").trim()) {
                bail!(
                    "{} answered with Content-Type '{}' instead of a JPEG",
                    self.shown,
                    clip(&mime)
                );
            }
            match self.read_snapshot(&head, body, deadline) {
                Ok((frame, keep)) => {
                    if let Kind::Poll { conn, .. } = &mut self.kind {
                        *conn = keep;
                    }
                    return Ok(frame);
                }
                Err(e) => last_err = Some(e),
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("{} sent no usable JPEG", self.shown)))
    }
}

impl Source for Relay {
    fn describe(&self) -> String {
        match self.kind {
            Kind::Stream(_) => format!("relay {} (MJPEG stream)", self.shown),
            Kind::Poll { .. } => format!("relay {} (JPEG, polled)", self.shown),
        }
    }

    fn grab(&mut self) -> Result<RawFrame> {
        match &mut self.kind {
            Kind::Stream(_) => self
                .next_part(true)?
                .ok_or_else(|| anyhow!("{}: no frame", self.shown)),
            Kind::Poll { first, .. } => match first.take() {
                Some(f) => Ok(f),
                None => self.poll(),
            },
        }
    }

    /// A stream is read on (it would fill up otherwise) but not copied; a snapshot camera is
    /// asked at `--fps` whether or not anybody watches, as a camera is read, so that health
    /// and the metrics stay true to it.
    fn skip(&mut self) -> Result<()> {
        match self.kind {
            Kind::Stream(_) => self.next_part(false).map(drop),
            Kind::Poll { .. } => self.grab().map(drop),
        }
    }

    fn needs_pacing(&self) -> bool {
        matches!(self.kind, Kind::Poll { .. })
    }

    fn bad_frames(&self) -> u64 {
        let parts = match &self.kind {
            Kind::Stream(mp) => mp.bad(),
            Kind::Poll { .. } => 0,
        };
        parts + self.bad
    }
}

/// The capture time from an upstream's `X-Timestamp` (Unix seconds with a fraction), if it is
/// within `limit` (`--timeout`) of our own clock. Otherwise the receive time is used: a camera
/// with an unset clock, or one that counts from its boot, would make every frame look stale (or
/// from the future) to viewers and to `/snapshot`.
fn stamp(text: &str, limit: Duration) -> Option<SystemTime> {
    let (secs, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Exact decimal digits, not a float, so that a relay re-sends the text it got.
    let nanos = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let t = UNIX_EPOCH.checked_add(Duration::new(secs, nanos))?;
    let off = match SystemTime::now().duration_since(t) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    (off <= limit).then_some(t)
}

/// `404 Not Found`; the usual phrase when the upstream sent none.
fn status_line(head: &Head) -> String {
    let reason = match (head.reason.trim(), head.status) {
        ("", 401) => "Unauthorized",
        ("", 403) => "Forbidden",
        ("", 404) => "Not Found",
        (r, _) => r,
    };
    clip(format!("{} {reason}", head.status).trim())
}

/// Text from the upstream as it goes into a one-line error: at most 100 characters.
fn clip(s: &str) -> String {
    match s.char_indices().nth(100) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn is_jpeg_type(mime: &str) -> bool {
    matches!(mime, "image/jpeg" | "image/jpg" | "image/pjpeg")
}

/// `5s`, `500ms`, `2.5s`: durations as the `--timeout` flag takes them.
fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Encoder;
    use crate::frame::{Chroma, Planar};
    use crate::settings::{FormatChoice, Size, SourceSpec};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn jpeg(luma: u8) -> Vec<u8> {
        Encoder::new(80)
            .unwrap()
            .encode(&Planar::filled(48, 32, Chroma::Yuv420, [luma, 90, 160]))
            .unwrap()
            .to_vec()
    }

    /// Serves `head` + `body` to one client, then keeps the connection open a moment.
    fn serve(raw: Vec<u8>) -> RelayUrl {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 2048];
            let _ = s.read(&mut req);
            let _ = s.write_all(&raw);
            std::thread::sleep(Duration::from_millis(300));
        });
        RelayUrl::parse(&format!("http://{addr}/stream")).unwrap()
    }

    fn settings(url: &RelayUrl) -> SourceSettings {
        SourceSettings {
            spec: SourceSpec::Relay(url.clone()),
            size: Size {
                width: 64,
                height: 48,
            },
            fps: 30,
            quality: 80,
            format: FormatChoice::Auto,
            timeout: Duration::from_secs(5),
            controls: Vec::new(),
        }
    }

    fn frames(raw: Vec<u8>, n: usize) -> (Vec<Vec<u8>>, u64) {
        let url = serve(raw);
        let mut r = Relay::open(&url, &settings(&url)).unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            match r.grab().unwrap() {
                RawFrame::Jpeg { data, .. } => out.push(data.to_vec()),
                RawFrame::Yuv(_) => panic!("a relay passes JPEGs through"),
            }
        }
        if let Kind::Stream(mp) = &r.kind {
            assert!(mp.buffer_len() <= 1 << 20);
        }
        (out, r.bad_frames())
    }

    #[test]
    fn multipart_variants_yield_the_same_frames() {
        let (a, b) = (jpeg(40), jpeg(200));
        let part = |j: &[u8], nl: &str, cl: bool| {
            let mut p = format!("Content-Type: image/jpeg{nl}X-Extra: 1{nl}").into_bytes();
            if cl {
                p.extend_from_slice(format!("Content-Length: {}{nl}", j.len()).as_bytes());
            }
            p.extend_from_slice(nl.as_bytes());
            p.extend_from_slice(j);
            p.extend_from_slice(nl.as_bytes());
            p
        };
        for (declared, line, nl, cl) in [
            ("boundary=frame", "--frame", "\r\n", true),
            ("boundary=--frame", "--frame", "\r\n", true),
            ("boundary=\"frame\"", "--frame", "\n", false),
            ("boundary=--frame", "----frame", "\n", true),
            ("", "--learnt", "\r\n", false),
        ] {
            let mut raw = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;{declared}\r\n\r\npreamble{nl}"
            )
            .into_bytes();
            for j in [&a, &b] {
                raw.extend_from_slice(format!("{line}{nl}").as_bytes());
                raw.extend_from_slice(&part(j, nl, cl));
            }
            raw.extend_from_slice(format!("{line}{nl}").as_bytes());
            let (got, bad) = frames(raw, 2);
            assert_eq!(
                got,
                [a.clone(), b.clone()],
                "{declared} {line:?} {nl:?} {cl}"
            );
            assert_eq!(bad, 0, "{declared} {line:?}");
        }
    }

    #[test]
    fn a_bad_part_is_skipped_and_counted() {
        let (a, b) = (jpeg(40), jpeg(200));
        let mut raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\r\n"
                .to_vec();
        let mut push = |body: &[u8], cl: bool| {
            raw.extend_from_slice(b"--x\r\nContent-Type: image/jpeg\r\n");
            if cl {
                raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            raw.extend_from_slice(b"\r\n");
            raw.extend_from_slice(body);
            raw.extend_from_slice(b"\r\n");
        };
        push(&a, true);
        push(&a[..a.len() / 2], true); // cut off
        push(b"not a jpeg", false);
        push(&b, false);
        let (got, bad) = frames(raw, 2);
        assert_eq!(got, [a, b]);
        assert_eq!(bad, 2);
    }

    #[test]
    fn junk_between_parts_in_pieces_never_loses_a_good_frame() {
        let good = [jpeg(40), jpeg(120), jpeg(220)];
        let mut seed = 0x2545_f491_u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20 {
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=--7b3cc56e5f51db803f94e6a\r\n\r\n".to_vec();
            let mut sent = Vec::new();
            for i in 0..12 {
                // Junk of any length and content (a cut JPEG now and then), ended by a line end.
                let n = (rand() % 3000) as usize;
                if rand() % 3 == 0 {
                    raw.extend_from_slice(&good[i % 3][..n.min(good[i % 3].len())]);
                } else {
                    raw.extend((0..n).map(|_| rand() as u8));
                }
                raw.extend_from_slice(b"\r\n--7b3cc56e5f51db803f94e6a\r\n");
                let j = &good[(i + round) % 3];
                if rand() % 2 == 0 {
                    raw.extend_from_slice(format!("Content-Length: {}\r\n", j.len()).as_bytes());
                }
                raw.extend_from_slice(b"\r\n");
                raw.extend_from_slice(j);
                sent.push(j.clone());
            }
            raw.extend_from_slice(b"\r\n--7b3cc56e5f51db803f94e6a\r\n");
            let (got, _bad) = frames(raw, sent.len());
            assert_eq!(got, sent, "round {round}");
        }
    }

    #[test]
    fn timestamps_are_kept_only_when_plausible() {
        let limit = Duration::from_secs(5);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let text = format!("{}.{:06}", now.as_secs() - 1, 123456);
        let t = stamp(&text, limit).unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(format!("{}.{:06}", d.as_secs(), d.subsec_micros()), text);
        assert!(stamp(&now.as_secs().to_string(), limit).is_some());
        assert!(stamp("12345.5", limit).is_none(), "seconds since boot");
        assert!(stamp(&format!("{}", now.as_secs() + 3600), limit).is_none());
        for bad in ["abc", "1.x", "1.-5", "1.1234567890", ""] {
            assert!(stamp(bad, limit).is_none(), "{bad}");
        }
    }
}
