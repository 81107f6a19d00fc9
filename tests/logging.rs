//! Logging: levels from `--log-level`, `CAMSTREAM_LOG_LEVEL` and `RUST_LOG`, the default (warnings,
//! no per-connection lines), and journald priority prefixes when `JOURNAL_STREAM` names stderr.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{camstream, get};

/// An auth file that others may read: camstream warns about it before its start line.
fn readable_users(dir: &Path) -> PathBuf {
    let file = dir.join("users");
    let hash = camstream::server::auth::hash_password("s3cret").unwrap();
    std::fs::write(&file, format!("alice:{hash}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    file
}

/// Runs `camstream serve --source pattern --listen 127.0.0.1:0 ARGS` with stderr in a file
/// (whose device and inode `prepare` may use), calls `visit` with the bound address once the
/// start line is out, stops the server and returns its stderr.
fn serve_stderr(
    args: &[&str],
    prepare: impl FnOnce(&mut Command, &File),
    visit: impl FnOnce(std::net::SocketAddr),
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let file = File::create(&log).unwrap();
    let mut cmd = camstream();
    cmd.args(["serve", "--source", "pattern", "--size", "160x120"])
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file.try_clone().unwrap()));
    prepare(&mut cmd, &file);
    // A guard: a panic in `visit` must not leave the server running.
    let mut server = crate::util::Group::spawn(cmd);
    let mut banner = String::new();
    BufReader::new(server.child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(banner.starts_with("camstream: serving "), "{banner:?}");
    let addr = crate::util::banner_addr(&banner).expect("an address in the start line");
    visit(addr);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_for(Duration::from_secs(10))
        .expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    std::fs::read_to_string(&log).unwrap()
}

#[test]
fn the_default_shows_warnings_and_the_shutdown_but_no_connection() {
    let dir = tempfile::tempdir().unwrap();
    let users = readable_users(dir.path());
    let err = serve_stderr(
        &["--auth-file", users.to_str().unwrap()],
        |_, _| {},
        |addr| assert_eq!(get(addr, "/healthz").status, 200),
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("camstream: warning: ") && l.contains("users")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l == "camstream: shutting down"),
        "{err}"
    );
    assert!(!err.contains("debug:") && !err.contains("info:"), "{err}");
}

#[test]
fn log_level_debug_shows_each_client_by_address() {
    let err = serve_stderr(
        &["--log-level", "debug"],
        |_, _| {},
        |addr| assert_eq!(get(addr, "/healthz").status, 200),
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("camstream: debug: client 127.0.0.1:")
                && l.ends_with("connected")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("camstream: info: source pattern: opened")),
        "{err}"
    );
}

#[test]
fn error_level_from_the_flag_the_variable_or_rust_log_hides_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let users = readable_users(dir.path());
    let auth = ["--auth-file", users.to_str().unwrap()];
    let flag = [&auth[..], &["--log-level", "error"]].concat();
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&[&str], Env); 4] = [
        (&flag, &[]),
        (&auth, &[("CAMSTREAM_LOG_LEVEL", "error")]),
        (&auth, &[("RUST_LOG", "error")]),
        // The flag wins over RUST_LOG.
        (&flag, &[("RUST_LOG", "debug")]),
    ];
    for (args, env) in cases {
        let err = serve_stderr(
            args,
            |cmd, _| {
                cmd.envs(env.iter().copied());
            },
            |addr| assert_eq!(get(addr, "/healthz").status, 200),
        );
        assert!(err.is_empty(), "{args:?} {env:?}: {err}");
    }
}

#[test]
fn under_journald_lines_carry_priorities() {
    let dir = tempfile::tempdir().unwrap();
    let users = readable_users(dir.path());
    let err = serve_stderr(
        &[
            "--auth-file",
            users.to_str().unwrap(),
            "--log-level",
            "info",
        ],
        |cmd, stderr| {
            let meta = stderr.metadata().unwrap();
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        },
        |addr| assert_eq!(get(addr, "/healthz").status, 200),
    );
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>camstream: warning: ")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>camstream: info: source pattern: opened")),
        "{err}"
    );
    assert!(lines.contains(&"<5>camstream: shutting down"), "{err}");
    assert!(lines.iter().all(|l| l.starts_with('<')), "{err}");
}

#[test]
fn a_journal_stream_that_is_not_stderr_gets_no_prefixes() {
    // A child of a service whose stderr was redirected still inherits JOURNAL_STREAM.
    let dir = tempfile::tempdir().unwrap();
    let users = readable_users(dir.path());
    let err = serve_stderr(
        &["--auth-file", users.to_str().unwrap()],
        |cmd, _| {
            cmd.env("JOURNAL_STREAM", "8:12345");
        },
        |_| {},
    );
    assert!(
        err.lines().any(|l| l.starts_with("camstream: warning: ")),
        "{err}"
    );
    assert!(!err.contains('<'), "{err}");
}
