//! Test helpers: running the binary with a clean environment, a `serve` fixture on port 0, and
//! small raw HTTP and MJPEG clients with timeouts on every socket.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    pub fn start_with(mut cmd: Command, args: &[&str]) -> Server {
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
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
        // "... serving SOURCE on http://ADDR/ ..."; a relay's SOURCE is a URL too.
        let url = banner
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {banner:?}"));
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
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
        unsafe { libc_kill(self.child.id() as i32, sig) };
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

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

/// Threads of a process, from /proc.
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Open file descriptors of a process, from /proc.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
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
    use camstream::settings::{
        Endpoints, FormatChoice, ServeSettings, Size, SourceSettings, SourceSpec,
    };
    let settings = ServeSettings {
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
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        max_clients: 3,
        max_connections: 67,
        workers: 2,
        send_timeout: Duration::from_secs(10),
        header_timeout: Duration::from_secs(5),
        allow_origin: None,
        max_clients_per_ip: None,
        max_pending_per_ip: 64,
        auth_file: None,
        auth_env: auth_env.map(String::from),
        auth_exempt: Endpoints(vec!["healthz".into()]),
    };
    let app = camstream::server::App::new(settings).expect("app");
    app.slot.close();
    app
}
