//! Hostile files: crafted MJPEG files and oversized or special files in a folder source must not
//! hang or bloat the server, and `snapshot` must never replace a device node, a FIFO or a file's
//! owner and mode.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Output;
use std::time::Instant;

use crate::util::{camstream, jpeg_dims, wait_until, MjpegClient, Server, IO_TIMEOUT};

/// A small JPEG from the pattern source.
fn pattern_jpeg(size: &str) -> Vec<u8> {
    let o = camstream()
        .args(["snapshot", "--source", "pattern", "--size", size, "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// An SOI, then APP0 segments whose 2-byte payload is another SOI: a splitter that restarts
/// just past each failed image walks all the segments again from every one of those SOIs.
fn chained_app0(bytes: usize) -> Vec<u8> {
    let mut d = vec![0xFF, 0xD8];
    while d.len() + 6 <= bytes {
        d.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD8]);
    }
    d
}

/// Peak resident memory of a process in KiB, from /proc.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn mkfifo(p: &Path) {
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c_path(p).as_ptr(), 0o644) },
        0,
        "mkfifo"
    );
}

/// Makes a device node; false when this user may not (not root), so the test is skipped.
fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) -> bool {
    let dev = libc::makedev(major, minor);
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mknod(c_path(p).as_ptr(), kind | 0o644, dev) } == 0 {
        return true;
    }
    eprintln!(
        "skipped: mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    false
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit 1 with one `camstream: error:` line that contains `needle`.
fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("camstream: error: "), "{err:?}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
}

// ---- crafted MJPEG files (issue 9, break 4) ----

#[test]
fn a_crafted_mjpeg_of_chained_segments_is_split_in_linear_time() {
    let good = pattern_jpeg("64x48");
    let mut data = chained_app0(6 << 20);
    data.extend_from_slice(&good);
    let len = data.len();
    // On a thread, so that a quadratic splitter fails this test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let (ranges, bad) = camstream::source::file::split_jpegs(&data);
        let _ = tx.send((ranges, bad, t.elapsed()));
    });
    let (ranges, bad, took) = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("splitting 6 MB of chained APP0 segments did not finish");
    eprintln!("split {len} bytes of chained APP0 segments in {took:?}");
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0], len - good.len()..len, "the good JPEG at the end");
    assert!(bad >= 1);
}

#[test]
fn serving_a_crafted_mjpeg_shows_its_good_frames_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let good = pattern_jpeg("64x48");
    let mut data = chained_app0(6 << 20);
    data.extend_from_slice(&good);
    data.extend_from_slice(&good);
    let clip = dir.path().join("crafted.mjpeg");
    std::fs::write(&clip, &data).unwrap();
    let s = Server::start(&["--source", &format!("file:{}", clip.display())]);
    wait_until("/healthz 200", || s.get("/healthz").status == 200);
    assert_eq!(s.get("/snapshot").body, good);
    assert!(s.metric("camstream_source_bad_frames_total") >= 1.0);
}

/// A file of `len` bytes (sparse: no disk used) with a good JPEG at the start and the end.
fn sparse_mjpeg(path: &Path, len: u64, jpeg: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(jpeg).unwrap();
    f.seek(SeekFrom::Start(len - jpeg.len() as u64)).unwrap();
    f.write_all(jpeg).unwrap();
    assert_eq!(f.metadata().unwrap().len(), len);
}

#[test]
fn opening_a_file_source_counts_against_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("big.mjpeg");
    sparse_mjpeg(&clip, 64 << 20, &pattern_jpeg("64x48"));
    // No machine reads 64 MiB in 10 µs: the open must fail and show NO SIGNAL.
    let s = Server::start(&[
        "--source",
        &format!("file:{}", clip.display()),
        "--timeout",
        "0.01ms",
    ]);
    wait_until("the open to fail", || {
        s.metric("camstream_source_errors_total") >= 1.0
    });
    let health = s.get("/healthz");
    assert_eq!(health.status, 503);
    let state = s.get("/state").text();
    assert!(state.contains("--timeout"), "{state}");
    assert!(state.contains("big.mjpeg"), "{state}");
    assert_eq!(s.metric("camstream_source_up"), 0.0);
    // The viewer gets the NO SIGNAL placeholder at the configured size.
    let snap = s.get("/snapshot");
    assert_eq!(snap.status, 200);
    assert_eq!(jpeg_dims(&snap.body), (640, 480));
}

// ---- oversized and special files (issue 9, break 5) ----

/// Reads stream parts until `n` parts arrived; returns their bodies.
fn parts(s: &Server, n: usize) -> Vec<Vec<u8>> {
    let mut c = MjpegClient::open(s.addr, "/stream", 1).expect("stream");
    (0..n)
        .map(|i| c.next_part().unwrap_or_else(|| panic!("part {i}")).body)
        .collect()
}

#[test]
fn a_folder_skips_and_counts_a_file_too_big_to_be_a_frame() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, c) = (pattern_jpeg("64x48"), pattern_jpeg("80x64"));
    std::fs::write(d.join("a.jpg"), &a).unwrap();
    // 1 GiB, sparse: costs no disk, but a source that reads it whole costs 1 GiB of memory.
    let big = std::fs::File::create(d.join("b.jpg")).unwrap();
    big.set_len(1 << 30).unwrap();
    std::fs::write(d.join("c.jpg"), &c).unwrap();
    let s = Server::start(&["--source", &format!("file:{}", d.display()), "--fps", "20"]);
    for (i, p) in parts(&s, 8).iter().enumerate() {
        assert!(p == &a || p == &c, "part {i} is neither a.jpg nor c.jpg");
    }
    assert!(s.metric("camstream_source_bad_frames_total") >= 1.0);
    assert_eq!(s.get("/healthz").status, 200);
    let hwm = vm_hwm_kib(s.pid());
    eprintln!("folder with a 1 GiB file: peak RSS {hwm} KiB");
    assert!(hwm < 128 << 10, "peak RSS {hwm} KiB");
}

#[test]
fn a_fifo_or_a_device_in_a_folder_does_not_hang_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = pattern_jpeg("64x48");
    std::fs::write(d.join("a.jpg"), &a).unwrap();
    // Opening a FIFO for reading waits for a writer that never comes.
    mkfifo(&d.join("b.jpg"));
    // A `c 1 5` node is /dev/zero: endless bytes.
    let zero = mknod(&d.join("c.jpg"), libc::S_IFCHR, 1, 5);
    let s = Server::start(&["--source", &format!("file:{}", d.display()), "--fps", "20"]);
    for (i, p) in parts(&s, 6).iter().enumerate() {
        assert_eq!(p, &a, "part {i}");
    }
    let bad = s.metric("camstream_source_bad_frames_total");
    assert!(bad >= if zero { 2.0 } else { 1.0 }, "{bad}");
}

#[test]
fn loading_a_large_mjpeg_file_peaks_near_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("big.mjpeg");
    let len: u64 = 160 << 20;
    sparse_mjpeg(&clip, len, &pattern_jpeg("64x48"));
    let s = Server::start(&["--source", &format!("file:{}", clip.display())]);
    wait_until("/healthz 200", || s.get("/healthz").status == 200);
    let hwm = vm_hwm_kib(s.pid());
    eprintln!("{} MiB MJPEG file: peak RSS {hwm} KiB", len >> 20);
    // The file once, plus the process's own few MiB; twice the file is the copy we avoid.
    assert!(hwm < (len >> 10) * 5 / 4, "peak RSS {hwm} KiB");
}

#[test]
fn a_file_source_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("clip.mjpeg");
    mkfifo(&fifo);
    let o = camstream()
        .args([
            "snapshot",
            "--source",
            &format!("file:{}", fifo.display()),
            "-",
        ])
        .output()
        .unwrap();
    assert_refused(&o, &format!("{}: not a regular file", fifo.display()));
}
