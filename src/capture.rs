//! The capture loop: runs a source on its own thread, paces it, encodes (only while somebody
//! watches) and publishes into the latest-frame slot. When the source fails it shows a
//! "NO SIGNAL" placeholder about once a second and retries with backoff; it never exits on a
//! source error, only on shutdown.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use serde::Serialize;

use crate::draw;
use crate::encoder::Encoder;
use crate::frame::{Chroma, Frame, Planar, RawFrame};
use crate::logging::NOTICE;
use crate::metrics::Metrics;
use crate::settings::{Size, SourceSettings};
use crate::shutdown::Shutdown;
use crate::slot::FrameSlot;
use crate::source::controls::{self, Assignment, Control, SetError};
use crate::source::Source;

/// How often the placeholder is refreshed while the source is down.
pub const PLACEHOLDER_INTERVAL: Duration = Duration::from_secs(1);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What `/state` and `/healthz` need to know about the source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// The source as configured, e.g. `pattern`.
    pub spec: String,
    /// What is open now, e.g. `camera /dev/video0 MJPG 640x480`; empty while down.
    pub active: String,
    pub up: bool,
    /// The last failure, while down.
    pub error: Option<String>,
    /// Frames per second over the last second.
    pub fps: f64,
    /// Whether the source's frames are JPEGs passed through untouched (`None` until a frame
    /// was seen); otherwise camstream encodes them.
    pub passthrough: Option<bool>,
}

/// Opens the source; called again after every failure. It must give up within the source
/// timeout, as `source::open` does, so that the first try below ends in time and a source that
/// cannot be opened shows NO SIGNAL instead of holding the capture thread.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Source>> + Send>;

/// Everything the capture loop shares with the server.
pub struct Shared {
    pub slot: Arc<FrameSlot>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Mutex<SourceStatus>>,
    /// Control requests from `/controls` (`None`: nobody sends any).
    pub controls: Option<crossbeam_channel::Receiver<ControlRequest>>,
}

/// Most control requests the capture thread takes between two frames.
pub const CONTROL_QUEUE: usize = 4;

/// Reading (no assignments) or setting the source's controls. The capture thread owns the
/// device, so it serves these between two frames: the stream goes on, and the device is never
/// opened twice.
pub struct ControlRequest {
    pub assignments: Vec<Assignment>,
    /// Where the answer goes: the controls afterwards, or why not.
    pub reply: crossbeam_channel::Sender<Result<Vec<Control>, ControlError>>,
}

/// Why a control request failed.
#[derive(Debug)]
pub enum ControlError {
    /// The source has no controls (pattern, file, relay); says which it is.
    Unsupported(String),
    Set(SetError),
}

/// Starts the capture thread and returns once it has tried the source for the first time and,
/// if it opened, published its first frame (at most the source timeout), so that health, state
/// and the frame size are meaningful from the first request.
/// The thread ends after `shutdown` is triggered, then closes the slot.
pub fn spawn(
    settings: SourceSettings,
    open: Opener,
    shared: Shared,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>> {
    let encoder = Encoder::new(settings.quality)?;
    let first_try_limit = settings.timeout;
    let (tried_tx, tried_rx) = crossbeam_channel::bounded(1);
    let handle = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut cl = CaptureLoop::new(settings, open, shared, encoder, shutdown);
            cl.run(&tried_tx);
            cl.shared.slot.close();
        })?;
    let _ = tried_rx.recv_timeout(first_try_limit);
    Ok(handle)
}

struct CaptureLoop {
    settings: SourceSettings,
    open: Opener,
    shared: Shared,
    encoder: Encoder,
    shutdown: Shutdown,
    seq: u64,
    /// Frames counted in the current fps window and when it began (at a frame, not counted).
    fps_window: Option<(u32, Instant)>,
    bad_seen: u64,
    /// What the status says of passing frames through, to update it only on change.
    passthrough: Option<bool>,
}

impl CaptureLoop {
    fn new(
        settings: SourceSettings,
        open: Opener,
        shared: Shared,
        encoder: Encoder,
        shutdown: Shutdown,
    ) -> Self {
        shared.status.lock().unwrap_or_else(|e| e.into_inner()).spec = settings.spec.to_string();
        CaptureLoop {
            settings,
            open,
            shared,
            encoder,
            shutdown,
            seq: 0,
            fps_window: None,
            bad_seen: 0,
            passthrough: None,
        }
    }

    /// Opens and streams, again and again; says on `tried` when the first open has been tried
    /// (and, if it worked, the first frame published).
    fn run(&mut self, tried: &crossbeam_channel::Sender<()>) {
        let mut backoff = BACKOFF_START;
        let mut failed_before = false;
        let mut last_error = String::new();
        while !self.shutdown.is_triggered() {
            match (self.open)() {
                Ok(mut source) => {
                    if failed_before {
                        self.shared.metrics.source_reconnects.inc();
                        log::info!(target: NOTICE, "source is back: {}", source.describe());
                    }
                    self.set_up(&source.describe());
                    log::info!(
                        "source {}: opened {}",
                        self.settings.spec,
                        source.describe()
                    );
                    backoff = BACKOFF_START;
                    last_error.clear();
                    let err = self.stream(source.as_mut(), tried);
                    self.bad_seen = 0;
                    drop(source); // release the device before waiting to retry
                    match err {
                        None => return, // shutdown
                        Some(e) => {
                            failed_before = true;
                            self.fail(e, &mut last_error);
                        }
                    }
                }
                Err(e) => {
                    failed_before = true;
                    self.fail(e, &mut last_error);
                    let _ = tried.try_send(());
                }
            }
            if self.wait_down(backoff, &last_error) {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Records a failure, warns once per distinct message, and shows the placeholder at once.
    fn fail(&mut self, e: anyhow::Error, last_error: &mut String) {
        let msg = format!("{e:#}");
        self.shared.metrics.source_errors.inc();
        self.shared.metrics.source_up.set(0);
        self.shared.metrics.capture_fps.set(0.0);
        if msg != *last_error {
            log::warn!(
                "source {}: {msg}; showing NO SIGNAL and retrying",
                self.settings.spec
            );
        }
        {
            let mut st = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
            st.up = false;
            st.active.clear();
            st.error = Some(msg.clone());
            st.fps = 0.0;
        }
        *last_error = msg;
        // Shown even with nobody watching, so a viewer who arrives during the outage gets a
        // picture at once; one encode per failure is negligible.
        self.publish_placeholder(last_error);
    }

    /// Waits `backoff` while the source is down, refreshing the placeholder about once a
    /// second while somebody watches. Returns true on shutdown.
    fn wait_down(&mut self, backoff: Duration, reason: &str) -> bool {
        let until = Instant::now() + backoff;
        let mut next_placeholder = Instant::now() + PLACEHOLDER_INTERVAL;
        loop {
            let wake = until.min(next_placeholder);
            if self.shutdown.sleep_until(wake) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            if self.shared.slot.is_watched() {
                self.publish_placeholder(reason);
            }
            next_placeholder += PLACEHOLDER_INTERVAL;
        }
    }

    fn set_up(&self, active: &str) {
        self.shared.metrics.source_up.set(1);
        let mut st = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
        st.up = true;
        st.active = active.to_string();
        st.error = None;
    }

    /// Streams from an open source until it fails (`Some(error)`) or shutdown (`None`).
    fn stream(
        &mut self,
        source: &mut dyn Source,
        tried: &crossbeam_channel::Sender<()>,
    ) -> Option<anyhow::Error> {
        let interval = self.settings.frame_interval();
        let mut next_tick = Instant::now();
        self.fps_window = None;
        // The first frame is published even with nobody watching, so the size, /state and a
        // first snapshot are known at once; one encode per open is negligible.
        let mut first = true;
        while !self.shutdown.is_triggered() {
            if source.needs_pacing() {
                if self.shutdown.sleep_until(next_tick) {
                    return None;
                }
                next_tick += interval;
                // After a stall (a suspended machine, a slow disk) do not burst to catch up.
                let now = Instant::now();
                if next_tick + interval < now {
                    next_tick = now;
                }
            }
            let result = if std::mem::take(&mut first) {
                let r = source.grab().and_then(|raw| self.publish(raw));
                let _ = tried.try_send(());
                r
            } else if self.shared.slot.is_watched() {
                source.grab().and_then(|raw| self.publish(raw))
            } else {
                source.skip()
            };
            let bad = source.bad_frames();
            if bad > self.bad_seen {
                self.shared
                    .metrics
                    .source_bad_frames
                    .inc_by(bad - self.bad_seen);
                self.bad_seen = bad;
            }
            if let Err(e) = result {
                return Some(e);
            }
            self.serve_controls(source);
            self.shared.metrics.frames_captured.inc();
            self.count_fps();
        }
        None
    }

    /// Answers the control requests that arrived during the last frame; each is a few ioctls.
    fn serve_controls(&self, source: &dyn Source) {
        let Some(rx) = &self.shared.controls else {
            return;
        };
        for req in rx.try_iter().take(CONTROL_QUEUE) {
            let answer = match source.control_device() {
                None => Err(ControlError::Unsupported(format!(
                    "the source ({}) has no controls",
                    source.describe()
                ))),
                Some(dev) if req.assignments.is_empty() => controls::query(dev).map_err(|error| {
                    ControlError::Set(SetError::Driver {
                        control: "(list)".into(),
                        error,
                    })
                }),
                Some(dev) => controls::apply(dev, &req.assignments).map_err(ControlError::Set),
            };
            // The asker may have given up waiting; then nobody needs the answer.
            let _ = req.reply.try_send(answer);
        }
    }

    fn count_fps(&mut self) {
        let Some((n, since)) = &mut self.fps_window else {
            self.fps_window = Some((0, Instant::now()));
            return;
        };
        *n += 1;
        let elapsed = since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let fps = f64::from(*n) / elapsed.as_secs_f64();
            let fps = (fps * 10.0).round() / 10.0;
            self.shared.metrics.capture_fps.set(fps);
            self.shared
                .status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .fps = fps;
            self.fps_window = Some((0, Instant::now()));
        }
    }

    /// Encodes (unless already JPEG) and publishes a frame.
    fn publish(&mut self, raw: RawFrame) -> Result<()> {
        let mut captured = SystemTime::now();
        self.note_passthrough(matches!(raw, RawFrame::Jpeg { .. }));
        let (jpeg, width, height) = match raw {
            RawFrame::Jpeg {
                data,
                width,
                height,
                captured: at,
            } => {
                captured = at.unwrap_or(captured);
                (data, width, height)
            }
            RawFrame::Yuv(pic) => {
                let jpeg = self.encode(&pic)?;
                (jpeg, pic.width as u32, pic.height as u32)
            }
        };
        self.put(jpeg, width, height, captured, false);
        Ok(())
    }

    /// Records whether frames pass through, taking the status lock only when that changes.
    fn note_passthrough(&mut self, passthrough: bool) {
        if self.passthrough != Some(passthrough) {
            self.passthrough = Some(passthrough);
            let mut st = self.shared.status.lock().unwrap_or_else(|e| e.into_inner());
            st.passthrough = Some(passthrough);
        }
    }

    fn encode(&mut self, pic: &Planar) -> Result<Arc<[u8]>> {
        let t = Instant::now();
        let jpeg = self.encoder.encode(pic)?;
        self.shared
            .metrics
            .encode_seconds
            .observe(t.elapsed().as_secs_f64());
        self.shared.metrics.frames_encoded.inc();
        Ok(jpeg)
    }

    fn put(
        &mut self,
        jpeg: Arc<[u8]>,
        width: u32,
        height: u32,
        captured: SystemTime,
        placeholder: bool,
    ) {
        self.seq += 1;
        self.shared.metrics.frame_bytes.set(jpeg.len() as i64);
        self.shared.slot.publish(Frame {
            seq: self.seq,
            captured,
            width,
            height,
            placeholder,
            jpeg,
        });
    }

    fn publish_placeholder(&mut self, reason: &str) {
        let now = SystemTime::now();
        let pic = placeholder(self.settings.size, reason, now);
        match self.encode(&pic) {
            Ok(jpeg) => self.put(jpeg, pic.width as u32, pic.height as u32, now, true),
            Err(e) => log::warn!("cannot encode the placeholder: {e:#}"),
        }
    }
}

/// Draws the "NO SIGNAL" picture with the reason and the time.
pub fn placeholder(size: Size, reason: &str, now: SystemTime) -> Planar {
    let (w, h) = (size.width as usize, size.height as usize);
    let mut pic = Planar::filled(w, h, Chroma::Yuv420, [40, 128, 128]);
    let big = (w / 160).clamp(1, 8);
    let title = "NO SIGNAL";
    let tw = draw::text_width(title, big);
    draw::text(
        &mut pic,
        w.saturating_sub(tw) / 2,
        h / 3,
        big,
        title,
        draw::WHITE,
        [40, 128, 128],
    );
    let small = (big / 2).max(1);
    let max_chars = (w / (8 * small)).saturating_sub(2).max(1);
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let clock = format!(
        "{:02}:{:02}:{:02} UTC",
        (since / 3600) % 24,
        (since / 60) % 60,
        since % 60
    );
    let mut y = h / 3 + 8 * big + 6 * small;
    // The reason can be long (a device path and an OS error): wrap it to the picture's width.
    let mut lines = wrap(reason, max_chars);
    lines.truncate(4);
    lines.push(clock);
    for line in &lines {
        let lw = draw::text_width(line, small);
        draw::text(
            &mut pic,
            w.saturating_sub(lw) / 2,
            y,
            small,
            line,
            [200, 128, 128],
            [40, 128, 128],
        );
        y += 10 * small;
    }
    pic
}

/// Splits `text` into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        // A word longer than a line (a long path) is cut.
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SourceSpec;

    #[test]
    fn wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(
            wrap("no camera found (use --source pattern)", 16),
            ["no camera found", "(use --source", "pattern)"]
        );
        assert_eq!(
            wrap("/dev/v4l/by-id/usb-long-name", 10),
            ["/dev/v4l/b", "y-id/usb-l", "ong-name"]
        );
        assert!(wrap("", 10).is_empty());
    }
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A source that delivers `frames` frames, then fails.
    struct Flaky {
        frames: u32,
    }

    impl Source for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn grab(&mut self) -> Result<RawFrame> {
            if self.frames == 0 {
                anyhow::bail!("flaky source broke");
            }
            self.frames -= 1;
            Ok(RawFrame::Yuv(Planar::filled(
                32,
                32,
                Chroma::Yuv420,
                [200, 128, 128],
            )))
        }
    }

    fn settings() -> SourceSettings {
        SourceSettings {
            spec: SourceSpec::Pattern,
            size: Size {
                width: 32,
                height: 32,
            },
            fps: 200,
            quality: 80,
            format: crate::settings::FormatChoice::Auto,
            timeout: Duration::from_secs(1),
            controls: Vec::new(),
        }
    }

    /// The first frame after `after` that `pred` accepts, as the newest frame seen by polling
    /// (like any reader, it may skip frames in between).
    fn wait_for(slot: &FrameSlot, after: Option<u64>, pred: impl Fn(&Frame) -> bool) -> Arc<Frame> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(f) = slot
                .latest()
                .filter(|f| after.is_none_or(|s| f.seq > s) && pred(f))
            {
                return f;
            }
            assert!(Instant::now() < deadline, "no matching frame");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_failing_source_yields_the_placeholder_then_recovers() {
        let slot = Arc::new(FrameSlot::new());
        let metrics = Arc::new(Metrics::new().unwrap());
        let status = Arc::new(Mutex::new(SourceStatus::default()));
        let opens = Arc::new(AtomicU32::new(0));
        // Open #1 works for 3 frames; open #2 fails; open #3 works for good.
        let opener: Opener = {
            let opens = Arc::clone(&opens);
            Box::new(move || match opens.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(Box::new(Flaky { frames: 3 }) as Box<dyn Source>),
                1 => anyhow::bail!("camera unplugged"),
                _ => Ok(Box::new(Flaky { frames: u32::MAX })),
            })
        };
        let shutdown = Shutdown::new();
        let _watch = slot.watch();
        let shared = Shared {
            slot: Arc::clone(&slot),
            metrics: Arc::clone(&metrics),
            status: Arc::clone(&status),
            controls: None,
        };
        let t = spawn(settings(), opener, shared, shutdown.clone()).unwrap();

        let real = wait_for(&slot, None, |f| !f.placeholder);
        let ph = wait_for(&slot, Some(real.seq), |f| f.placeholder);
        assert_eq!((ph.width, ph.height), (32, 32));
        crate::encoder::jpeg_size(&ph.jpeg).unwrap();
        let back = wait_for(&slot, Some(ph.seq), |f| !f.placeholder);
        assert!(back.seq > ph.seq);
        // Recovery is seen in the metrics and status once the new source delivers.
        assert!(metrics.source_errors.get() >= 2);
        assert_eq!(metrics.source_reconnects.get(), 1);
        assert_eq!(metrics.source_up.get(), 1);
        assert!(status.lock().unwrap().up);

        shutdown.trigger();
        t.join().unwrap();
        assert!(slot.is_closed());
    }

    #[test]
    fn nothing_is_encoded_while_nobody_watches() {
        let slot = Arc::new(FrameSlot::new());
        let metrics = Arc::new(Metrics::new().unwrap());
        let shared = Shared {
            slot: Arc::clone(&slot),
            metrics: Arc::clone(&metrics),
            status: Arc::new(Mutex::new(SourceStatus::default())),
            controls: None,
        };
        let shutdown = Shutdown::new();
        let opener: Opener =
            Box::new(|| Ok(Box::new(Flaky { frames: u32::MAX }) as Box<dyn Source>));
        let t = spawn(settings(), opener, shared, shutdown.clone()).unwrap();
        // Let it capture a while (counted), with no watcher.
        let deadline = Instant::now() + Duration::from_secs(30);
        while metrics.frames_captured.get() < 20 {
            assert!(
                Instant::now() < deadline,
                "the capture loop stopped capturing"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Only the first frame after the open is encoded (so its size is known), none of the
        // 19 or more after it.
        assert_eq!(metrics.frames_encoded.get(), 1);
        assert_eq!(slot.latest().unwrap().seq, 1);
        let _w = slot.watch();
        let f = wait_for(&slot, Some(1), |_| true);
        assert!(!f.placeholder);
        assert!(metrics.frames_encoded.get() >= 2);
        shutdown.trigger();
        t.join().unwrap();
    }

    #[test]
    fn placeholder_is_not_uniform() {
        let p = placeholder(
            Size {
                width: 320,
                height: 240,
            },
            "camera /dev/video0 was unplugged",
            SystemTime::now(),
        );
        let y = &p.data[..320 * 240];
        assert!(y.iter().any(|&v| v > 150));
    }
}
