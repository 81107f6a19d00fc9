//! Fuzzes the MJPEG splitter that the file source runs on whatever file it is given: any bytes,
//! through `Splitter`. Every range must be one whole JPEG, in order, and the work must stay
//! linear in the input (a quadratic walk hung the capture thread once, issue 9). Run with
//! `cargo +nightly fuzz run split fuzz/corpus/split fuzz/seeds/split` from the repository root;
//! the seeds are a few tiny JPEGs and MJPEG snippets.

#![no_main]

use camstream::source::file::{jpeg_len, Splitter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut split = Splitter::new(data);
    let mut after = 0;
    for r in split.by_ref() {
        assert!(after <= r.start && r.end <= data.len(), "{r:?} after {after}");
        let jpeg = &data[r.clone()];
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]));
        assert_eq!(jpeg_len(jpeg), Some(jpeg.len()));
        after = r.end;
    }
    assert!(split.bad() as usize <= data.len());
    assert!(
        split.work() <= 8 * data.len() + 16,
        "{} bytes of work for {} bytes",
        split.work(),
        data.len()
    );
});
