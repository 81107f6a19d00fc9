//! Frames: the raw pictures sources deliver and the encoded JPEG frames viewers share.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Chroma layout of a planar YUV picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0: chroma planes are half width and half height (what the pattern draws).
    Yuv420,
    /// 4:2:2: chroma planes are half width, full height (what YUYV cameras deliver).
    Yuv422,
}

/// A planar YUV picture (Y plane, then U, then V; rows unpadded), the encoder's input.
#[derive(Debug, Clone)]
pub struct Planar {
    pub width: usize,
    pub height: usize,
    pub chroma: Chroma,
    pub data: Vec<u8>,
}

impl Planar {
    /// A picture filled with one colour.
    pub fn filled(width: usize, height: usize, chroma: Chroma, yuv: [u8; 3]) -> Planar {
        let (cw, ch) = Self::chroma_dims(width, height, chroma);
        let mut data = vec![yuv[0]; width * height + 2 * cw * ch];
        let (_, uv) = data.split_at_mut(width * height);
        let (u, v) = uv.split_at_mut(cw * ch);
        u.fill(yuv[1]);
        v.fill(yuv[2]);
        Planar {
            width,
            height,
            chroma,
            data,
        }
    }

    /// Width and height of each chroma plane.
    pub fn chroma_dims(width: usize, height: usize, chroma: Chroma) -> (usize, usize) {
        match chroma {
            Chroma::Yuv420 => (width.div_ceil(2), height.div_ceil(2)),
            Chroma::Yuv422 => (width.div_ceil(2), height),
        }
    }

    /// The three planes, mutable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (cw, ch) = Self::chroma_dims(self.width, self.height, self.chroma);
        let (y, uv) = self.data.split_at_mut(self.width * self.height);
        let (u, v) = uv.split_at_mut(cw * ch);
        (y, u, v)
    }
}

/// What a source hands the capture loop.
#[derive(Debug)]
pub enum RawFrame {
    /// An already-compressed JPEG (an MJPEG camera or a file), passed through untouched.
    Jpeg {
        data: Arc<[u8]>,
        width: u32,
        height: u32,
        /// When the frame was captured, if the source knows better than the time it is
        /// handed over (a relay keeps its upstream's `X-Timestamp`).
        captured: Option<SystemTime>,
    },
    /// Pixels to encode.
    Yuv(Planar),
}

/// An encoded frame in the latest-frame slot, shared by every viewer.
#[derive(Debug)]
pub struct Frame {
    /// Increases by one for every frame published, placeholders included.
    pub seq: u64,
    /// When the frame was captured (Unix time), for the `X-Timestamp` part header.
    pub captured: SystemTime,
    pub width: u32,
    pub height: u32,
    /// True for the "NO SIGNAL" picture shown while the source is down.
    pub placeholder: bool,
    pub jpeg: Arc<[u8]>,
}

impl Frame {
    /// How long ago the frame was captured.
    pub fn age(&self) -> std::time::Duration {
        SystemTime::now()
            .duration_since(self.captured)
            .unwrap_or_default()
    }

    /// Capture time as Unix seconds with microseconds, e.g. `1764168000.123456`.
    pub fn timestamp(&self) -> String {
        let d = self.captured.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("{}.{:06}", d.as_secs(), d.subsec_micros())
    }
}
