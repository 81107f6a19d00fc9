//! The real camera path (nokhwa enumeration, v4l streaming, MJPEG passthrough, YUYV encoding,
//! unplug and stall handling) tested through a fake V4L2 camera: `tests/fakecam/*.c`, an
//! LD_PRELOAD library built here with the system C compiler. It needs `/dev/videoN` nodes for
//! enumeration, made with mknod (root; CI runs as root) and removed again by each test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{camstream, jpeg_dims, jpeg_not_uniform, wait_until, MjpegClient, Server};

/// The fake camera's sources in tests/fakecam (see fakecam.h for what each holds).
const FAKECAM_SOURCES: [&str; 5] = ["state.c", "jpeg.c", "scene.c", "v4l2.c", "interpose.c"];

/// Builds libfakecam.so once per test run.
pub(crate) fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakecam");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libfakecam.so");
        // One invocation for all the files (they share fakecam.h), as the README shows.
        let st = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args([
                "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
            ])
            .arg(&out)
            .args(FAKECAM_SOURCES.map(|f| dir.join(f)))
            .args(["-ldl", "-lm", "-pthread"])
            .status()
            .expect("a C compiler (cc) to build the fake camera");
        assert!(st.success(), "building {} failed", dir.display());
        out
    })
}

/// Fake device nodes for one test; removed on drop. Each test uses its own numbers.
pub(crate) struct Nodes(Vec<PathBuf>);

impl Nodes {
    /// Creates /dev/videoN for each N, or returns None (with a note) where that is impossible
    /// outside CI. In CI a missing capability fails the test.
    pub(crate) fn make(nums: &[u32]) -> Option<Nodes> {
        let mut made = Vec::new();
        for n in nums {
            let path = PathBuf::from(format!("/dev/video{n}"));
            let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            // SAFETY: mknod with a valid C string; makedev(81, n) is the V4L major.
            let rc =
                unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o660, libc::makedev(81, *n)) };
            if rc != 0 && !path.exists() {
                let e = std::io::Error::last_os_error();
                if crate::util::in_ci() {
                    panic!(
                        "cannot create {}: {e} (the fake camera tests need root)",
                        path.display()
                    );
                }
                eprintln!("skipped: cannot create {}: {e}", path.display());
                return None;
            }
            made.push(path);
        }
        Some(Nodes(made))
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// camstream with the fake camera preloaded and configured by `env`.
pub(crate) fn cam_cmd(env: &[(&str, &str)]) -> Command {
    let mut cmd = camstream();
    cmd.env("LD_PRELOAD", library());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    cam_cmd(env).args(args).output().unwrap()
}

/// The frame number the fake camera wrote into an MJPEG frame's COM segment, if any.
fn com_frame_number(jpeg: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(&jpeg[..jpeg.len().min(200)]).into_owned();
    let rest = text.split("fakecam frame=").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The frame number from the picture itself (lines 16..32 hold 32 one-bit cells), for frames
/// camstream encoded from YUYV.
fn pixel_frame_number(jpeg: &[u8]) -> u64 {
    let img = camstream::encoder::decode_gray(jpeg).unwrap();
    let cell = img.width / 32;
    (0..32).fold(0u64, |n, bit| {
        let px = img.pixels[24 * img.pitch + bit * cell + cell / 2];
        n | (u64::from(px > 128) << bit)
    })
}

#[test]
fn list_shows_the_fake_cameras_and_leaves_out_the_metadata_node() {
    let Some(_nodes) = Nodes::make(&[60, 61, 62]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video60,/dev/video62"),
        ("FAKECAM_META", "/dev/video61"),
        ("FAKECAM_NAME", "Test Cam"),
    ];
    let o = run(&env, &["list"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("camera:60  /dev/video60  Test Cam"), "{text}");
    assert!(text.contains("camera:62  /dev/video62"), "{text}");
    assert!(
        !text.contains("video61"),
        "the metadata node is listed: {text}"
    );
    assert!(
        text.contains("driver: fakecam (platform:fakecam-60)"),
        "{text}"
    );
    assert!(text.contains("MJPG") && text.contains("YUYV"), "{text}");
    assert!(
        text.contains(" 640x480   30 fps") && text.contains("1280x720   30 fps"),
        "{text}"
    );

    let o = run(&env, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cams = v.as_array().unwrap();
    assert_eq!(cams.len(), 2, "{v}");
    assert_eq!(cams[0]["path"], "/dev/video60");
    assert_eq!(cams[0]["index"], 60);
    assert_eq!(cams[0]["name"], "Test Cam");
    let mjpg = cams[0]["formats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fourcc"] == "MJPG")
        .unwrap();
    let sizes: Vec<(u64, u64, f64)> = mjpg["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["width"].as_u64().unwrap(),
                s["height"].as_u64().unwrap(),
                s["fps"][0].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sizes, [(640, 480, 30.0), (1280, 720, 30.0)]);
}

#[test]
fn mjpeg_snapshots_pass_the_camera_frame_through_trimmed() {
    let Some(_nodes) = Nodes::make(&[63]) else {
        return;
    };
    let env = [("FAKECAM_DEVICES", "/dev/video63")];
    let o = run(
        &env,
        &[
            "snapshot",
            "--source",
            "camera:63",
            "--format",
            "mjpeg",
            "--skip",
            "5",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let jpeg = o.stdout;
    // The camera's own bytes: its COM marker survives, and nothing follows the end marker
    // (the driver's buffer is 614400 bytes of which the JPEG uses a fraction).
    let n =
        com_frame_number(&jpeg).expect("the camera's COM marker: passed through, not re-encoded");
    assert!(n >= 6, "the 5 warm-up frames were not skipped: frame {n}");
    assert!(
        jpeg.ends_with(&[0xFF, 0xD9]) && jpeg.len() < 614_400 / 2,
        "{} bytes",
        jpeg.len()
    );
    assert_eq!(jpeg_dims(&jpeg), (640, 480));
    assert!(jpeg_not_uniform(&jpeg));
    // "auto" picks MJPEG too, at another size.
    let o = run(
        &env,
        &[
            "snapshot",
            "--source",
            "camera:/dev/video63",
            "--size",
            "1280x720",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(com_frame_number(&o.stdout).is_some());
    assert_eq!(jpeg_dims(&o.stdout), (1280, 720));
}

#[test]
fn yuyv_snapshots_are_encoded_by_camstream() {
    let Some(_nodes) = Nodes::make(&[64]) else {
        return;
    };
    let env = [("FAKECAM_DEVICES", "/dev/video64")];
    let o = run(
        &env,
        &[
            "snapshot",
            "--source",
            "camera:/dev/video64",
            "--format",
            "yuyv",
            "--size",
            "1280x720",
            "--quality",
            "90",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        com_frame_number(&o.stdout).is_none(),
        "a YUYV frame must be encoded by camstream"
    );
    assert_eq!(jpeg_dims(&o.stdout), (1280, 720));
    assert!(jpeg_not_uniform(&o.stdout));
    let n = pixel_frame_number(&o.stdout);
    assert!((6..1000).contains(&n), "frame number from the picture: {n}");
}

#[test]
fn camera_errors_name_the_camera() {
    let Some(_nodes) = Nodes::make(&[65]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video65"),
        ("FAKECAM_FORMATS", "YUYV:640x480"),
    ];
    let o = run(
        &env,
        &[
            "snapshot",
            "--source",
            "camera:65",
            "--format",
            "mjpeg",
            "-",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("camera /dev/video65 offers no MJPEG at 640x480 (offers: YUYV 640x480)"),
        "{err}"
    );
    let o = run(&env, &["snapshot", "--source", "camera:66", "-"]);
    let err = String::from_utf8_lossy(&o.stderr);
    // Other tests' fake nodes may be listed too; this one's must be.
    assert!(
        err.contains("no camera at /dev/video66 (found: ") && err.contains("/dev/video65"),
        "{err}"
    );
}

#[test]
fn a_stalled_camera_does_not_hang_snapshot() {
    let Some(_nodes) = Nodes::make(&[67]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video67"),
        ("FAKECAM_STALL_AFTER", "2"),
    ];
    let t = Instant::now();
    let o = run(
        &env,
        &[
            "snapshot",
            "--source",
            "camera:67",
            "--timeout",
            "1s",
            "--skip",
            "5",
            "-",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("camera /dev/video67 delivered no frame within 1s"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn serve_streams_the_camera_to_ffmpeg() {
    let Some(_nodes) = Nodes::make(&[68]) else {
        return;
    };
    let srv = Server::start_with(
        cam_cmd(&[("FAKECAM_DEVICES", "/dev/video68")]),
        &["--source", "camera:68"],
    );
    let url = format!("http://{}/stream", srv.addr);
    let o = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "mpjpeg",
            "-i",
            &url,
            "-frames:v",
            "20",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // MJPEG passed through: nothing was encoded, yet frames were sent.
    assert_eq!(srv.metric("camstream_frames_encoded_total"), 0.0);
    assert!(srv.metric("camstream_frames_sent_total") >= 20.0);
    assert_eq!(srv.metric("camstream_source_up"), 1.0);
}

fn unix_secs(ts: &str) -> f64 {
    ts.parse().unwrap()
}

#[test]
fn unplugging_shows_no_signal_and_the_same_viewer_gets_frames_again() {
    let Some(_nodes) = Nodes::make(&[69]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video69"),
        ("FAKECAM_UNPLUG_AFTER", "20"),
        ("FAKECAM_RETURN_AFTER", "3"),
    ];
    let srv = Server::start_with(
        cam_cmd(&env),
        &["--source", "camera:69", "--size", "640x480"],
    );
    let mut v = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    // Camera frames first (they carry the fake camera's COM marker).
    let mut last_cam_ts = 0.0;
    let mut placeholder_ts = None;
    for _ in 0..200 {
        let p = v
            .next_part()
            .expect("the stream continues through the unplug");
        let ts = unix_secs(&p.headers["x-timestamp"]);
        if com_frame_number(&p.body).is_some() {
            last_cam_ts = ts;
        } else if last_cam_ts > 0.0 {
            assert_eq!(jpeg_dims(&p.body), (640, 480));
            placeholder_ts = Some(ts);
            break;
        }
    }
    let ph = placeholder_ts.expect("a NO SIGNAL placeholder after the unplug");
    assert!(
        ph - last_cam_ts < 1.0,
        "placeholder {:.3} s after the last frame",
        ph - last_cam_ts
    );
    // While down: health and metrics say so (the camera returns only after 3 s).
    let h = srv.get("/healthz");
    assert_eq!(h.status, 503, "{}", h.text());
    assert!(h.text().contains("/dev/video69"), "{}", h.text());
    assert_eq!(srv.metric("camstream_source_up"), 0.0);
    // Then, without reconnecting, camera frames again.
    let mut back = false;
    for _ in 0..200 {
        let p = v.next_part().expect("the stream continues");
        if com_frame_number(&p.body).is_some() {
            back = true;
            break;
        }
    }
    assert!(back, "camera frames after the camera returned");
    wait_until("the source to count as up", || {
        srv.metric("camstream_source_up") == 1.0
    });
    assert!(srv.metric("camstream_source_reconnects_total") >= 1.0);
    assert!(srv.metric("camstream_source_errors_total") >= 1.0);
    assert_eq!(srv.get("/healthz").status, 200);
}

#[test]
fn serve_starts_without_a_camera_and_picks_it_up_when_it_appears() {
    // No node yet: the default camera source finds nothing, warns once and shows NO SIGNAL.
    let srv = Server::start_with(cam_cmd(&[("FAKECAM_DEVICES", "/dev/video70")]), &[]);
    assert_eq!(srv.get("/healthz").status, 503);
    assert_eq!(srv.metric("camstream_source_up"), 0.0);
    let mut v = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    let p = v.next_part().unwrap();
    assert!(
        com_frame_number(&p.body).is_none(),
        "a placeholder, not a camera frame"
    );
    assert_eq!(jpeg_dims(&p.body), (640, 480));
    // The camera appears; the same viewer gets its frames without reconnecting.
    let Some(_nodes) = Nodes::make(&[70]) else {
        return;
    };
    let mut cam = false;
    for _ in 0..200 {
        if com_frame_number(&v.next_part().expect("stream continues").body).is_some() {
            cam = true;
            break;
        }
    }
    assert!(cam, "camera frames once the camera appeared");
    assert_eq!(srv.get("/healthz").status, 200);
    assert!(srv.metric("camstream_source_reconnects_total") >= 1.0);
}

#[test]
fn a_stalled_camera_does_not_block_shutdown() {
    let Some(_nodes) = Nodes::make(&[71]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video71"),
        ("FAKECAM_STALL_AFTER", "10"),
        ("FAKECAM_STALL_PERSIST", "1"),
    ];
    let mut srv = Server::start_with(
        cam_cmd(&env),
        &["--source", "camera:71", "--timeout", "30s"],
    );
    let mut v = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    // Read until the camera stalls: the stream then repeats its last frame (idle resend).
    let mut last = None;
    for _ in 0..40 {
        let p = v.next_part().unwrap();
        let n = com_frame_number(&p.body);
        if n.is_some() && n == last {
            break;
        }
        last = n;
    }
    let t = Instant::now();
    let st = srv
        .signal_and_wait(crate::util::SIGTERM, Duration::from_secs(10))
        .expect("exit");
    assert!(st.success(), "{st:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
}

/// A camera that stops delivering but is within `--timeout`: viewers keep getting the last
/// frame (the same capture, re-sent at least once a second) and stay connected. (This used to
/// stall a folder source on a FIFO; folder sources now skip FIFOs instead of blocking.)
#[test]
fn a_stalled_camera_keeps_the_stream_alive_with_the_last_frame() {
    let Some(_nodes) = Nodes::make(&[73]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video73"),
        ("FAKECAM_STALL_AFTER", "3"),
        ("FAKECAM_STALL_PERSIST", "1"),
    ];
    let srv = Server::start_with(
        cam_cmd(&env),
        &["--source", "camera:73", "--timeout", "60s"],
    );
    let mut v = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    // A few real frames, then the stall: the same frame again and again.
    let mut prev: Option<(String, Vec<u8>)> = None;
    let (mut repeats, mut distinct) = (0, 0);
    for _ in 0..30 {
        let p = v.next_part().expect("a part");
        assert_eq!(jpeg_dims(&p.body), (640, 480));
        let ts = p.headers["x-timestamp"].clone();
        if prev.as_ref().is_some_and(|(t, b)| *t == ts && *b == p.body) {
            repeats += 1;
            if repeats == 3 {
                break;
            }
        } else {
            repeats = 0;
            distinct += 1;
        }
        prev = Some((ts, p.body));
    }
    assert!(
        distinct <= 3,
        "{distinct} distinct frames from a camera that stalled after 3"
    );
    assert_eq!(
        repeats, 3,
        "the last frame was not re-sent while the camera stalled"
    );
    assert_eq!(srv.metric("camstream_viewers"), 1.0);
    assert_eq!(srv.get("/healthz").status, 200);
}

#[test]
fn a_camera_without_the_requested_size_streams_its_nearest() {
    let Some(_nodes) = Nodes::make(&[72]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video72"),
        ("FAKECAM_FORMATS", "MJPG:1280x720,YUYV:320x240"),
    ];
    // The default 640x480 is not offered: MJPEG (preferred) at its nearest size, with a warning.
    let o = run(&env, &["snapshot", "--source", "camera:72", "-"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(jpeg_dims(&o.stdout), (1280, 720));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("camera /dev/video72 does not offer 640x480; using MJPG 1280x720"),
        "{err}"
    );
    // Asking for YUYV takes the YUYV size.
    let o = run(
        &env,
        &["snapshot", "--source", "camera:72", "--format", "yuyv", "-"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(jpeg_dims(&o.stdout), (320, 240));
}
