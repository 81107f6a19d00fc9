//! The `pattern` source: a synthetic moving test picture drawn straight into planar YUV, so it
//! needs no hardware and costs no colour conversion. Colour bars, a box whose position follows
//! the wall clock (two pictures taken at different times differ), the frame number and the time.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::draw::{self, Yuv};
use crate::frame::{Chroma, Planar, RawFrame};
use crate::settings::Size;
use crate::source::Source;

/// The seven SMPTE-style bars at 75 %: white, yellow, cyan, green, magenta, red, blue.
const BARS: [Yuv; 7] = [
    draw::rgb(191, 191, 191),
    draw::rgb(191, 191, 0),
    draw::rgb(0, 191, 191),
    draw::rgb(0, 191, 0),
    draw::rgb(191, 0, 191),
    draw::rgb(191, 0, 0),
    draw::rgb(0, 0, 191),
];

pub struct Pattern {
    size: Size,
    /// The bars, drawn once; every frame starts as a copy of it.
    background: Planar,
    frame_no: u64,
}

impl Pattern {
    pub fn new(size: Size) -> Pattern {
        let (w, h) = (size.width as usize, size.height as usize);
        let mut background = Planar::filled(w, h, Chroma::Yuv420, draw::BLACK);
        for (i, c) in BARS.iter().enumerate() {
            let x0 = i * w / BARS.len();
            let x1 = (i + 1) * w / BARS.len();
            draw::fill_rect(&mut background, x0, 0, x1 - x0, h * 2 / 3, *c);
        }
        // A grey ramp along the bottom third shows the encoder's tonal range.
        let steps = 16;
        for i in 0..steps {
            let x0 = i * w / steps;
            let x1 = (i + 1) * w / steps;
            let y = (i * 255 / (steps - 1)) as u8;
            draw::fill_rect(
                &mut background,
                x0,
                h * 2 / 3,
                x1 - x0,
                h - h * 2 / 3,
                [y, 128, 128],
            );
        }
        Pattern {
            size,
            background,
            frame_no: 0,
        }
    }

    /// Draws frame `frame_no` as it looks at time `now`.
    pub fn render(&self, frame_no: u64, now: SystemTime) -> Planar {
        let mut pic = self.background.clone();
        let (w, h) = (pic.width, pic.height);
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let ms = since.as_millis() as u64;

        // The box crosses the picture once every 4 seconds, bouncing off the edges.
        let side = (h / 5).max(4);
        let travel = (w - side) as u64;
        let phase = (ms % 4000) * 2 * travel / 4000;
        let x = if phase <= travel {
            phase
        } else {
            2 * travel - phase
        } as usize;
        draw::fill_rect(&mut pic, x, h / 3 - side / 2, side, side, draw::WHITE);

        let scale = (h / 160).max(1);
        let secs = since.as_secs();
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03} UTC",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            since.subsec_millis()
        );
        let label = format!("camstream #{frame_no}");
        let pad = 4 * scale;
        draw::text(&mut pic, pad, pad, scale, &label, draw::WHITE, draw::BLACK);
        draw::text(
            &mut pic,
            pad,
            pad + 10 * scale,
            scale,
            &clock,
            draw::WHITE,
            draw::BLACK,
        );
        pic
    }
}

impl Source for Pattern {
    fn describe(&self) -> String {
        format!("pattern {}", self.size)
    }

    fn grab(&mut self) -> Result<RawFrame> {
        let pic = self.render(self.frame_no, SystemTime::now());
        self.frame_no += 1;
        Ok(RawFrame::Yuv(pic))
    }

    fn skip(&mut self) -> Result<()> {
        self.frame_no += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn frames_move_and_are_not_uniform() {
        let p = Pattern::new(Size {
            width: 320,
            height: 240,
        });
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = p.render(0, t);
        let b = p.render(1, t + Duration::from_millis(500));
        assert_ne!(a.data, b.data);
        let y = &a.data[..320 * 240];
        assert!(y.iter().min() < y.iter().max());
        assert_eq!(a.data.len(), 320 * 240 * 3 / 2);
    }
}
