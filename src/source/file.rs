//! The `file` source: replays an MJPEG file (concatenated JPEGs, as `ffmpeg -f mjpeg` writes) or
//! a folder of `.jpg` files, looped, paced by the capture loop. Frames pass through untouched;
//! bad or truncated JPEGs are skipped and counted.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::encoder::jpeg_size;
use crate::frame::RawFrame;
use crate::source::Source;

/// An MJPEG file is held in memory whole; beyond this it is refused rather than swapped.
const MAX_FILE_BYTES: u64 = 512 << 20;

enum Frames {
    /// One MJPEG file in memory and the byte ranges of its valid JPEGs.
    Mjpeg {
        data: Arc<[u8]>,
        frames: Vec<(Range<usize>, u32, u32)>,
    },
    /// A folder's JPEG files, read one at a time.
    Folder { files: Vec<PathBuf> },
}

pub struct FileSource {
    path: PathBuf,
    frames: Frames,
    next: usize,
    bad: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<FileSource> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot open file source {}", path.display()))?;
        let mut src = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read folder {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                    })
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("file source {} holds no .jpg files", path.display());
            }
            FileSource {
                path: path.into(),
                frames: Frames::Folder { files },
                next: 0,
                bad: 0,
            }
        } else {
            if meta.len() > MAX_FILE_BYTES {
                bail!(
                    "file source {} is {} MiB; at most {} MiB are supported",
                    path.display(),
                    meta.len() >> 20,
                    MAX_FILE_BYTES >> 20
                );
            }
            let data: Arc<[u8]> = std::fs::read(path)
                .with_context(|| format!("cannot read file source {}", path.display()))?
                .into();
            let (ranges, mut bad) = split_jpegs(&data);
            let mut frames = Vec::with_capacity(ranges.len());
            for r in ranges {
                match jpeg_size(&data[r.clone()]) {
                    Ok((w, h)) => frames.push((r, w, h)),
                    Err(_) => bad += 1,
                }
            }
            if frames.is_empty() {
                bail!("file source {} holds no valid JPEG frame", path.display());
            }
            FileSource {
                path: path.into(),
                frames: Frames::Mjpeg { data, frames },
                next: 0,
                bad,
            }
        };
        // A folder is checked the same way: it must yield at least one good frame now.
        if let Frames::Folder { .. } = src.frames {
            src.grab()?;
            src.next = 0;
        }
        Ok(src)
    }

    fn len(&self) -> usize {
        match &self.frames {
            Frames::Mjpeg { frames, .. } => frames.len(),
            Frames::Folder { files } => files.len(),
        }
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file {} ({} frames)", self.path.display(), self.len())
    }

    fn grab(&mut self) -> Result<RawFrame> {
        match &self.frames {
            Frames::Mjpeg { data, frames } => {
                let (r, width, height) = frames[self.next].clone();
                self.next = (self.next + 1) % frames.len();
                Ok(RawFrame::Jpeg {
                    data: Arc::from(&data[r]),
                    width,
                    height,
                    captured: None,
                })
            }
            Frames::Folder { files } => {
                // Try each file at most once per call, so a folder gone bad is an error, not a spin.
                for _ in 0..files.len() {
                    let f = &files[self.next];
                    self.next = (self.next + 1) % files.len();
                    let Ok(data) = std::fs::read(f) else {
                        self.bad += 1;
                        continue;
                    };
                    let whole = split_jpegs(&data)
                        .0
                        .first()
                        .is_some_and(|r| r.len() == data.len());
                    match jpeg_size(&data) {
                        Ok((width, height)) if whole => {
                            return Ok(RawFrame::Jpeg {
                                data: data.into(),
                                width,
                                height,
                                captured: None,
                            })
                        }
                        _ => self.bad += 1,
                    }
                }
                bail!(
                    "file source {} holds no valid JPEG file",
                    self.path.display()
                )
            }
        }
    }

    fn skip(&mut self) -> Result<()> {
        self.next = (self.next + 1) % self.len();
        Ok(())
    }

    fn bad_frames(&self) -> u64 {
        self.bad
    }
}

/// Finds complete JPEGs (SOI ... EOI, with a scan) in `data`. Returns their byte ranges and how
/// many started but were cut off or malformed.
pub fn split_jpegs(data: &[u8]) -> (Vec<Range<usize>>, u64) {
    let mut found = Vec::new();
    let mut bad = 0;
    let mut i = 0;
    while let Some(off) = find_soi(&data[i..]) {
        let start = i + off;
        match jpeg_len(&data[start..]) {
            Some(len) => {
                found.push(start..start + len);
                i = start + len;
            }
            None => {
                bad += 1;
                i = start + 2;
            }
        }
    }
    (found, bad)
}

fn find_soi(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF])
}

/// The length of the JPEG at the start of `d` up to and including its EOI marker, walking the
/// marker segments and skipping entropy-coded data; `None` if it is cut off or malformed.
pub fn jpeg_len(d: &[u8]) -> Option<usize> {
    let mut pos = 2; // past SOI
    let mut saw_scan = false;
    loop {
        if *d.get(pos)? != 0xFF {
            return None;
        }
        while *d.get(pos + 1)? == 0xFF {
            pos += 1; // fill bytes
        }
        let marker = d[pos + 1];
        pos += 2;
        match marker {
            0xD9 => return saw_scan.then_some(pos),
            0xD8 => return None, // a new image began: this one was truncated
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*d.get(pos)?, *d.get(pos + 1)?]));
        if len < 2 {
            return None;
        }
        pos += len;
        if marker == 0xDA {
            saw_scan = true;
            // Entropy-coded data runs to the next marker that is not a stuffed 0x00 or a restart.
            loop {
                let b = *d.get(pos)?;
                if b == 0xFF {
                    let n = *d.get(pos + 1)?;
                    if n != 0x00 && !(0xD0..=0xD7).contains(&n) && n != 0xFF {
                        break;
                    }
                    pos += if n == 0xFF { 1 } else { 2 };
                } else {
                    pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Encoder;
    use crate::frame::{Chroma, Planar};

    fn jpeg(luma: u8) -> Vec<u8> {
        Encoder::new(80)
            .unwrap()
            .encode(&Planar::filled(32, 16, Chroma::Yuv420, [luma, 128, 128]))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn splits_concatenated_jpegs_and_counts_truncated_ones() {
        let (a, b, c) = (jpeg(50), jpeg(120), jpeg(200));
        let mut data = Vec::new();
        data.extend_from_slice(&a);
        data.extend_from_slice(&b[..b.len() / 2]); // cut off
        data.extend_from_slice(&c);
        data.extend_from_slice(b"trailing junk");
        let (ranges, bad) = split_jpegs(&data);
        assert_eq!(bad, 1);
        assert_eq!(ranges.len(), 2);
        assert_eq!(&data[ranges[0].clone()], &a[..]);
        assert_eq!(&data[ranges[1].clone()], &c[..]);
    }

    #[test]
    fn a_jpeg_without_its_end_marker_is_not_whole() {
        let a = jpeg(80);
        assert_eq!(jpeg_len(&a), Some(a.len()));
        assert_eq!(jpeg_len(&a[..a.len() - 1]), None);
        assert_eq!(jpeg_len(&a[..10]), None);
    }
}
