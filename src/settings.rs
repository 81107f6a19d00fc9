//! Validated settings: the value types behind the flags, their parsers (with messages that name
//! the value), and the settings the rest of the program uses. Turning parsed flags into settings
//! is each command's step ([`crate::cmd`]), so this module knows nothing of the CLI.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

/// Largest frame edge we accept; beyond it nothing real exists and buffers grow silly.
const MAX_WIDTH: u32 = 7680;
const MAX_HEIGHT: u32 = 4320;

/// Which camera, when the source is a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSelector {
    /// The first camera that can capture video.
    First,
    /// `/dev/videoN` by its number.
    Index(u32),
    /// A device path, e.g. `/dev/video2` or a `/dev/v4l/by-id/...` link.
    Path(PathBuf),
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Camera(CameraSelector),
    Pattern,
    File(PathBuf),
    /// An `http://` MJPEG stream or JPEG URL; shown without its password.
    Relay(crate::source::relay::RelayUrl),
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Camera(CameraSelector::First) => f.write_str("camera"),
            SourceSpec::Camera(CameraSelector::Index(n)) => write!(f, "camera:{n}"),
            SourceSpec::Camera(CameraSelector::Path(p)) => write!(f, "camera:{}", p.display()),
            SourceSpec::Pattern => f.write_str("pattern"),
            SourceSpec::File(p) => write!(f, "file:{}", p.display()),
            SourceSpec::Relay(url) => write!(f, "{url}"),
        }
    }
}

/// A frame size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// The camera pixel format to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatChoice {
    /// MJPEG when the camera offers it at the size (passed through), else YUYV.
    Auto,
    /// Compressed frames from the camera, passed through untouched.
    Mjpeg,
    /// Raw YUYV 4:2:2 frames, encoded by camstream.
    Yuyv,
}

/// How much to log (`--log-level`); see [`crate::logging`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Nothing (a command's final error is still printed).
    Off,
    /// Errors only.
    Error,
    /// Warnings and errors (the default).
    Warn,
    /// Also events: sources opened and lost, viewers refused and evicted.
    Info,
    /// Also every connection and viewer admitted, by address.
    Debug,
    /// Everything.
    Trace,
}

/// Everything a frame source needs, validated.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub spec: SourceSpec,
    pub size: Size,
    pub fps: u32,
    pub quality: u8,
    pub format: FormatChoice,
    pub timeout: Duration,
    /// `--control` settings, applied in order whenever a camera opens.
    pub controls: Vec<crate::source::controls::Assignment>,
}

impl SourceSettings {
    /// The time between two frames at the configured rate.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps
    }
}

/// Short requests that may wait for a worker beyond a burst of every viewer. Workers answer in
/// microseconds, so a full queue means a flood of many clients at once (wrong passwords from
/// 100+ addresses, say): with room for 1024, `/healthz` waits behind them instead of being
/// refused; 1024 parsed heads are 16 MiB at most.
pub const REQUEST_QUEUE_SLACK: usize = 1024;

/// Settings of `camstream serve`.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub source: SourceSettings,
    pub listen: SocketAddr,
    pub max_clients: usize,
    pub max_connections: usize,
    pub workers: usize,
    pub send_timeout: Duration,
    pub header_timeout: Duration,
    pub allow_origin: Option<String>,
    pub max_clients_per_ip: Option<usize>,
    /// Connections from one address (IPv6: one /64) still sending their request head.
    pub max_pending_per_ip: usize,
    pub auth_file: Option<PathBuf>,
    /// `CAMSTREAM_AUTH`, read from the environment (a password has no flag: flags show in `ps`).
    pub auth_env: Option<String>,
    pub auth_exempt: Endpoints,
}

/// Endpoint names, for `--auth-exempt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints(pub Vec<String>);

impl Endpoints {
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|e| e == name)
    }
}

/// The endpoint names `--auth-exempt` knows.
pub const ENDPOINTS: [&str; 6] = ["healthz", "metrics", "state", "snapshot", "stream", "index"];

/// Parses `--auth-exempt healthz,metrics` (or `none`).
pub fn parse_endpoints(s: &str) -> Result<Endpoints, String> {
    if s.trim() == "none" || s.trim().is_empty() {
        return Ok(Endpoints::default());
    }
    let mut v = Vec::new();
    for name in s.split(',').map(str::trim) {
        if !ENDPOINTS.contains(&name) {
            return Err(format!(
                "unknown endpoint '{name}' (expected {} or none)",
                ENDPOINTS.join(", ")
            ));
        }
        v.push(name.to_string());
    }
    Ok(Endpoints(v))
}

impl ServeSettings {
    /// Requests that may wait for a worker: room for a burst of every viewer at once plus
    /// [`REQUEST_QUEUE_SLACK`] short requests, never more than the connection cap. A queued
    /// request holds its parsed head (16 KiB at most), so this, not the (much larger) connection
    /// cap, bounds that memory.
    pub fn request_queue_len(&self) -> usize {
        self.max_connections
            .min(self.max_clients + REQUEST_QUEUE_SLACK)
    }

    /// The pattern source (320x240 at 30 fps) on a free loopback port, with small limits (3
    /// viewers, 2 workers) and no authentication: a server to embed, and the one the unit tests,
    /// integration tests and the fuzz target start from (every field is public to adjust).
    pub fn small_pattern() -> Self {
        ServeSettings {
            source: SourceSettings {
                spec: SourceSpec::Pattern,
                size: Size {
                    width: 320,
                    height: 240,
                },
                fps: 30,
                quality: 80,
                format: FormatChoice::Auto,
                timeout: Duration::from_secs(5),
                controls: Vec::new(),
            },
            listen: "127.0.0.1:0".parse().expect("literal address"),
            max_clients: 3,
            max_connections: 67,
            workers: 2,
            send_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            allow_origin: None,
            max_clients_per_ip: None,
            max_pending_per_ip: 64,
            auth_file: None,
            auth_env: None,
            auth_exempt: Endpoints(vec!["healthz".into()]),
        }
    }
}

/// `--control NAME=VALUE`: the name is normalised (see [`crate::source::controls::normalise`]);
/// whether the camera has it is checked when it is opened.
pub fn parse_control(s: &str) -> Result<crate::source::controls::Assignment, String> {
    s.parse()
}

/// Parses `--source`.
pub fn parse_source(s: &str) -> Result<SourceSpec, String> {
    let scheme = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    if scheme.starts_with("http://") || scheme.starts_with("https://") {
        return crate::source::relay::RelayUrl::parse(s).map(SourceSpec::Relay);
    }
    let (kind, arg) = match s.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (s, None),
    };
    match (kind, arg) {
        ("camera", None) => Ok(SourceSpec::Camera(CameraSelector::First)),
        ("camera", Some(a)) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => a
            .parse()
            .map(|n| SourceSpec::Camera(CameraSelector::Index(n)))
            .map_err(|_| format!("camera number '{a}' is too large")),
        ("camera", Some(a)) if a.starts_with('/') => {
            Ok(SourceSpec::Camera(CameraSelector::Path(PathBuf::from(a))))
        }
        ("camera", Some(a)) => Err(format!(
            "'{a}' is neither a camera number nor a device path (try camera:0 or camera:/dev/video0)"
        )),
        ("pattern", None) => Ok(SourceSpec::Pattern),
        ("file", Some(p)) if !p.is_empty() => Ok(SourceSpec::File(PathBuf::from(p))),
        ("file", _) => Err("file: needs a path, e.g. file:clip.mjpeg".into()),
        _ if s.contains("://") => Err(format!(
            "unknown source '{}' (sources from the network start with http://)",
            crate::source::relay::url::redact_str(s)
        )),
        _ => Err(format!(
            "unknown source '{s}' (expected camera, camera:N, camera:/dev/videoN, pattern, file:PATH or http://URL)"
        )),
    }
}

/// Parses `--size WxH`.
pub fn parse_size(s: &str) -> Result<Size, String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not a size like 640x480"))?;
    let parse = |v: &str, what: &str, max: u32| -> Result<u32, String> {
        let n: u32 = v.trim().parse().map_err(|_| {
            format!("'{s}' is not a size like 640x480 ({what} '{v}' is not a number)")
        })?;
        if !(16..=max).contains(&n) || n % 2 != 0 {
            return Err(format!(
                "{what} {n} in '{s}' must be an even number from 16 to {max}"
            ));
        }
        Ok(n)
    };
    Ok(Size {
        width: parse(w, "width", MAX_WIDTH)?,
        height: parse(h, "height", MAX_HEIGHT)?,
    })
}

/// Parses a duration: `5s`, `500ms`, `2m`, or plain seconds (`5`, `0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 5s or 500ms"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("'{s}' has unknown unit '{unit}' (use ms, s or m)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("'{s}' must be more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `--allow-origin`: `*` or an origin as browsers send it, `scheme://host[:port]` (RFC
/// 6454), with nothing that could end the header line it goes into.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "'{}' is not an origin like https://example.com or http://cam.local:8080, or * ({why})",
            s.escape_debug()
        ))
    };
    if s == "*" {
        return Ok(s.to_string());
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return bad("no scheme://");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return bad("bad scheme");
    }
    let (host, port) = match rest.rsplit_once(':') {
        // A bracketed IPv6 address has colons of its own.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if !host_ok {
        return bad(if rest.contains('/') {
            "an origin has no path, not even a trailing /"
        } else {
            "bad host"
        });
    }
    if let Some(p) = port {
        if !p.bytes().all(|b| b.is_ascii_digit()) || !matches!(p.parse::<u16>(), Ok(1..)) {
            return bad("bad port");
        }
    }
    Ok(s.to_string())
}

/// Parses `--listen`: `HOST:PORT`, `[V6]:PORT` or a bare port (loopback).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.to_socket_addrs()
        .map_err(|e| format!("'{s}' is not an address like 127.0.0.1:8080 ({e})"))?
        .next()
        .ok_or_else(|| format!("'{s}' resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            parse_source("camera"),
            Ok(SourceSpec::Camera(CameraSelector::First))
        );
        assert_eq!(
            parse_source("camera:2"),
            Ok(SourceSpec::Camera(CameraSelector::Index(2)))
        );
        assert_eq!(
            parse_source("camera:/dev/v4l/by-id/usb-x"),
            Ok(SourceSpec::Camera(CameraSelector::Path(
                "/dev/v4l/by-id/usb-x".into()
            )))
        );
        assert_eq!(parse_source("pattern"), Ok(SourceSpec::Pattern));
        assert_eq!(
            parse_source("file:a.mjpeg"),
            Ok(SourceSpec::File("a.mjpeg".into()))
        );
        for bad in [
            "",
            "webcam",
            "camera:",
            "camera:x",
            "file:",
            "file",
            "pattern:1",
        ] {
            assert!(parse_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(
            parse_size("640x480"),
            Ok(Size {
                width: 640,
                height: 480
            })
        );
        assert_eq!(
            parse_size("1280X720"),
            Ok(Size {
                width: 1280,
                height: 720
            })
        );
        for bad in [
            "640",
            "x",
            "641x480",
            "0x0",
            "8x8",
            "99999x480",
            "axb",
            "640x480x2",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        for bad in ["", "0", "-1s", "5h", "abc", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoints("healthz,metrics").unwrap().0,
            ["healthz", "metrics"]
        );
        assert!(parse_endpoints("none").unwrap().0.is_empty());
        assert!(parse_endpoints("healthz,admin")
            .unwrap_err()
            .contains("'admin'"));
    }

    #[test]
    fn origins() {
        for good in [
            "*",
            "https://example.com",
            "http://cam.local:8080",
            "http://127.0.0.1:1",
            "http://[::1]:8080",
            "http://[fe80::1]",
            "moz-extension://abc-123",
        ] {
            assert_eq!(parse_origin(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "**",
            "null",
            "example.com",
            "https://",
            "https://a.example/",
            "https://a.example/path",
            "https://a.example:0",
            "https://a.example:65536",
            "https://a.example:+80",
            "https://a.example:",
            "https://a b.example",
            "https://a.example\r\nSet-Cookie: x=1",
            "https://a.example\n",
            "1http://a.example",
            "http://[not-v6]",
            "http://user@a.example",
        ] {
            let e = parse_origin(bad).unwrap_err();
            assert!(e.contains(&bad.escape_debug().to_string()), "{bad:?}: {e}");
            assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
        }
    }

    #[test]
    fn listen() {
        assert_eq!(parse_listen("127.0.0.1:0").unwrap().port(), 0);
        assert_eq!(
            parse_listen("8081").unwrap(),
            "127.0.0.1:8081".parse().unwrap()
        );
        assert!(parse_listen("[::1]:80").unwrap().is_ipv6());
        assert!(parse_listen("nonsense").is_err());
    }
}
