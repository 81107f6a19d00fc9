//! Drawing on planar YUV pictures: filled rectangles and 8x8-font text, enough for the test
//! pattern and the "NO SIGNAL" placeholder.

use font8x8::legacy::BASIC_LEGACY;

use crate::frame::Planar;

/// A colour as Y, U (Cb), V (Cr), full range as JPEG (JFIF) stores it.
pub type Yuv = [u8; 3];

pub const WHITE: Yuv = rgb(255, 255, 255);
pub const BLACK: Yuv = rgb(0, 0, 0);

/// The JFIF (full-range BT.601) Y, Cb, Cr of an RGB colour.
pub const fn rgb(r: u8, g: u8, b: u8) -> Yuv {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    let y = (77 * r + 150 * g + 29 * b + 128) >> 8;
    let cb = ((-43 * r - 85 * g + 128 * b + 128) >> 8) + 128;
    let cr = ((128 * r - 107 * g - 21 * b + 128) >> 8) + 128;
    [clamp(y), clamp(cb), clamp(cr)]
}

const fn clamp(v: i32) -> u8 {
    if v < 0 {
        0
    } else if v > 255 {
        255
    } else {
        v as u8
    }
}

/// Fills the rectangle (clipped to the picture).
pub fn fill_rect(pic: &mut Planar, x: usize, y: usize, w: usize, h: usize, c: Yuv) {
    let (width, height, chroma) = (pic.width, pic.height, pic.chroma);
    let (x1, y1) = ((x + w).min(width), (y + h).min(height));
    if x >= x1 || y >= y1 {
        return;
    }
    let (cw, ch) = Planar::chroma_dims(width, height, chroma);
    let (ys, us, vs) = pic.planes_mut();
    for row in y..y1 {
        ys[row * width + x..row * width + x1].fill(c[0]);
    }
    // Chroma planes cover 2 pixels per sample horizontally and 1 or 2 rows vertically.
    let vdiv = height / ch;
    let (cx0, cx1) = (x / 2, x1.div_ceil(2).min(cw));
    for row in (y / vdiv)..y1.div_ceil(vdiv).min(ch) {
        us[row * cw + cx0..row * cw + cx1].fill(c[1]);
        vs[row * cw + cx0..row * cw + cx1].fill(c[2]);
    }
}

/// Draws `text` with its top-left corner at (x, y), each font pixel `scale` pixels wide, on a
/// background box so it stays legible on any picture. Returns the width drawn.
pub fn text(
    pic: &mut Planar,
    x: usize,
    y: usize,
    scale: usize,
    s: &str,
    fg: Yuv,
    bg: Yuv,
) -> usize {
    let cell = 8 * scale;
    let w = s.chars().count() * cell;
    fill_rect(
        pic,
        x.saturating_sub(scale),
        y.saturating_sub(scale),
        w + 2 * scale,
        cell + 2 * scale,
        bg,
    );
    for (i, ch) in s.chars().enumerate() {
        let glyph = BASIC_LEGACY
            .get(ch as usize)
            .copied()
            .unwrap_or(BASIC_LEGACY[b'?' as usize]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits & (1 << gx) != 0 {
                    fill_rect(
                        pic,
                        x + i * cell + gx * scale,
                        y + gy * scale,
                        scale,
                        scale,
                        fg,
                    );
                }
            }
        }
    }
    w
}

/// The width in pixels of `s` drawn at `scale`.
pub fn text_width(s: &str, scale: usize) -> usize {
    s.chars().count() * 8 * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Chroma;

    #[test]
    fn rectangles_are_clipped_and_colour_all_planes() {
        let mut p = Planar::filled(8, 4, Chroma::Yuv420, BLACK);
        fill_rect(&mut p, 6, 2, 10, 10, [100, 50, 60]);
        let (y, u, v) = p.planes_mut();
        assert_eq!(y[2 * 8 + 6], 100);
        assert_eq!(y[3 * 8 + 7], 100);
        assert_eq!(y[2 * 8 + 5], 0);
        assert_eq!(u[4 + 3], 50);
        assert_eq!(v[4 + 3], 60);
        assert_eq!(u[0], 128);
    }

    #[test]
    fn colours_are_full_range() {
        assert_eq!(BLACK, [0, 128, 128]);
        assert_eq!(WHITE, [255, 128, 128]);
        assert_eq!(rgb(255, 0, 0), [77, 85, 255]);
        assert_eq!(rgb(0, 0, 255), [29, 255, 107]);
    }

    #[test]
    fn text_sets_pixels() {
        let mut p = Planar::filled(64, 16, Chroma::Yuv422, BLACK);
        let w = text(&mut p, 1, 1, 1, "8", WHITE, BLACK);
        assert_eq!(w, 8);
        assert!(p.data[..64 * 16].contains(&255));
    }
}
