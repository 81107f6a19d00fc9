//! Test helpers: running the binary with a clean environment, a `serve` fixture on port 0, small
//! raw HTTP and MJPEG clients with timeouts on every socket, checks of stream parts, and finding
//! the external tools a test needs. `util/process.rs` is shared with the benchmarks.

#![allow(dead_code)]

pub mod process;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use process::{banner_addr, fd_count, free_port, rss_mb, thread_count};

/// Upper bound for any single network read or wait in tests; generous so a loaded CI machine
/// never fails a test on timing, while a real hang still ends the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// The camstream binary with no `CAMSTREAM_*` variables from the caller's environment (nor its
/// `RUST_LOG` and `JOURNAL_STREAM`, which change what camstream logs).
pub fn camstream() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_camstream"));
    cmd.env_remove("RUST_LOG").env_remove("JOURNAL_STREAM");
    for (k, _) in std::env::vars() {
        if k.starts_with("CAMSTREAM_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A `camstream serve` child process; killed and reaped on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The line it printed on start.
    pub banner: String,
}

impl Server {
    /// Starts `camstream serve --listen 127.0.0.1:0 ARGS` and waits for its ready line.
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(camstream(), args)
    }

    /// Like [`Server::start`] with a prepared command (extra environment, say).
    pub fn start_with(cmd: Command, args: &[&str]) -> Server {
        Self::spawn(cmd, "127.0.0.1:0", args)
    }

    /// Starts `camstream serve --listen ADDR ARGS` on a given address (a restart on the address
    /// a first server had, say) and checks that it is the address it serves on.
    pub fn start_on(addr: SocketAddr, args: &[&str]) -> Server {
        let s = Self::spawn(camstream(), &addr.to_string(), args);
        assert_eq!(s.addr, addr, "{:?}", s.banner);
        s
    }

    fn spawn(mut cmd: Command, listen: &str, args: &[&str]) -> Server {
        cmd.arg("serve").args(["--listen", listen]).args(args);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start camstream serve");
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        out.read_line(&mut banner).expect("read the ready line");
        assert!(
            !banner.is_empty(),
            "camstream serve exited before it was ready"
        );
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
            }
        });
        let addr = banner_addr(&banner).unwrap_or_else(|| panic!("no URL in {banner:?}"));
        Server {
            child,
            addr,
            banner,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path)
    }

    /// The value of an un-labelled metric.
    pub fn metric(&self, name: &str) -> f64 {
        metric(&self.get("/metrics").text(), name)
    }

    /// Sends SIGTERM (or another signal) and waits for the exit, at most `limit`.
    pub fn signal_and_wait(
        &mut self,
        sig: i32,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        // SAFETY: kill() with a child pid we own.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        process::stop(&mut self.child, Duration::ZERO);
    }
}

pub const SIGINT: i32 = libc::SIGINT;
pub const SIGTERM: i32 = libc::SIGTERM;

/// Polls `cond` until it holds, at most [`IO_TIMEOUT`]; for waiting on a state the server
/// reaches asynchronously (never as a substitute for a readiness signal the server gives).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// GET over HTTP/1.1, reading to the end (the server closes every response).
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
}

/// Sends raw request bytes and reads the whole response.
pub fn request(addr: SocketAddr, raw: &str) -> Response {
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Response {
    let end = find(buf, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of an un-labelled sample in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .trim()
        .parse()
        .unwrap()
}

/// One part of a multipart MJPEG stream.
#[derive(Debug)]
pub struct Part {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// A client reading `/stream` part by part.
pub struct MjpegClient {
    pub reader: BufReader<TcpStream>,
    pub head: Response,
    /// The response head as it came off the wire.
    pub raw_head: String,
    pub boundary: String,
}

impl MjpegClient {
    /// Opens `path` with HTTP/1.`minor`; returns the client or the (error) response.
    pub fn open(addr: SocketAddr, path: &str, minor: u8) -> Result<MjpegClient, Response> {
        let mut s = connect(addr);
        write!(s, "GET {path} HTTP/1.{minor}\r\nHost: test\r\n\r\n").unwrap();
        let mut reader = BufReader::new(s);
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let n = reader.read_until(b'\n', &mut head).expect("read head");
            assert!(
                n > 0,
                "connection closed in the head: {:?}",
                String::from_utf8_lossy(&head)
            );
        }
        let raw_head = String::from_utf8_lossy(&head).into_owned();
        assert_eq!(
            raw_head.matches('\n').count(),
            raw_head.matches("\r\n").count(),
            "head lines must end in CRLF: {raw_head:?}"
        );
        let mut resp = parse_response(&head);
        if resp.status != 200 {
            reader.read_to_end(&mut resp.body).unwrap();
            return Err(resp);
        }
        let ct = resp.header("content-type").unwrap().to_string();
        let boundary = ct.split("boundary=").nth(1).expect("boundary").to_string();
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert_eq!(
            first,
            format!("--{boundary}\r\n"),
            "body must start with the delimiter"
        );
        Ok(MjpegClient {
            reader,
            head: resp,
            raw_head,
            boundary,
        })
    }

    /// Reads the next part; `None` at the end of the stream.
    pub fn next_part(&mut self) -> Option<Part> {
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            assert!(line.ends_with("\r\n"), "header line without CRLF: {line:?}");
            if line.starts_with("--") && headers.is_empty() {
                return None; // closing delimiter remainder
            }
            let (k, v) = line.split_once(':').expect("part header");
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let len: usize = headers
            .get("content-length")
            .expect("part Content-Length")
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).ok()?;
        let mut delim = String::new();
        self.reader.read_line(&mut delim).ok()?; // CRLF after the body
        assert_eq!(delim, "\r\n");
        delim.clear();
        self.reader.read_line(&mut delim).ok()?;
        assert!(
            delim.starts_with(&format!("--{}", self.boundary)),
            "delimiter: {delim:?}"
        );
        Some(Part { headers, body })
    }
}

/// Decodes a JPEG and returns its size; panics if it is not a complete, valid JPEG.
pub fn jpeg_dims(data: &[u8]) -> (usize, usize) {
    let img = camstream::encoder::decode_gray(data).expect("a decodable JPEG");
    (img.width, img.height)
}

/// True if the decoded picture has more than one grey level.
pub fn jpeg_not_uniform(data: &[u8]) -> bool {
    let img = camstream::encoder::decode_gray(data).unwrap();
    let (min, max) = img
        .pixels
        .iter()
        .fold((255u8, 0u8), |(a, b), &p| (a.min(p), b.max(p)));
    max > min + 10
}

/// Files in `dir` (to check nothing half-written is left behind).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// An app with no capture thread and a closed slot, for calling the parser and router directly:
/// every request is answered at once. The pattern source, nothing listening; `auth_env` as
/// `CAMSTREAM_AUTH` would give it.
pub fn detached_app(auth_env: Option<&str>) -> camstream::server::App {
    let mut settings = camstream::settings::ServeSettings::small_pattern();
    settings.auth_env = auth_env.map(String::from);
    let app = camstream::server::App::new(settings).expect("app");
    app.slot.close();
    app
}

// ---------------------------------------------------------------------------------------------
// Serving the pattern, and what a stream part must be
// ---------------------------------------------------------------------------------------------

/// `serve --source pattern --size 320x240 EXTRA...`
pub fn pattern_server(extra: &[&str]) -> Server {
    let mut args = vec!["--source", "pattern", "--size", "320x240"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A pattern server (as [`pattern_server`]) that asks for `user:password` (CAMSTREAM_AUTH),
/// except on the endpoints listed in `exempt` (`--auth-exempt`).
pub fn auth_server(credentials: &str, exempt: &str) -> Server {
    let mut cmd = camstream();
    cmd.env("CAMSTREAM_AUTH", credentials);
    Server::start_with(
        cmd,
        &[
            "--source",
            "pattern",
            "--size",
            "320x240",
            "--auth-exempt",
            exempt,
        ],
    )
}

/// Opens a stream that must be admitted.
pub fn watch(addr: SocketAddr, path: &str) -> MjpegClient {
    match MjpegClient::open(addr, path, 1) {
        Ok(c) => c,
        Err(r) => panic!(
            "GET {path}: expected a stream, got {} {:?}",
            r.status,
            r.text()
        ),
    }
}

pub fn next(c: &mut MjpegClient) -> Part {
    c.next_part().expect("a stream part")
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Parses an `X-Timestamp` value, which must be `<secs>.<6 digits>`.
pub fn parse_timestamp(v: &str) -> f64 {
    let (secs, micros) = v
        .split_once('.')
        .unwrap_or_else(|| panic!("X-Timestamp {v:?} has no '.'"));
    assert!(
        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()),
        "X-Timestamp {v:?}"
    );
    assert!(
        micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
        "X-Timestamp {v:?}: want 6 digits"
    );
    v.parse().unwrap()
}

/// Checks one stream part: a JPEG of `w`x`h` with a sane, current X-Timestamp. Returns the
/// timestamp.
pub fn check_part(p: &Part, w: usize, h: usize) -> f64 {
    assert_eq!(
        p.headers.get("content-type").map(String::as_str),
        Some("image/jpeg"),
        "{:?}",
        p.headers
    );
    let len: usize = p.headers["content-length"].parse().unwrap();
    assert_eq!(len, p.body.len());
    assert_eq!(jpeg_dims(&p.body), (w, h));
    let ts = parse_timestamp(p.headers.get("x-timestamp").expect("part X-Timestamp"));
    // A sanity check of the clock it comes from (wall clock, Unix seconds), not a latency bound.
    assert!(
        (ts - now_secs()).abs() < 60.0,
        "X-Timestamp {ts} is not about now ({})",
        now_secs()
    );
    ts
}

/// A client socket with a tiny receive buffer that asks for `path` and then never reads.
pub fn stalled_viewer(addr: SocketAddr, path: &str) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect_timeout(&addr.into(), IO_TIMEOUT)
        .expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    s
}

/// Waits until the server closes `s` without answering.
pub fn closed_without_answer(mut s: &TcpStream) {
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
}

/// Connects to `addr` from the loopback address `from` (127.0.0.0/8 is all loopback on Linux),
/// so a test can play several client addresses.
pub fn connect_from(from: std::net::Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((from, 0)).into())?;
    sock.connect_timeout(&addr.into(), Duration::from_secs(2))?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Reads everything left on a stream socket; the server must have closed it (EOF, or a reset
/// for a socket it closed with data unread), not merely gone quiet.
pub fn assert_closed_by_server(mut r: impl Read, who: &str) {
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{who}: the server did not close the stream: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// External tools
// ---------------------------------------------------------------------------------------------

/// A child process in its own process group. Dropping it stops the group: SIGTERM, up to
/// 3 s for the leader to exit (nginx's master stops its workers), then SIGKILL, also for
/// helpers (zygotes, workers) that outlived their leader.
pub struct Group {
    pub child: Child,
}

impl Group {
    pub fn spawn(mut cmd: Command) -> Group {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        Group { child }
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Waits for the exit, at most `limit`; `None` if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to the leader only.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill() on a child we started and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn signal_group(&self, sig: i32) {
        // SAFETY: kill() on the process group of a child we started and have not reaped.
        unsafe { libc::kill(-(self.child.id() as i32), sig) };
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.exited() {
            self.signal_group(libc::SIGTERM);
            if self.wait_for(Duration::from_secs(3)).is_none() {
                self.signal_group(libc::SIGKILL);
                let _ = self.child.wait();
            }
        }
        self.signal_group(libc::SIGKILL);
    }
}

/// Runs `cmd` with null stdin, collecting stdout and stderr; stops it (and its process group)
/// after `limit`, which fails the test.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let mut g = Group::spawn(cmd);
    let mut out = g.child.stdout.take().unwrap();
    let mut err = g.child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = g.wait_for(limit);
    drop(g); // stops what is left, which closes the pipes
    let status = status.unwrap_or_else(|| panic!("{what} did not finish within {limit:?}"));
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// True on CI, where a missing tool is an error rather than a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The path of a tool a test needs (looked up in PATH, then /usr/sbin and /sbin, where Debian
/// puts nginx); `None` (after a note) when it is missing outside CI.
pub fn tool(name: &str, debian_package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} is missing: CI must install the Debian package {debian_package} (.ci/deps)"
        );
        eprintln!("note: skipping, {name} is not installed (apt-get install {debian_package})");
    }
    found
}

/// Chromium's flags for a quiet headless run in a test: no sandbox (CI runs as root), no GPU,
/// nothing fetched in the background, no scrollbars in screenshots.
pub const HEADLESS_CHROMIUM: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
];
