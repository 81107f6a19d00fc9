//! JPEG encoding with libjpeg-turbo (SIMD), straight from planar YUV so no RGB detour is paid.

use std::sync::Arc;

use anyhow::{Context, Result};
use turbojpeg::{Compressor, Subsamp, YuvImage};

use crate::frame::{Chroma, Planar};

/// A reusable encoder at one quality; keeps its libjpeg-turbo handle and output buffer.
pub struct Encoder {
    compressor: Compressor,
    out: Vec<u8>,
}

impl Encoder {
    pub fn new(quality: u8) -> Result<Encoder> {
        let mut compressor = Compressor::new().context("cannot start the JPEG encoder")?;
        compressor
            .set_quality(i32::from(quality))
            .with_context(|| format!("JPEG quality {quality} rejected"))?;
        Ok(Encoder {
            compressor,
            out: Vec::new(),
        })
    }

    /// Encodes a planar picture; the JPEG keeps the picture's chroma subsampling. The bytes come
    /// back ready to share between viewers (one copy out of the reused output buffer).
    pub fn encode(&mut self, pic: &Planar) -> Result<Arc<[u8]>> {
        let subsamp = match pic.chroma {
            Chroma::Yuv420 => Subsamp::Sub2x2,
            Chroma::Yuv422 => Subsamp::Sub2x1,
        };
        let image = YuvImage {
            pixels: pic.data.as_slice(),
            width: pic.width,
            align: 1,
            height: pic.height,
            subsamp,
        };
        let bound = turbojpeg::compressed_buf_len(pic.width, pic.height, subsamp)
            .context("frame too large to encode")?;
        // The buffer is sized once for the worst case and reused, so encoding allocates only
        // the returned copy of the (much smaller) JPEG.
        if self.out.len() < bound {
            self.out.resize(bound, 0);
        }
        let n = self
            .compressor
            .compress_yuv_to_slice(image, &mut self.out)
            .with_context(|| format!("cannot encode a {}x{} frame", pic.width, pic.height))?;
        Ok(Arc::from(&self.out[..n]))
    }
}

/// Reads a JPEG's dimensions from its header, checking that it is one libjpeg-turbo accepts.
pub fn jpeg_size(data: &[u8]) -> Result<(u32, u32)> {
    let h = turbojpeg::read_header(data).context("not a valid JPEG")?;
    Ok((h.width as u32, h.height as u32))
}

/// Decodes a JPEG fully to 8-bit greyscale; used to reject truncated or corrupt files.
pub fn decode_gray(data: &[u8]) -> Result<turbojpeg::Image<Vec<u8>>> {
    turbojpeg::decompress(data, turbojpeg::PixelFormat::GRAY).context("not a decodable JPEG")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_planar_yuv_to_a_jpeg_of_the_same_size() {
        for chroma in [Chroma::Yuv420, Chroma::Yuv422] {
            let pic = Planar::filled(64, 48, chroma, [200, 90, 160]);
            let jpeg = Encoder::new(80).unwrap().encode(&pic).unwrap();
            assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
            assert_eq!(jpeg_size(&jpeg).unwrap(), (64, 48));
            let gray = decode_gray(&jpeg).unwrap();
            let mean = gray.pixels.iter().map(|&p| u32::from(p)).sum::<u32>() / (64 * 48);
            assert!((190..=210).contains(&mean), "{mean}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(jpeg_size(b"not a jpeg").is_err());
        assert!(decode_gray(&[0xFF, 0xD8, 0xFF]).is_err());
    }
}
