//! The `camera` source: a V4L2 camera, and the device discovery behind `camstream list`.
//!
//! Devices are found with nokhwa's query. Format negotiation and streaming then use the `v4l`
//! crate (nokhwa's own V4L2 backend) directly, because nokhwa 0.10 cannot do two things a
//! server needs: its `frame()` waits forever on a stalled camera (v4l's stream can poll with a
//! timeout), and it hands back the whole mmap buffer ignoring `bytesused`. We pick the format
//! ourselves from the camera's list, pass MJPEG through untouched (trimmed at its end marker) and
//! split YUYV into planar 4:2:2 for the encoder without an RGB detour. While nobody watches, a
//! frame is only dequeued (and so handed back to the driver): neither split nor copied.

use std::collections::HashMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::framesize::FrameSizeEnum;
use v4l::io::traits::CaptureStream;
use v4l::prelude::MmapStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::encoder::jpeg_size;
use crate::frame::{Chroma, Planar, RawFrame};
use crate::settings::{CameraSelector, FormatChoice, SourceSettings};
use crate::source::controls::{self, Control};
use crate::source::file::jpeg_len;
use crate::source::Source;

const MJPG: FourCC = FourCC { repr: *b"MJPG" };
const YUYV: FourCC = FourCC { repr: *b"YUYV" };

/// A capture-capable camera as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CameraInfo {
    pub index: u32,
    pub path: PathBuf,
    /// The stable `/dev/v4l/by-id/...` name, when udev made one.
    pub by_id: Option<PathBuf>,
    pub name: String,
    pub driver: String,
    pub bus: String,
    pub formats: Vec<FormatInfo>,
    /// Focus, exposure, white balance…: what `camstream controls` and `--control` can set.
    pub controls: Vec<Control>,
    /// Why the device could not be inspected (e.g. permission denied), if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FormatInfo {
    pub fourcc: String,
    pub description: String,
    /// Discrete sizes; for a stepwise range, its smallest and largest size.
    pub sizes: Vec<SizeInfo>,
    /// The range of sizes a stepwise device (e.g. the Raspberry Pi's bcm2835 camera) accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stepwise: Option<SizeRange>,
}

/// A stepwise size range: widths `min_width..=max_width` in steps of `step_width`, likewise
/// for heights.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct SizeRange {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

impl SizeRange {
    /// Whether `w` x `h` is one of the range's sizes.
    pub fn contains(&self, w: u32, h: u32) -> bool {
        let fits = |v: u32, min: u32, max: u32, step: u32| {
            (min..=max).contains(&v) && (v - min) % step.max(1) == 0
        };
        fits(w, self.min_width, self.max_width, self.step_width)
            && fits(h, self.min_height, self.max_height, self.step_height)
    }
}

impl FormatInfo {
    /// Whether the camera offers this format at `w` x `h`.
    pub fn offers(&self, w: u32, h: u32) -> bool {
        self.sizes.iter().any(|s| s.width == w && s.height == h)
            || self.stepwise.is_some_and(|r| r.contains(w, h))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeInfo {
    pub width: u32,
    pub height: u32,
    /// Frame rates offered at this size, highest first.
    pub fps: Vec<f64>,
}

/// Every capture-capable camera, by device number. Metadata-only nodes are left out.
pub fn enumerate() -> Result<Vec<CameraInfo>> {
    let found = nokhwa::query(nokhwa::utils::ApiBackend::Video4Linux)
        .map_err(|e| anyhow!("cannot list cameras: {e}"))?;
    let by_id = by_id_links();
    let mut cams: Vec<CameraInfo> = found
        .iter()
        .filter_map(|info| {
            let index = info.index().as_index().ok()?;
            let path = PathBuf::from(format!("/dev/video{index}"));
            let mut cam = CameraInfo {
                index,
                by_id: by_id.get(&path).cloned(),
                name: info.human_name(),
                driver: String::new(),
                bus: String::new(),
                formats: Vec::new(),
                controls: Vec::new(),
                error: None,
                path,
            };
            match inspect(&cam.path) {
                Ok(None) => return None, // not a video capture node
                Ok(Some((caps, formats, controls))) => {
                    cam.name = caps.card;
                    cam.driver = caps.driver;
                    cam.bus = caps.bus;
                    cam.formats = formats;
                    match controls {
                        Ok(c) => cam.controls = c,
                        Err(e) => cam.error = Some(format!("cannot read the controls: {e}")),
                    }
                }
                Err(e) => cam.error = Some(format!("{e:#}")),
            }
            Some(cam)
        })
        .collect();
    cams.sort_by_key(|c| c.index);
    Ok(cams)
}

/// What [`inspect`] finds: capabilities, formats and controls (which can fail on their own).
type Inspected = (v4l::Capabilities, Vec<FormatInfo>, io::Result<Vec<Control>>);

/// Capabilities, formats and controls of a node; `None` when it cannot capture video or has no
/// device behind it (a stale node whose driver is gone).
fn inspect(path: &Path) -> Result<Option<Inspected>> {
    let dev = match Device::with_path(path) {
        Ok(d) => d,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENODEV | libc::ENXIO)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let caps = query_caps(&dev, path)?;
    if !is_capture(&caps) {
        return Ok(None);
    }
    let formats = formats_of(&dev)
        .with_context(|| format!("cannot read the formats of {}", path.display()))?;
    Ok(Some((caps, formats, controls::query(&dev))))
}

fn query_caps(dev: &Device, path: &Path) -> Result<v4l::Capabilities> {
    // v4l unwraps the card name as UTF-8 and panics on anything else; treat that as an error.
    catch_unwind(AssertUnwindSafe(|| dev.query_caps()))
        .map_err(|_| anyhow!("{} reports a card name that is not UTF-8", path.display()))?
        .with_context(|| format!("{} does not answer VIDIOC_QUERYCAP", path.display()))
}

fn is_capture(caps: &v4l::Capabilities) -> bool {
    caps.capabilities.contains(Flags::VIDEO_CAPTURE) && caps.capabilities.contains(Flags::STREAMING)
}

fn formats_of(dev: &Device) -> io::Result<Vec<FormatInfo>> {
    let mut out = Vec::new();
    for desc in dev.enum_formats()? {
        let mut sizes = Vec::new();
        let mut stepwise = None;
        for fs in dev.enum_framesizes(desc.fourcc)? {
            let dims: Vec<(u32, u32)> = match fs.size {
                FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                FrameSizeEnum::Stepwise(s) => {
                    stepwise = Some(SizeRange {
                        min_width: s.min_width,
                        max_width: s.max_width,
                        step_width: s.step_width,
                        min_height: s.min_height,
                        max_height: s.max_height,
                        step_height: s.step_height,
                    });
                    vec![(s.min_width, s.min_height), (s.max_width, s.max_height)]
                }
            };
            for (width, height) in dims {
                let mut fps: Vec<f64> = dev
                    .enum_frameintervals(desc.fourcc, width, height)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|i| match i.interval {
                        v4l::frameinterval::FrameIntervalEnum::Discrete(f) if f.numerator > 0 => {
                            Some(
                                (f64::from(f.denominator) / f64::from(f.numerator) * 100.0).round()
                                    / 100.0,
                            )
                        }
                        v4l::frameinterval::FrameIntervalEnum::Stepwise(s)
                            if s.min.numerator > 0 =>
                        {
                            Some(f64::from(s.min.denominator) / f64::from(s.min.numerator))
                        }
                        _ => None,
                    })
                    .collect();
                fps.sort_by(|a, b| b.total_cmp(a));
                fps.dedup();
                sizes.push(SizeInfo { width, height, fps });
            }
        }
        out.push(FormatInfo {
            fourcc: fourcc_name(desc.fourcc),
            description: desc.description,
            sizes,
            stepwise,
        });
    }
    Ok(out)
}

fn fourcc_name(f: FourCC) -> String {
    String::from_utf8_lossy(&f.repr).trim_end().to_string()
}

/// Maps `/dev/videoN` to its `/dev/v4l/by-id/...` link.
fn by_id_links() -> HashMap<PathBuf, PathBuf> {
    let Ok(dir) = std::fs::read_dir("/dev/v4l/by-id") else {
        return HashMap::new();
    };
    let mut map = HashMap::new();
    for link in dir.flatten().map(|e| e.path()) {
        if let Ok(target) = std::fs::canonicalize(&link) {
            // Several links can name one node (…-video-index0 and a shorter alias); keep the
            // shortest, it is the one people type.
            let keep = map
                .get(&target)
                .is_none_or(|old: &PathBuf| link.as_os_str().len() < old.as_os_str().len());
            if keep {
                map.insert(target, link);
            }
        }
    }
    map
}

fn open_error(path: &Path, e: io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => anyhow!(
            "permission denied opening {} (is the user in the 'video' group?)",
            path.display()
        ),
        Some(libc::EBUSY) => anyhow!(
            "camera {} is busy (another program is using it)",
            path.display()
        ),
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            anyhow!("camera {} is not present", path.display())
        }
        _ => anyhow!("cannot open camera {}: {e}", path.display()),
    }
}

/// Turns `--source camera[:N|:PATH]` into a device path that exists.
fn resolve(sel: &CameraSelector) -> Result<PathBuf> {
    let wanted = match sel {
        CameraSelector::First => {
            let cams = enumerate()?;
            return cams
                .iter()
                .find(|c| c.error.is_none())
                .or(cams.first())
                .map(|c| c.path.clone())
                .ok_or_else(|| {
                    anyhow!("no camera found (use --source pattern to run without one)")
                });
        }
        CameraSelector::Index(n) => PathBuf::from(format!("/dev/video{n}")),
        CameraSelector::Path(p) => p.clone(),
    };
    if wanted.exists() {
        return Ok(wanted);
    }
    let found: Vec<String> = enumerate()
        .unwrap_or_default()
        .iter()
        .map(|c| c.path.display().to_string())
        .collect();
    if found.is_empty() {
        bail!(
            "no camera at {} (no cameras found; use --source pattern to run without one)",
            wanted.display()
        )
    }
    bail!(
        "no camera at {} (found: {})",
        wanted.display(),
        found.join(", ")
    )
}

/// Opens the camera a selector names, without streaming, to read or set its controls
/// (`camstream controls`, and checking `--control` at start).
pub fn open_for_controls(sel: &CameraSelector) -> Result<(PathBuf, Device)> {
    let path = resolve(sel)?;
    let dev = Device::with_path(&path).map_err(|e| open_error(&path, e))?;
    if !is_capture(&query_caps(&dev, &path)?) {
        bail!(
            "{} is not a video capture device (a metadata node? see camstream list)",
            path.display()
        );
    }
    Ok((path, dev))
}

/// The pixel layout being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mjpeg,
    Yuyv,
}

pub struct Camera {
    path: PathBuf,
    kind: Kind,
    width: u32,
    height: u32,
    /// Bytes per YUYV row as the driver lays them out (may exceed width * 2).
    stride: usize,
    /// Whether YUYV levels are limited range and must be expanded for JPEG.
    limited_range: bool,
    timeout: Duration,
    /// Dropped before the device: it stops streaming and unmaps the buffers.
    stream: Option<MmapStream<'static>>,
    device: Device,
    bad: u64,
    /// Frames turned into a [`RawFrame`] (YUYV split, MJPEG trimmed and copied).
    converted: u64,
}

impl Camera {
    pub fn open(sel: &CameraSelector, settings: &SourceSettings) -> Result<Camera> {
        let path = resolve(sel)?;
        let dev = Device::with_path(&path).map_err(|e| open_error(&path, e))?;
        let caps = query_caps(&dev, &path)?;
        if !is_capture(&caps) {
            bail!(
                "{} is not a video capture device (a metadata node? see camstream list)",
                path.display()
            );
        }
        let formats = formats_of(&dev)
            .with_context(|| format!("cannot read the formats of {}", path.display()))?;
        let (want_w, want_h) = (settings.size.width, settings.size.height);
        let candidates: &[Kind] = match settings.format {
            FormatChoice::Auto => &[Kind::Mjpeg, Kind::Yuyv],
            FormatChoice::Mjpeg => &[Kind::Mjpeg],
            FormatChoice::Yuyv => &[Kind::Yuyv],
        };
        let (kind, w, h) = choose(&formats, candidates, want_w, want_h).ok_or_else(|| {
            let list: Vec<String> = formats
                .iter()
                .map(|f| {
                    let sizes: Vec<String> = f
                        .sizes
                        .iter()
                        .map(|s| format!("{}x{}", s.width, s.height))
                        .collect();
                    format!("{} {}", f.fourcc, sizes.join(" "))
                })
                .collect();
            anyhow!(
                "camera {} offers no {} at {} (offers: {})",
                path.display(),
                match settings.format {
                    FormatChoice::Auto => "MJPEG or YUYV",
                    FormatChoice::Mjpeg => "MJPEG",
                    FormatChoice::Yuyv => "YUYV",
                },
                settings.size,
                if list.is_empty() {
                    "nothing".to_string()
                } else {
                    list.join("; ")
                }
            )
        })?;
        if (w, h) != (want_w, want_h) {
            // Like V4L2's own S_FMT, take the nearest size rather than refuse: a webcam that
            // lacks 640x480 should still work with the defaults.
            log::warn!(
                "camera {} does not offer {}; using {} {w}x{h}",
                path.display(),
                settings.size,
                fourcc_name(kind.fourcc())
            );
        }
        let applied = dev
            .set_format(&v4l::Format::new(w, h, kind.fourcc()))
            .map_err(|e| open_error(&path, e))?;
        if applied.width != w || applied.height != h || applied.fourcc != kind.fourcc() {
            bail!(
                "camera {} refused {} {}x{} (it chose {} {}x{})",
                path.display(),
                fourcc_name(kind.fourcc()),
                w,
                h,
                fourcc_name(applied.fourcc),
                applied.width,
                applied.height
            );
        }
        // Not every driver supports frame-rate control; the camera then runs at its own rate.
        let _ = dev.set_params(&v4l::video::capture::Parameters::with_fps(settings.fps));
        // Before streaming starts: some drivers refuse some controls while streaming. On every
        // open, so that a replugged camera (back at its power-on values) gets them again.
        controls::apply_at_open(
            &dev,
            &format!("camera {}", path.display()),
            &settings.controls,
        );
        let mut stream = MmapStream::with_buffers(&dev, Type::VideoCapture, 4)
            .map_err(|e| open_error(&path, e))
            .context("cannot map capture buffers")?;
        stream.set_timeout(settings.timeout);
        Ok(Camera {
            path,
            kind,
            width: w,
            height: h,
            stride: (applied.stride as usize).max(w as usize * 2),
            limited_range: !matches!(applied.quantization, v4l::format::Quantization::FullRange),
            timeout: settings.timeout,
            stream: Some(stream),
            device: dev,
            bad: 0,
            converted: 0,
        })
    }

    /// Frames turned into pictures so far; the others were skipped, only dequeued. (A test
    /// shows with it that an unwatched YUYV camera costs no conversion.)
    pub fn frames_converted(&self) -> u64 {
        self.converted
    }

    fn read_error(&self, e: io::Error) -> anyhow::Error {
        let p = self.path.display();
        if e.kind() == io::ErrorKind::TimedOut {
            return anyhow!("camera {p} delivered no frame within {:?}", self.timeout);
        }
        match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ENXIO) => {
                anyhow!("camera {p} was unplugged")
            }
            _ => anyhow!("camera {p} failed to deliver a frame: {e}"),
        }
    }
}

/// Picks the format and size to stream: the requested size in the first wanted format that
/// offers it; otherwise, in the first wanted format the camera has at all, the offered size
/// nearest in area (the larger on a tie). `None` if no wanted format is offered.
fn choose(formats: &[FormatInfo], wanted: &[Kind], w: u32, h: u32) -> Option<(Kind, u32, u32)> {
    let of = |k: Kind| formats.iter().find(|f| f.fourcc == fourcc_name(k.fourcc()));
    if let Some(k) = wanted
        .iter()
        .copied()
        .find(|k| of(*k).is_some_and(|f| f.offers(w, h)))
    {
        return Some((k, w, h));
    }
    let (k, f) = wanted.iter().find_map(|k| of(*k).map(|f| (*k, f)))?;
    let mut sizes: Vec<(u32, u32)> = f.sizes.iter().map(|s| (s.width, s.height)).collect();
    if let Some(r) = f.stepwise {
        // The range's point nearest the request, on its grid.
        let fit = |v: u32, min: u32, max: u32, step: u32| {
            let v = v.clamp(min, max);
            min + (v - min) / step.max(1) * step.max(1)
        };
        sizes.push((
            fit(w, r.min_width, r.max_width, r.step_width),
            fit(h, r.min_height, r.max_height, r.step_height),
        ));
    }
    let area = u64::from(w) * u64::from(h);
    let (cw, ch) = sizes.into_iter().min_by_key(|&(sw, sh)| {
        let a = u64::from(sw) * u64::from(sh);
        (a.abs_diff(area), std::cmp::Reverse(a))
    })?;
    Some((k, cw, ch))
}

impl Kind {
    fn fourcc(self) -> FourCC {
        match self {
            Kind::Mjpeg => MJPG,
            Kind::Yuyv => YUYV,
        }
    }
}

impl Source for Camera {
    fn describe(&self) -> String {
        format!(
            "camera {} {} {}x{}",
            self.path.display(),
            fourcc_name(self.kind.fourcc()),
            self.width,
            self.height
        )
    }

    fn grab(&mut self) -> Result<RawFrame> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let stream = self
                .stream
                .as_mut()
                .ok_or_else(|| anyhow!("camera stream is closed"))?;
            let (buf, meta) = match stream.next() {
                Ok(v) => v,
                Err(e) => return Err(self.read_error(e)),
            };
            let used = match meta.bytesused as usize {
                0 => buf.len(),
                n => n.min(buf.len()),
            };
            let data = &buf[..used];
            match self.kind {
                Kind::Mjpeg => {
                    // Trim at the end marker: drivers pad, and some leave junk after it.
                    if let Some(n) = jpeg_len(data) {
                        if let Ok((width, height)) = jpeg_size(&data[..n]) {
                            self.converted += 1;
                            return Ok(RawFrame::Jpeg {
                                data: Arc::from(&data[..n]),
                                width,
                                height,
                                captured: None,
                            });
                        }
                    }
                }
                Kind::Yuyv => {
                    if let Some(pic) = split_yuyv(
                        data,
                        self.width as usize,
                        self.height as usize,
                        self.stride,
                        self.limited_range,
                    ) {
                        self.converted += 1;
                        return Ok(RawFrame::Yuv(pic));
                    }
                }
            }
            // A corrupt or short frame (it happens on busy USB buses): skip it, within the timeout.
            self.bad += 1;
            if Instant::now() >= deadline {
                bail!(
                    "camera {} delivered only corrupt frames for {:?}",
                    self.path.display(),
                    self.timeout
                );
            }
        }
    }

    /// Dequeues one frame and hands its buffer straight back: with nobody watching, splitting
    /// YUYV (a copy of the whole picture) or trimming and copying MJPEG would be thrown away.
    /// A corrupt frame goes unnoticed here, but it would have been dropped just the same.
    fn skip(&mut self) -> Result<()> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| anyhow!("camera stream is closed"))?;
        let dequeued = stream.next().map(drop);
        dequeued.map_err(|e| self.read_error(e))
    }

    fn needs_pacing(&self) -> bool {
        false
    }

    fn bad_frames(&self) -> u64 {
        self.bad
    }

    fn control_device(&self) -> Option<&Device> {
        Some(&self.device)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        // v4l panics when STREAMOFF fails with anything but ENODEV (a camera that died with EIO,
        // say); releasing a broken camera must not take the capture thread down with it.
        if let Some(stream) = self.stream.take() {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(stream)));
        }
    }
}

/// Limited-range (video) levels to the full range JPEG stores: Y 16..235 and C 16..240 to 0..255.
const fn expand_table(luma: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let v = if luma {
            (i as i32 - 16) * 255 / 219
        } else {
            (i as i32 - 128) * 255 / 224 + 128
        };
        t[i] = if v < 0 {
            0
        } else if v > 255 {
            255
        } else {
            v as u8
        };
        i += 1;
    }
    t
}
static EXPAND_Y: [u8; 256] = expand_table(true);
static EXPAND_C: [u8; 256] = expand_table(false);

/// Splits packed YUYV (Y0 U Y1 V) rows into planar 4:2:2; `None` if the buffer is short. With
/// `expand`, limited-range levels (what V4L2 YUYV means by default) become JPEG's full range,
/// so blacks stay black; the table lookup rides on the copy that happens anyway.
pub fn split_yuyv(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    expand: bool,
) -> Option<Planar> {
    if width % 2 != 0 || data.len() < stride * (height - 1) + width * 2 {
        return None;
    }
    let mut pic = Planar {
        width,
        height,
        chroma: Chroma::Yuv422,
        data: vec![0; width * height * 2],
    };
    let (ys, us, vs) = pic.planes_mut();
    let cw = width / 2;
    for row in 0..height {
        let line = &data[row * stride..row * stride + width * 2];
        let (y, u, v) = (
            &mut ys[row * width..(row + 1) * width],
            &mut us[row * cw..(row + 1) * cw],
            &mut vs[row * cw..(row + 1) * cw],
        );
        if expand {
            for (i, px) in line.chunks_exact(4).enumerate() {
                y[2 * i] = EXPAND_Y[usize::from(px[0])];
                u[i] = EXPAND_C[usize::from(px[1])];
                y[2 * i + 1] = EXPAND_Y[usize::from(px[2])];
                v[i] = EXPAND_C[usize::from(px[3])];
            }
        } else {
            for (i, px) in line.chunks_exact(4).enumerate() {
                y[2 * i] = px[0];
                u[i] = px[1];
                y[2 * i + 1] = px[2];
                v[i] = px[3];
            }
        }
    }
    Some(pic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_is_split_into_planes_honouring_the_stride() {
        // 4x2 picture, stride 10 (2 bytes of padding per row).
        let data = [
            1, 10, 2, 20, 3, 11, 4, 21, 0, 0, //
            5, 12, 6, 22, 7, 13, 8, 23, 0, 0,
        ];
        let pic = split_yuyv(&data, 4, 2, 10, false).unwrap();
        assert_eq!(
            pic.data,
            [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 20, 21, 22, 23]
        );
        assert!(split_yuyv(&data[..12], 4, 2, 10, false).is_none());
    }

    fn format(fourcc: &str, sizes: &[(u32, u32)]) -> FormatInfo {
        FormatInfo {
            fourcc: fourcc.into(),
            description: String::new(),
            sizes: sizes
                .iter()
                .map(|&(width, height)| SizeInfo {
                    width,
                    height,
                    fps: vec![30.0],
                })
                .collect(),
            stepwise: None,
        }
    }

    #[test]
    fn the_requested_size_wins_then_the_nearest() {
        let formats = [
            format("YUYV", &[(640, 480), (1280, 720)]),
            format("MJPG", &[(1280, 720), (1920, 1080)]),
        ];
        let auto = [Kind::Mjpeg, Kind::Yuyv];
        // MJPEG is preferred, but only where it has the size.
        assert_eq!(
            choose(&formats, &auto, 640, 480),
            Some((Kind::Yuyv, 640, 480))
        );
        assert_eq!(
            choose(&formats, &auto, 1280, 720),
            Some((Kind::Mjpeg, 1280, 720))
        );
        // No format has 800x600: the first wanted format's nearest size.
        assert_eq!(
            choose(&formats, &auto, 800, 600),
            Some((Kind::Mjpeg, 1280, 720))
        );
        assert_eq!(
            choose(&formats, &[Kind::Yuyv], 800, 600),
            Some((Kind::Yuyv, 640, 480))
        );
        assert_eq!(
            choose(&[format("YUYV", &[(640, 480)])], &[Kind::Mjpeg], 640, 480),
            None
        );
    }

    #[test]
    fn stepwise_ranges_accept_sizes_on_their_grid() {
        let r = SizeRange {
            min_width: 32,
            max_width: 3280,
            step_width: 2,
            min_height: 32,
            max_height: 2464,
            step_height: 2,
        };
        assert!(r.contains(640, 480) && r.contains(32, 32) && r.contains(3280, 2464));
        assert!(!r.contains(641, 480) && !r.contains(16, 480) && !r.contains(640, 4000));
        let f = FormatInfo {
            fourcc: "YUYV".into(),
            description: String::new(),
            sizes: vec![],
            stepwise: Some(r),
        };
        assert!(f.offers(1280, 720));
    }

    #[test]
    fn limited_range_is_expanded() {
        let data = [16, 128, 235, 240, 126, 16, 125, 128];
        let pic = split_yuyv(&data, 4, 1, 8, true).unwrap();
        assert_eq!(&pic.data[..4], &[0, 255, 128, 126]);
        assert_eq!(&pic.data[4..], &[128, 1, 255, 128]);
    }
}
