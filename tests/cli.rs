//! Tests of `camstream list` and `camstream snapshot`: files written, bytes on stdout, exit
//! codes and error texts, and that nothing half-written is ever left behind.

use std::path::Path;
use std::process::Output;

use crate::util::{camstream, files_in, jpeg_dims, jpeg_not_uniform};

fn run(args: &[&str]) -> Output {
    camstream().args(args).output().expect("run camstream")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit `code`, a one-line `camstream: error:` (or clap) message containing `needle`.
fn assert_fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    if code == 1 {
        assert_eq!(err.lines().count(), 1, "one line: {err:?}");
        assert!(err.starts_with("camstream: error: "), "{err:?}");
    }
}

/// Writes an MJPEG file of `n` frames of `size` with ffmpeg's test source.
fn mjpeg_file(dir: &Path, size: &str, n: u32) -> std::path::PathBuf {
    let out = dir.join("clip.mjpeg");
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=10"))
        .args(["-frames:v", &n.to_string(), "-f", "mjpeg"])
        .arg(&out)
        .status()
        .expect("ffmpeg is installed (.ci/run installs it)");
    assert!(st.success());
    out
}

#[test]
fn snapshot_of_the_pattern_is_a_jpeg_of_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    for (size, w, h) in [
        ("640x480", 640, 480),
        ("1280x720", 1280, 720),
        ("320x240", 320, 240),
    ] {
        let out = dir.path().join(format!("{size}.jpg"));
        let o = run(&[
            "snapshot",
            "--source",
            "pattern",
            "--size",
            size,
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let data = std::fs::read(&out).unwrap();
        assert_eq!(jpeg_dims(&data), (w, h));
        assert!(jpeg_not_uniform(&data));
    }
}

#[test]
fn two_pattern_snapshots_differ() {
    let a = run(&["snapshot", "--source", "pattern", "-"]);
    // The box moves with the wall clock and the clock shows milliseconds: wait for it to change.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let b = run(&["snapshot", "--source", "pattern", "-"]);
    assert!(a.status.success() && b.status.success());
    assert_eq!(jpeg_dims(&a.stdout), (640, 480));
    assert_ne!(a.stdout, b.stdout);
}

#[test]
fn snapshot_to_stdout_writes_only_the_jpeg() {
    let o = run(&[
        "snapshot",
        "--source",
        "pattern",
        "--size",
        "160x120",
        "--quality",
        "50",
        "-",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(&o.stdout[..2], &[0xFF, 0xD8]);
    assert_eq!(&o.stdout[o.stdout.len() - 2..], &[0xFF, 0xD9]);
    assert_eq!(jpeg_dims(&o.stdout), (160, 120));
    assert!(o.stderr.is_empty());
}

#[test]
fn snapshot_from_an_mjpeg_file_passes_the_frame_through() {
    let dir = tempfile::tempdir().unwrap();
    let clip = mjpeg_file(dir.path(), "320x240", 3);
    let out = dir.path().join("out.jpg");
    let src = format!("file:{}", clip.display());
    let o = run(&["snapshot", "--source", &src, out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let data = std::fs::read(&out).unwrap();
    assert_eq!(jpeg_dims(&data), (320, 240));
    assert!(jpeg_not_uniform(&data));
    // Passed through untouched: the bytes are the clip's first frame.
    let clip_bytes = std::fs::read(&clip).unwrap();
    assert_eq!(&clip_bytes[..data.len()], &data[..]);
}

#[test]
fn snapshot_from_a_folder_skips_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    std::fs::write(frames.join("a.jpg"), b"not a jpeg at all").unwrap();
    let good = run(&["snapshot", "--source", "pattern", "--size", "64x48", "-"]).stdout;
    std::fs::write(frames.join("b.jpg"), &good[..good.len() / 2]).unwrap(); // truncated
    std::fs::write(frames.join("c.JPG"), &good).unwrap();
    let src = format!("file:{}", frames.display());
    let o = run(&["snapshot", "--source", &src, "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, good);
}

#[test]
fn snapshot_bad_inputs_fail_with_a_message_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("empty.mjpeg"), b"").unwrap();
    std::fs::write(d.join("junk.mjpeg"), vec![0x55; 4096]).unwrap();
    let missing_dir = p("nope/out.jpg");
    let is_dir = p("sub");
    let missing_src = format!("file:{}", p("missing.mjpeg"));
    let empty_src = format!("file:{}", p("empty.mjpeg"));
    let junk_src = format!("file:{}", p("junk.mjpeg"));
    let out = p("out.jpg");
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["--source", "pattern", &missing_dir],
            1,
            format!("folder {} does not exist", p("nope")),
        ),
        (
            vec!["--source", "pattern", &is_dir],
            1,
            format!("cannot write {is_dir}: it is a directory"),
        ),
        (vec!["--source", &missing_src, &out], 1, p("missing.mjpeg")),
        (
            vec!["--source", &empty_src, &out],
            1,
            format!("{} holds no valid JPEG", p("empty.mjpeg")),
        ),
        (
            vec!["--source", &junk_src, &out],
            1,
            format!("{} holds no valid JPEG", p("junk.mjpeg")),
        ),
        (
            vec!["--source", "webcam", &out],
            2,
            "unknown source 'webcam'".into(),
        ),
        (
            vec!["--source", "camera:x", &out],
            2,
            "'x' is neither a camera number".into(),
        ),
        (
            vec!["--source", "pattern", "--size", "640", &out],
            2,
            "'640' is not a size".into(),
        ),
        (
            vec!["--source", "pattern", "--size", "99999x480", &out],
            2,
            "width 99999".into(),
        ),
        (
            vec!["--source", "pattern", "--quality", "0", &out],
            2,
            "--quality".into(),
        ),
        (
            vec!["--source", "pattern", "--quality", "101", &out],
            2,
            "--quality".into(),
        ),
        (
            vec!["--source", "pattern", "--fps", "0", &out],
            2,
            "--fps".into(),
        ),
        (
            vec!["--source", "pattern", "--timeout", "soon", &out],
            2,
            "'soon' is not a duration".into(),
        ),
        (
            vec!["--source", "camera:/dev/video99", &out],
            1,
            "no camera at /dev/video99".into(),
        ),
        (
            vec!["--source", "camera:57", &out],
            1,
            "no camera at /dev/video57".into(),
        ),
    ];
    for (args, code, needle) in cases {
        let mut all = vec!["snapshot"];
        all.extend(args.iter().copied());
        let o = run(&all);
        assert_fails(&o, code, &needle);
        assert_eq!(
            files_in(d),
            ["empty.mjpeg", "junk.mjpeg", "sub"],
            "after {all:?}"
        );
    }
}

#[test]
fn snapshot_without_a_camera_suggests_the_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jpg");
    let o = run(&["snapshot", out.to_str().unwrap()]);
    if machine_has_a_camera() {
        return; // not this test's case
    }
    assert_fails(&o, 1, "--source pattern");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn snapshot_into_a_read_only_folder_fails_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = ro.join("x.jpg");
    let mut cmd = camstream();
    cmd.args(["snapshot", "--source", "pattern", out.to_str().unwrap()]);
    // root ignores permission bits (CI runs as root): run the binary as nobody then.
    // SAFETY: geteuid/setuid are async-signal-safe and run in the forked child only.
    unsafe {
        if geteuid() == 0 {
            cmd.pre_exec(|| {
                if setuid(65534) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let o = match cmd.output() {
        Ok(o) => o,
        // The checkout lies in a folder that nobody may not enter: nothing to test as nobody.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!(
                "skipped: user nobody cannot run {}: {e}",
                env!("CARGO_BIN_EXE_camstream")
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_fails(
        &o,
        1,
        &format!("cannot write {}: permission denied", out.display()),
    );
    assert!(files_in(&ro).is_empty());
}

extern "C" {
    fn geteuid() -> u32;
    fn setuid(uid: u32) -> i32;
}

#[test]
fn snapshot_replaces_an_existing_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.jpg");
    std::fs::write(&out, b"old").unwrap();
    let o = run(&[
        "snapshot",
        "--source",
        "pattern",
        "--size",
        "64x48",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(jpeg_dims(&std::fs::read(&out).unwrap()), (64, 48));
    assert_eq!(files_in(dir.path()), ["x.jpg"]);
}

#[test]
fn list_without_cameras_says_so_and_exits_0() {
    if machine_has_a_camera() {
        return; // not this test's case
    }
    let o = run(&["list"]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("no cameras found"), "{}", stderr(&o));
    let o = run(&["list", "--json"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(run(&["snapshot"]).status.code(), Some(2));
    let o = run(&["serve", "--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("--max-clients"));
    let o = run(&["--version"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("camstream "));
}

#[test]
fn flags_can_come_from_the_environment() {
    let o = camstream()
        .args(["snapshot", "-"])
        .env("CAMSTREAM_SOURCE", "pattern")
        .env("CAMSTREAM_SIZE", "96x64")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(jpeg_dims(&o.stdout), (96, 64));
}

/// Whether this machine has a real camera (fake-camera nodes other tests create have no driver
/// behind them and are not listed).
fn machine_has_a_camera() -> bool {
    let o = run(&["list", "--json"]);
    String::from_utf8_lossy(&o.stdout).trim() != "[]"
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two new descriptors, which are owned from here on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end); // the reader is gone before camstream writes: `camstream list | head -0`
    for args in [
        &["list", "--json"][..],
        &["snapshot", "--source", "pattern", "-"][..],
    ] {
        let o = camstream()
            .args(args)
            .stdout(std::process::Stdio::from(write_end.try_clone().unwrap()))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
    }
}
