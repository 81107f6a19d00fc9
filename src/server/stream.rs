//! One viewer's MJPEG stream: `multipart/x-mixed-replace` parts, each the newest frame.
//!
//! The viewer sleeps until a newer frame is published, then writes it with one vectored write.
//! A slow viewer never holds anybody back: it simply finds a newer frame when its write is done
//! and skips the ones in between (counted). A viewer whose socket accepts nothing for the send
//! timeout is evicted (counted). With no new frame for a second the last one is sent again, so
//! proxies and players do not time out.

use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::frame::Frame;
use crate::server::routes::NO_CACHE;
use crate::server::App;
use crate::slot::Wait;

/// The multipart boundary, declared without the leading `--`.
pub const BOUNDARY: &str = "camstreamframe";
/// With no new frame for this long, the last one is sent again.
pub const IDLE_RESEND: Duration = Duration::from_secs(1);

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The server is shutting down. The last part went out whole; closing the connection ends
    /// the body (see `send_part` for why there is no close delimiter).
    Shutdown,
    /// The viewer closed the connection or it broke.
    Left,
    /// The viewer accepted no data within the send timeout.
    Evicted,
}

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

/// Serves the stream on `conn` (already admitted) until the viewer leaves, is evicted, or the
/// server shuts down.
pub fn serve(conn: &mut TcpStream, app: &App, minor_version: u8, max_fps: Option<u32>) -> End {
    let _watch = app.slot.watch();
    let m = &app.metrics;
    let mut head = response_head(minor_version, app.settings.allow_origin.as_deref());
    head.push_str(&format!("--{BOUNDARY}\r\n"));
    if let Err(e) = write_all(conn, &[IoSlice::new(head.as_bytes())]) {
        return classify(&e);
    }
    m.bytes_sent.inc_by(head.len() as u64);

    let min_gap = max_fps.map(|n| Duration::from_secs(1) / n);
    let mut last: Option<Arc<Frame>> = None;
    // A frame left in the slot from before anybody watched may be old: wait (up to the idle
    // resend time) for a fresh one, and only then fall back to it.
    let stale_limit = app.settings.source.frame_interval() * 2;
    let mut stale = app.slot.latest().filter(|f| {
        SystemTime::now()
            .duration_since(f.captured)
            .unwrap_or_default()
            > stale_limit
    });
    let mut next_allowed = Instant::now();
    loop {
        if let Some(gap) = min_gap {
            if app.shutdown.sleep_until(next_allowed) {
                return End::Shutdown;
            }
            next_allowed = Instant::now() + gap;
        }
        let frame = match app
            .slot
            .wait_newer(last.as_ref().or(stale.as_ref()).map(|f| f.seq), IDLE_RESEND)
        {
            Wait::Frame(f) => {
                if let (Some(prev), None) = (&last, min_gap) {
                    // Frames published while this viewer was still writing the previous one.
                    m.frames_skipped.inc_by(f.seq.saturating_sub(prev.seq + 1));
                }
                f
            }
            Wait::Timeout => match last.as_ref().or(stale.as_ref()) {
                Some(f) => Arc::clone(f),
                None => continue,
            },
            Wait::Closed => return End::Shutdown,
        };
        match send_part(conn, &frame) {
            Ok(n) => {
                m.frames_sent.inc();
                m.bytes_sent.inc_by(n);
            }
            Err(e) => return classify(&e),
        }
        last = Some(frame);
        stale = None;
    }
}

/// Writes one part: its headers, the JPEG, and the delimiter line that ends it, CRLF included,
/// so a client can show the frame as soon as it arrives (browsers wait for the end of the
/// delimiter line before they show a part). A close delimiter could then only follow an empty
/// part, which players would try to show; so, as with µStreamer and mjpg-streamer, closing the
/// connection ends the stream.
fn send_part(conn: &mut TcpStream, f: &Frame) -> io::Result<u64> {
    let head = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\n\r\n",
        f.jpeg.len(),
        f.timestamp()
    );
    let tail = format!("\r\n--{BOUNDARY}\r\n");
    let parts = [
        IoSlice::new(head.as_bytes()),
        IoSlice::new(&f.jpeg),
        IoSlice::new(tail.as_bytes()),
    ];
    write_all(conn, &parts)?;
    Ok((head.len() + f.jpeg.len() + tail.len()) as u64)
}

fn classify(e: &io::Error) -> End {
    match e.kind() {
        // SO_SNDTIMEO expired: the socket took no byte for the whole send timeout.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => End::Evicted,
        _ => End::Left,
    }
}

/// `write_all` for several buffers (std's is unstable): one `writev` in the common case.
fn write_all(conn: &mut TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<()> {
    let mut storage: Vec<IoSlice<'_>> = bufs.to_vec();
    let mut bufs = storage.as_mut_slice();
    while !bufs.is_empty() {
        match conn.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
    }
}
