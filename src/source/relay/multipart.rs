//! Reads JPEG frames out of a `multipart/x-mixed-replace` body, tolerant of what real servers
//! send, with a bounded buffer:
//!
//! - the boundary declared with or without a leading `--`, quoted or not (or not at all: then
//!   the first line that starts with `--` names it), and delimiter lines with any number of
//!   leading dashes;
//! - parts with a `Content-Length`, or without one: then the JPEG's end marker ends the part,
//!   found by walking the JPEG's segments (an `FF D9` inside an EXIF thumbnail is not the end),
//!   so a frame is handed on as soon as its last byte arrives, not when the next delimiter does;
//! - CRLF or LF line ends, extra part headers, a preamble, no CRLF between a JPEG and the next
//!   delimiter (the original thread-pool server), no blank line before the JPEG.
//!
//! A part that is not a whole JPEG is skipped and counted in `bad`; so is every run of junk
//! longer than [`JUNK_TOLERANCE`] between parts. Nothing here ever ends the stream but the
//! upstream closing it or the caller's deadline.

use std::time::Instant;

use super::http::{self, Body};

/// Most bytes of one part's headers.
const MAX_PART_HEAD: usize = 16 << 10;
/// Bytes between parts (or before the first) that are not counted as a bad frame: servers put
/// blank lines or a short text there.
const JUNK_TOLERANCE: usize = 4 << 10;
const INITIAL_BUFFER: usize = 64 << 10;

/// One frame out of the stream: the JPEG (borrowed from the reader's buffer) and the part's
/// `X-Timestamp` value, if it had one.
pub struct Part<'a> {
    pub jpeg: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub timestamp: Option<&'a str>,
}

enum State {
    /// Looking for a delimiter line; `line_start`: whether `start` is at the start of a line.
    Seek { line_start: bool },
    /// Reading a part's headers.
    Headers,
    /// Reading a part's body from `start`; `len` from Content-Length, else found by `scan`.
    Body { len: Option<usize>, scan: JpegEnd },
    /// Throwing away the rest of an oversized part.
    Discard(u64),
    /// The previous call returned the part at `start..start+len`; drop it first.
    Emitted(usize),
}

pub struct Multipart {
    body: Body,
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// The boundary without leading dashes; `None` until learnt from the body.
    boundary: Option<Vec<u8>>,
    state: State,
    max_frame: usize,
    /// Junk bytes since the last delimiter, and the count at which the next bad frame is due.
    junk: usize,
    junk_due: usize,
    /// The current part's X-Timestamp.
    timestamp: Option<String>,
    bad: u64,
}

/// The boundary parameter of a multipart Content-Type, without quotes and leading dashes;
/// `None` if there is none (it is then learnt from the body).
pub fn boundary_of(content_type: &str) -> Option<Vec<u8>> {
    let params = content_type.split_once(';')?.1;
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"').trim_start_matches('-').trim();
        (!v.is_empty()).then(|| v.as_bytes().to_vec())
    })
}

impl Multipart {
    pub fn new(body: Body, boundary: Option<Vec<u8>>, max_frame: usize) -> Multipart {
        Multipart {
            body,
            data: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            boundary,
            state: State::Seek { line_start: true },
            max_frame,
            junk: 0,
            junk_due: JUNK_TOLERANCE,
            timestamp: None,
            bad: 0,
        }
    }

    /// Parts skipped as unusable (and junk runs) so far.
    pub fn bad(&self) -> u64 {
        self.bad
    }

    /// The buffer's size now (for tests of the bound).
    #[cfg(test)]
    pub fn buffer_len(&self) -> usize {
        self.data.len()
    }

    /// The next whole JPEG, before `deadline`. A part cut off by the deadline or the end of the
    /// stream counts as bad.
    pub fn next_part(&mut self, deadline: Instant) -> http::Result<Part<'_>> {
        match self.advance(deadline) {
            Ok((start, len, (width, height))) => Ok(Part {
                jpeg: &self.data[start..start + len],
                width,
                height,
                timestamp: self.timestamp.as_deref(),
            }),
            Err(e) => {
                if !matches!(self.state, State::Seek { .. }) || self.junk > 0 {
                    self.bad += 1;
                    self.junk = 0;
                    self.junk_due = JUNK_TOLERANCE;
                }
                self.state = State::Seek { line_start: false };
                Err(e)
            }
        }
    }

    /// Reads until a whole JPEG is in the buffer: its start, length and size.
    fn advance(&mut self, deadline: Instant) -> http::Result<(usize, usize, (u32, u32))> {
        loop {
            match &mut self.state {
                State::Emitted(len) => {
                    self.start += *len;
                    self.state = State::Seek { line_start: true };
                }
                State::Seek { line_start } => {
                    let line_start = *line_start;
                    match self.find_delimiter(line_start) {
                        Found::Delimiter { at, after, close } => {
                            self.add_junk(at - self.start);
                            self.junk = 0;
                            self.junk_due = JUNK_TOLERANCE;
                            if close {
                                return Err(http::Error::Closed);
                            }
                            self.start = after;
                            self.timestamp = None;
                            self.state = State::Headers;
                            continue;
                        }
                        Found::Maybe(from) => {
                            // A delimiter may begin at `from`: keep it, drop what is before.
                            let line_start = line_start && from == self.start;
                            self.add_junk(from - self.start);
                            self.start = from;
                            self.state = State::Seek { line_start };
                        }
                    }
                    self.fill(deadline)?;
                }
                State::Headers => {
                    if self.read_headers()? {
                        continue;
                    }
                    if self.end - self.start > MAX_PART_HEAD {
                        self.skip_part();
                        continue;
                    }
                    self.fill(deadline)?;
                }
                State::Body {
                    len: Some(len),
                    scan,
                } => {
                    let len = *len;
                    if self.end - self.start < len {
                        self.fill(deadline)?;
                        continue;
                    }
                    let body = &self.data[self.start..self.start + len];
                    match scan.feed(body) {
                        Scan::End(n) => {
                            let dims = scan.dims().unwrap_or_default();
                            self.state = State::Emitted(len);
                            return Ok((self.start, n, dims));
                        }
                        Scan::More | Scan::Bad => {
                            // A truncated or broken JPEG: the next delimiter may be inside.
                            self.skip_part();
                        }
                    }
                }
                State::Body { len: None, scan } => {
                    let body = &self.data[self.start..self.end];
                    match scan.feed(body) {
                        Scan::End(n) => {
                            let dims = scan.dims().unwrap_or_default();
                            self.state = State::Emitted(n);
                            return Ok((self.start, n, dims));
                        }
                        Scan::Bad => self.skip_part(),
                        Scan::More if body.len() >= self.max_frame => {
                            self.skip_part();
                            self.start = self.end;
                            self.shrink();
                        }
                        Scan::More => self.fill(deadline)?,
                    }
                }
                State::Discard(left) => {
                    let have = (self.end - self.start) as u64;
                    let n = have.min(*left);
                    *left -= n;
                    self.start += n as usize;
                    if *left == 0 {
                        self.state = State::Seek { line_start: true };
                        self.shrink();
                    } else {
                        self.fill(deadline)?;
                    }
                }
            }
        }
    }

    /// Counts a bad part and looks for the next delimiter from the part's first byte on.
    fn skip_part(&mut self) {
        self.bad += 1;
        self.state = State::Seek { line_start: false };
        // The bad part's own bytes are searched again for a delimiter; they are not junk too.
        self.junk = 0;
        self.junk_due = self.max_frame;
    }

    fn add_junk(&mut self, n: usize) {
        self.junk += n;
        while self.junk >= self.junk_due {
            self.bad += 1;
            self.junk_due += self.max_frame;
        }
    }

    /// Parses header lines at `start`; true once the body has begun (the state says how
    /// long it is).
    fn read_headers(&mut self) -> http::Result<bool> {
        let mut len = None;
        let mut pos = self.start;
        loop {
            let rest = &self.data[pos..self.end];
            // No blank line before the JPEG (seen in the wild): the body starts here.
            if rest.starts_with(&[0xFF, 0xD8]) {
                break;
            }
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                return Ok(false);
            };
            let line = &rest[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let next = pos + nl + 1;
            if line.is_empty() {
                pos = next;
                break;
            }
            if let Some(core) = &self.boundary {
                // An empty part: a delimiter where a header should be.
                if is_delimiter_line(line, core) {
                    len = None;
                    self.timestamp = None;
                    self.start = next;
                    pos = next;
                    continue;
                }
            }
            if let Some((k, v)) = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.split_once(':'))
            {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.parse::<u64>().ok();
                } else if k.eq_ignore_ascii_case("x-timestamp") {
                    self.timestamp = Some(v.to_string());
                }
            }
            pos = next;
        }
        self.start = pos;
        self.state = match len {
            Some(n) if n > self.max_frame as u64 => {
                self.bad += 1;
                State::Discard(n)
            }
            Some(n) => State::Body {
                len: Some(n as usize),
                scan: JpegEnd::default(),
            },
            None => State::Body {
                len: None,
                scan: JpegEnd::default(),
            },
        };
        Ok(true)
    }

    /// Looks for a delimiter line in the buffer.
    fn find_delimiter(&mut self, line_start: bool) -> Found {
        let hay = &self.data[self.start..self.end];
        let at_line_start = |i: usize| {
            if i == 0 {
                line_start
            } else {
                hay[i - 1] == b'\n'
            }
        };
        let Some(core) = self.boundary.clone() else {
            return self.learn_boundary(line_start);
        };
        let mut from = 0;
        while let Some(off) = memchr::memmem::find(&hay[from..], &core) {
            let i = from + off;
            from = i + 1;
            let mut j = i;
            while j > 0 && hay[j - 1] == b'-' {
                j -= 1;
            }
            if !at_line_start(j) {
                continue;
            }
            let mut k = i + core.len();
            let close = hay[k..].starts_with(b"--");
            if close {
                k += 2;
            }
            while k < hay.len() && (hay[k] == b' ' || hay[k] == b'\t') {
                k += 1;
            }
            match hay.get(k) {
                None => return Found::Maybe(self.start + j),
                Some(b'\n') => k += 1,
                Some(b'\r') => match hay.get(k + 1) {
                    None => return Found::Maybe(self.start + j),
                    Some(b'\n') => k += 2,
                    Some(_) => k += 1, // a lone CR ends the line too
                },
                Some(_) => continue,
            }
            return Found::Delimiter {
                at: self.start + j,
                after: self.start + k,
                close,
            };
        }
        // Keep enough of the end for a delimiter that is split across reads.
        let keep = (core.len() + 8).min(hay.len());
        Found::Maybe(self.end - keep)
    }

    /// No boundary was declared: the first line that starts with `--` names it.
    fn learn_boundary(&mut self, line_start: bool) -> Found {
        let hay = &self.data[self.start..self.end];
        let mut i = 0;
        loop {
            let is_start = if i == 0 {
                line_start
            } else {
                hay[i - 1] == b'\n'
            };
            let Some(nl) = memchr::memchr(b'\n', &hay[i..]) else {
                let keep = (hay.len() - i).min(256);
                return Found::Maybe(self.end - keep);
            };
            let line = &hay[i..i + nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if is_start && line.starts_with(b"--") {
                let core: Vec<u8> = line
                    .iter()
                    .copied()
                    .skip_while(|&b| b == b'-')
                    .collect::<Vec<u8>>()
                    .trim_ascii()
                    .to_vec();
                if !core.is_empty() && core.len() <= 256 {
                    self.boundary = Some(core);
                    return Found::Delimiter {
                        at: self.start + i,
                        after: self.start + i + nl + 1,
                        close: false,
                    };
                }
            }
            i += nl + 1;
        }
    }

    /// Reads more of the body into the buffer, making room first; an end of stream is
    /// [`http::Error::Closed`].
    fn fill(&mut self, deadline: Instant) -> http::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0
            && (self.end == self.data.len() || self.start > self.data.len() / 2)
        {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() {
            let cap = self.max_frame + MAX_PART_HEAD + INITIAL_BUFFER;
            if self.data.len() >= cap {
                // Cannot happen while the states keep their bounds; fail rather than grow.
                return Err(http::Error::Other("multipart buffer full".into()));
            }
            self.data.resize((self.data.len() * 2).min(cap), 0);
        }
        let n = self.body.read(&mut self.data[self.end..], deadline)?;
        if n == 0 {
            return Err(http::Error::Closed);
        }
        self.end += n;
        Ok(())
    }

    /// Gives back the memory of an oversized part.
    fn shrink(&mut self) {
        if self.data.len() > INITIAL_BUFFER && self.end - self.start <= INITIAL_BUFFER / 2 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.data.truncate(INITIAL_BUFFER);
            self.data.shrink_to_fit();
        }
    }
}

enum Found {
    /// A delimiter line at `at`, its line end before `after`; `close` for `--boundary--`.
    Delimiter {
        at: usize,
        after: usize,
        close: bool,
    },
    /// None yet; what is before this offset can go.
    Maybe(usize),
}

fn is_delimiter_line(line: &[u8], core: &[u8]) -> bool {
    let rest = {
        let mut l = line;
        while let [b'-', r @ ..] = l {
            l = r;
        }
        l
    };
    rest.strip_prefix(core)
        .is_some_and(|r| r.trim_ascii().is_empty() || r.trim_ascii() == b"--")
}

/// What a [`JpegEnd`] scan found so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The JPEG ends after this many bytes (its EOI marker included).
    End(usize),
    /// Not complete yet.
    More,
    /// Not a JPEG, or a broken one.
    Bad,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum St {
    #[default]
    Soi,
    /// Expecting the 0xFF that starts a marker.
    Marker,
    /// After 0xFF: the marker code (or fill bytes).
    Code,
    /// A segment's length: high byte next, or low byte next after `hi`.
    LenHi(u8),
    LenLo(u8, u8),
    /// A frame header (SOFn) of this payload length: its size comes first.
    Sof(usize),
    /// Skipping a segment's payload; then entropy-coded data if it was a scan header.
    Skip(usize, bool),
    /// Entropy-coded data, looking for the next 0xFF.
    Entropy,
    /// Entropy-coded data right after a 0xFF.
    EntropyFf,
}

/// Finds the end of a JPEG fed incrementally (each call sees the whole body so far and
/// resumes where the last stopped), walking marker segments by their lengths and skipping
/// entropy-coded data, as [`crate::source::file::jpeg_len`] does on a whole buffer.
#[derive(Debug, Default)]
pub struct JpegEnd {
    pos: usize,
    st: St,
    saw_scan: bool,
    dims: Option<(u32, u32)>,
}

impl JpegEnd {
    /// Width and height from the frame header, once it was seen. Reading them here saves a
    /// libjpeg-turbo handle per frame (its `read_header` allocates one each call).
    pub fn dims(&self) -> Option<(u32, u32)> {
        self.dims
    }

    pub fn feed(&mut self, d: &[u8]) -> Scan {
        loop {
            if self.st == St::Entropy {
                match memchr::memchr(0xFF, &d[self.pos.min(d.len())..]) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.st = St::EntropyFf;
                    }
                    None => {
                        self.pos = d.len();
                        return Scan::More;
                    }
                }
                continue;
            }
            if let St::Sof(n) = self.st {
                // Precision (1 byte), height and width (2 bytes each, big-endian).
                let Some(h) = d.get(self.pos..self.pos + 5) else {
                    return Scan::More;
                };
                let (height, width) = (
                    u32::from(u16::from_be_bytes([h[1], h[2]])),
                    u32::from(u16::from_be_bytes([h[3], h[4]])),
                );
                if n < 5 || width == 0 || height == 0 {
                    return Scan::Bad;
                }
                self.dims = Some((width, height));
                self.st = St::Skip(n, false);
                continue;
            }
            if let St::Skip(n, scan) = self.st {
                let step = n.min(d.len().saturating_sub(self.pos));
                self.pos += step;
                if step < n {
                    self.st = St::Skip(n - step, scan);
                    return Scan::More;
                }
                self.st = if scan { St::Entropy } else { St::Marker };
                continue;
            }
            let Some(&b) = d.get(self.pos) else {
                return Scan::More;
            };
            self.pos += 1;
            self.st = match self.st {
                St::Soi => {
                    if d.len() < 2 {
                        self.pos -= 1;
                        return Scan::More;
                    }
                    if d[0] != 0xFF || d[1] != 0xD8 {
                        return Scan::Bad;
                    }
                    self.pos = 2;
                    St::Marker
                }
                St::Marker if b == 0xFF => St::Code,
                St::Marker => return Scan::Bad,
                St::Code => match b {
                    0xFF => St::Code,
                    0xD9 if self.saw_scan && self.dims.is_some() => return Scan::End(self.pos),
                    0xD9 | 0xD8 | 0x00 => return Scan::Bad,
                    0x01 | 0xD0..=0xD7 => St::Marker,
                    m => St::LenHi(m),
                },
                St::LenHi(m) => St::LenLo(m, b),
                St::LenLo(m, hi) => {
                    let len = usize::from(u16::from_be_bytes([hi, b]));
                    if len < 2 {
                        return Scan::Bad;
                    }
                    let scan = m == 0xDA;
                    self.saw_scan |= scan;
                    match m {
                        0xC0..=0xCF if !matches!(m, 0xC4 | 0xC8 | 0xCC) => St::Sof(len - 2),
                        _ => St::Skip(len - 2, scan),
                    }
                }
                St::EntropyFf => match b {
                    0x00 | 0xD0..=0xD7 => St::Entropy,
                    0xFF => St::EntropyFf,
                    _ => {
                        // A marker: let the code state read it.
                        self.pos -= 1;
                        St::Code
                    }
                },
                St::Sof(_) | St::Skip(..) | St::Entropy => unreachable!("handled above"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Encoder;
    use crate::frame::{Chroma, Planar};
    use crate::source::file::jpeg_len;

    fn jpeg(luma: u8) -> Vec<u8> {
        Encoder::new(80)
            .unwrap()
            .encode(&Planar::filled(64, 32, Chroma::Yuv420, [luma, 100, 150]))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn finds_the_end_fed_in_pieces_like_jpeg_len() {
        let j = jpeg(90);
        assert_eq!(jpeg_len(&j), Some(j.len()));
        for step in [1, 2, 7, 100, j.len()] {
            let mut s = JpegEnd::default();
            let mut got = Scan::More;
            let mut n = 0;
            while got == Scan::More && n < j.len() {
                n = (n + step).min(j.len());
                got = s.feed(&j[..n]);
            }
            assert_eq!(got, Scan::End(j.len()), "step {step}");
            assert_eq!(s.dims(), Some((64, 32)));
        }
        // Trailing bytes are not part of it; a cut-off one needs more; garbage is bad.
        let mut padded = j.clone();
        padded.extend_from_slice(b"\r\n\r\n");
        assert_eq!(JpegEnd::default().feed(&padded), Scan::End(j.len()));
        assert_eq!(JpegEnd::default().feed(&j[..j.len() - 1]), Scan::More);
        assert_eq!(JpegEnd::default().feed(b"<html>"), Scan::Bad);
        // A JPEG that is cut off and followed by another one is bad, not the pair.
        let mut two = j[..j.len() / 2].to_vec();
        two.extend_from_slice(&j);
        assert_eq!(JpegEnd::default().feed(&two), Scan::Bad);
    }

    #[test]
    fn an_end_marker_inside_a_segment_is_not_the_end() {
        let j = jpeg(30);
        // An APP1 segment holding FF D9 (as an EXIF thumbnail would) right after SOI.
        let app: &[u8] = &[0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD9];
        let mut x = j[..2].to_vec();
        x.extend_from_slice(app);
        x.extend_from_slice(&j[2..]);
        assert_eq!(JpegEnd::default().feed(&x), Scan::End(x.len()));
    }

    #[test]
    fn boundaries_in_content_types() {
        let b = |ct| boundary_of(ct).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            b("multipart/x-mixed-replace;boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            b("multipart/x-mixed-replace; boundary=--abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            b("multipart/x-mixed-replace; charset=x; Boundary=\"--my frame\"").as_deref(),
            Some("my frame")
        );
        assert_eq!(b("multipart/x-mixed-replace"), None);
        assert_eq!(b("multipart/x-mixed-replace; boundary=\"\""), None);
    }
}
