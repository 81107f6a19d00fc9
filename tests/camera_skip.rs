//! An unwatched camera's frames are only dequeued: `Camera::skip` neither splits YUYV nor trims
//! and copies MJPEG. The fake camera (tests/fakecam.rs) is preloaded into a child run of this
//! very test binary, which opens `Camera` through the library and counts conversions.

use std::process::Command;
use std::time::Duration;

use camstream::settings::{CameraSelector, FormatChoice, Size, SourceSettings, SourceSpec};
use camstream::source::camera::Camera;
use camstream::source::Source;

use crate::fakecam::{library, Nodes};

/// Set in the child run; holds the device path.
const CHILD_ENV: &str = "CAMSTREAM_TEST_SKIP_CHILD";

/// Runs [`child`] with the fake camera at `/dev/videoN` streaming `format`.
fn in_child(n: u32, format: &str) {
    let device = format!("/dev/video{n}");
    let Some(_nodes) = Nodes::make(&[n]) else {
        return;
    };
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "camera_skip::child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LD_PRELOAD", library())
        .env("FAKECAM_DEVICES", &device)
        .env(CHILD_ENV, format!("{device} {format}"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
}

#[test]
fn unwatched_yuyv_frames_are_only_dequeued() {
    in_child(80, "yuyv");
}

#[test]
fn unwatched_mjpeg_frames_are_only_dequeued() {
    in_child(81, "mjpeg");
}

/// The child: runs only under the fake camera, started by the tests above.
#[test]
#[ignore = "started by the camera_skip tests with the fake camera preloaded"]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (device, format) = spec.split_once(' ').unwrap();
    let settings = SourceSettings {
        spec: SourceSpec::Camera(CameraSelector::Path(device.into())),
        size: Size {
            width: 640,
            height: 480,
        },
        fps: 30,
        quality: 80,
        format: if format == "yuyv" {
            FormatChoice::Yuyv
        } else {
            FormatChoice::Mjpeg
        },
        timeout: Duration::from_secs(5),
        controls: Vec::new(),
    };
    let sel = CameraSelector::Path(device.into());
    let mut cam = Camera::open(&sel, &settings).unwrap();
    for _ in 0..5 {
        cam.skip().unwrap();
    }
    assert_eq!(cam.frames_converted(), 0, "a skipped frame was converted");
    cam.grab().unwrap();
    assert_eq!(cam.frames_converted(), 1);
    assert_eq!(cam.bad_frames(), 0);
}
