//! Hostile files: crafted MJPEG files and oversized or special files in a folder source must not
//! hang or bloat the server, and `snapshot` must never replace a device node, a FIFO or a file's
//! owner and mode.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;
use std::time::Instant;

use crate::util::{camstream, files_in, jpeg_dims, wait_until, MjpegClient, Server, IO_TIMEOUT};

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
    let e = std::io::Error::last_os_error();
    // CI runs as root: there a skip would hide the test.
    assert!(!crate::util::in_ci(), "mknod {}: {e}", p.display());
    eprintln!("skipped: mknod {}: {e}", p.display());
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
    let hwm = crate::util::rss_mb(s.pid()).1;
    eprintln!("folder with a 1 GiB file: peak RSS {hwm:.1} MiB");
    assert!(hwm < 128.0, "peak RSS {hwm:.1} MiB");
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
    let hwm = crate::util::rss_mb(s.pid()).1;
    eprintln!("{} MiB MJPEG file: peak RSS {hwm:.1} MiB", len >> 20);
    // The file once, plus the process's own few MiB; twice the file is the copy we avoid.
    let file_mib = (len >> 20) as f64;
    assert!(hwm < file_mib * 5.0 / 4.0, "peak RSS {hwm:.1} MiB");
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

// ---- snapshot destinations (issue 9, break 6) ----

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn snapshot_to(out: &Path, extra: &[&str]) -> Output {
    camstream()
        .args(["snapshot", "--source", "pattern", "--size", "64x48"])
        .args(extra)
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn snapshot_writes_into_a_fifo_in_place() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    mkfifo(&fifo);
    // Our end is open first (non-blocking), so the writer does not wait for a reader.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let o = snapshot_to(&fifo, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    let mut got = Vec::new();
    let _ = reader.read_to_end(&mut got); // the writer has closed: all of it, then EOF
    assert_eq!(jpeg_dims(&got), (64, 48));
    assert_eq!(files_in(dir.path()), ["pipe"]);
}

#[test]
fn snapshot_refuses_device_nodes_and_sockets_and_leaves_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    let mut cases = vec![("sock", "a socket")];
    // /dev/null and /dev/full's numbers, and a loop block device; never the real nodes.
    if mknod(&d.join("null"), libc::S_IFCHR, 1, 3) {
        cases.push(("null", "a character device"));
    }
    if mknod(&d.join("full"), libc::S_IFCHR, 1, 7) {
        cases.push(("full", "a character device"));
    }
    if mknod(&d.join("blk"), libc::S_IFBLK, 7, 250) {
        cases.push(("blk", "a block device"));
    }
    let before = files_in(d);
    for (name, kind) in cases {
        let p = d.join(name);
        let rdev = std::fs::symlink_metadata(&p).unwrap().rdev();
        let o = snapshot_to(&p, &[]);
        assert_refused(&o, &format!("cannot write {}: it is {kind}", p.display()));
        let after = std::fs::symlink_metadata(&p).unwrap();
        assert!(!after.file_type().is_file(), "{name} was replaced");
        assert_eq!(after.rdev(), rdev, "{name}");
        assert_eq!(files_in(d), before, "after {name}");
    }
}

#[test]
fn snapshot_over_a_file_keeps_its_owner_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jpg");
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    let owner = if is_root() {
        std::os::unix::fs::chown(&out, Some(4321), Some(8765)).unwrap();
        (4321, 8765)
    } else {
        let m = std::fs::metadata(&out).unwrap();
        (m.uid(), m.gid())
    };
    let o = snapshot_to(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = std::fs::metadata(&out).unwrap();
    assert_eq!(jpeg_dims(&std::fs::read(&out).unwrap()), (64, 48));
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!((m.uid(), m.gid()), owner);
    assert_eq!(files_in(dir.path()), ["x.jpg"]);
}

#[test]
fn snapshot_through_a_symlink_replaces_its_target_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("real")).unwrap();
    let target = d.join("real/x.jpg");
    std::fs::write(&target, b"old").unwrap();
    std::os::unix::fs::symlink("real/x.jpg", d.join("link.jpg")).unwrap();
    // A link to a file that does not exist yet: the file is created where the link points.
    std::os::unix::fs::symlink("real/new.jpg", d.join("dangling.jpg")).unwrap();
    for (link, target) in [("link.jpg", "x.jpg"), ("dangling.jpg", "new.jpg")] {
        let o = snapshot_to(&d.join(link), &[]);
        assert!(o.status.success(), "{link}: {}", stderr(&o));
        let lm = std::fs::symlink_metadata(d.join(link)).unwrap();
        assert!(lm.file_type().is_symlink(), "{link} is still a link");
        let written = std::fs::read(d.join("real").join(target)).unwrap();
        assert_eq!(jpeg_dims(&written), (64, 48), "{target}");
    }
    assert_eq!(files_in(d), ["dangling.jpg", "link.jpg", "real"]);
    assert_eq!(files_in(&d.join("real")), ["new.jpg", "x.jpg"]);

    // A link to a device node is refused like the node itself.
    if mknod(&d.join("null"), libc::S_IFCHR, 1, 3) {
        std::os::unix::fs::symlink("null", d.join("to-null.jpg")).unwrap();
        let o = snapshot_to(&d.join("to-null.jpg"), &[]);
        assert_refused(&o, "a character device");
        assert!(std::fs::symlink_metadata(d.join("null"))
            .unwrap()
            .file_type()
            .is_char_device());
    }
}

/// `snapshot` on a 4 KiB tmpfs, in a private mount namespace (root only): ENOSPC must name the
/// file the user asked for, not the temporary file, and leave nothing behind.
#[test]
fn a_full_disk_is_reported_for_the_target_not_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = mnt.join("x.jpg");
    let script = format!(
        "mount -t tmpfs -o size=4k tmpfs {m} || exit 1; echo mounted; \"$0\" snapshot --source pattern \
         --size 640x480 {o}; rc=$?; ls -A {m} >&2; exit $rc",
        m = mnt.display(),
        o = out.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_camstream"))
        .output()
        .unwrap();
    if !String::from_utf8_lossy(&o.stdout).contains("mounted") {
        assert!(
            !crate::util::in_ci(),
            "cannot mount a tmpfs: {}",
            stderr(&o)
        );
        eprintln!("skipped: cannot mount a tmpfs here: {}", stderr(&o));
        return;
    }
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot write {}: no space left on device",
            out.display()
        )),
        "{err}"
    );
    // The temporary file is named ".x.jpg.XXXXXX.tmp".
    assert!(!err.contains(".x.jpg."), "names the temporary file: {err}");
    // `ls -A` of the tmpfs printed nothing: no temporary file left.
    assert_eq!(err.lines().count(), 1, "{err}");
}
