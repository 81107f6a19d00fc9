//! Tests of what ships beside the binary: the man pages and completions are what the current CLI
//! generates, and everything in contrib/ works with the real tools in front of (or beside) a real
//! camstream: systemd-analyze for the unit, promtool for the alert rules, the scrape config and
//! the Grafana dashboard's queries, nginx as a reverse proxy, and headless Chromium on the page.
//!
//! A missing tool fails the test when CI=true (.ci/deps installs them all) and skips it with a
//! note otherwise. Every child process runs with a time limit and is killed on drop.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::CommandFactory;

use crate::util::{self, free_port, run_bounded, tool, Group, MjpegClient, Server};

// ---------------------------------------------------------------------------------------------
// Helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout + stderr.
fn ok(o: &Output, what: &str) -> String {
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{what} failed ({}):\n{all}", o.status);
    all
}

/// The camstream command tree with bin names set, as clap builds it.
fn cli() -> clap::Command {
    let mut cmd = camstream::cli::Cli::command();
    cmd.build();
    cmd
}

fn subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Every `CAMSTREAM_*` variable camstream reads: those of options, and those named in an
/// option's help (CAMSTREAM_AUTH, which has no flag).
fn environment_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let cmd = cli();
    for sub in std::iter::once(&cmd).chain(subcommands(&cmd)) {
        for arg in sub.get_arguments() {
            if let Some(env) = arg.get_env() {
                names.insert(env.to_string_lossy().into_owned());
            }
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string());
            names.extend(words(&help.unwrap_or_default(), "CAMSTREAM_"));
        }
    }
    names
}

/// The identifiers in `s` (letters, digits, `_`, `:`) that start with `prefix` and are longer.
fn words(s: &str, prefix: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with(prefix) && w.len() > prefix.len() && !w.ends_with('_'))
        .map(|w| w.trim_end_matches(':').to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Man pages and completions

#[test]
fn generated_man_pages_and_completions_are_current() {
    // The generator is the xtask (it needs clap_mangen and clap_complete, which camstream does
    // not); `gen --check` writes nothing and names every stale file. Same cargo, same target dir.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root()).args([
        "run",
        "--quiet",
        "--package",
        "xtask",
        "--",
        "gen",
        "--check",
    ]);
    let o = run_bounded(cmd, Duration::from_secs(900));
    assert!(
        o.status.success(),
        "man/ or completions/ are stale; run `cargo xtask gen` and commit the result.\n{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

#[test]
fn man_pages_and_completions_cover_every_subcommand_flag_and_variable() {
    let cmd = cli();
    let root_page = read("man/camstream.1");
    let bash = read("completions/camstream.bash");
    let zsh = read("completions/_camstream");
    let fish = read("completions/camstream.fish");
    for sub in subcommands(&cmd) {
        let page = read(&format!("man/camstream-{}.1", sub.get_name()));
        for section in [
            "EXAMPLES",
            "ENVIRONMENT",
            "EXIT STATUS",
            "SIGNALS",
            "SEE ALSO",
        ] {
            let has_env = sub.get_arguments().any(|a| a.get_env().is_some());
            if section == "ENVIRONMENT" && !has_env {
                continue;
            }
            assert!(
                (page.contains(&format!(".SH {section}\n"))
                    || page.contains(&format!(".SH \"{section}\"\n"))),
                "camstream-{} has no {section}",
                sub.get_name()
            );
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(
                    page.contains(&roff),
                    "camstream-{}.1 lacks --{long}",
                    sub.get_name()
                );
                for (shell, script) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
                    assert!(script.contains(long), "{shell} completion lacks --{long}");
                }
            }
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                let tag = format!("\\fB{env}\\fR");
                assert!(
                    root_page.contains(&tag),
                    "camstream.1 ENVIRONMENT lacks {env}"
                );
                assert!(
                    page.contains(&tag),
                    "camstream-{}.1 ENVIRONMENT lacks {env}",
                    sub.get_name()
                );
            }
        }
        assert!(root_page.contains(&format!(
            "camstream\\-{}(1)",
            sub.get_name().replace('-', "\\-")
        )));
    }
}

#[test]
fn man_pages_render_without_warnings() {
    let Some(groff) = tool("groff", "groff-base") else {
        return;
    };
    for entry in std::fs::read_dir(root().join("man")).unwrap() {
        let path = entry.unwrap().path();
        let mut cmd = Command::new(&groff);
        cmd.args(["-man", "-Tutf8", "-ww", "-z"]).arg(&path);
        let o = run_bounded(cmd, Duration::from_secs(30));
        let all = ok(&o, &format!("groff {}", path.display()));
        assert!(
            all.trim().is_empty(),
            "groff warns about {}:\n{all}",
            path.display()
        );
    }
}

#[test]
fn bash_completion_completes_flags_and_subcommands() {
    let script = root().join("completions/camstream.bash");
    let probe = |words: &str, cword: usize, cur: &str, prev: &str| {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _camstream camstream '{cur}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ));
        ok(
            &run_bounded(cmd, Duration::from_secs(30)),
            "bash completion",
        )
    };
    let subs = probe("camstream ''", 1, "", "camstream");
    for sub in ["list", "snapshot", "serve"] {
        assert!(subs.lines().any(|l| l == sub), "no {sub} in {subs}");
    }
    let flags = probe("camstream serve --max-c", 2, "--max-c", "serve");
    let flags: BTreeSet<&str> = flags.lines().collect();
    assert!(
        flags.contains("--max-clients") && flags.contains("--max-connections"),
        "{flags:?}"
    );
    let formats = probe("camstream serve --format ''", 3, "", "--format");
    assert!(formats.lines().any(|l| l == "mjpeg"), "{formats}");
}

// ---------------------------------------------------------------------------------------------
// systemd

const UNIT: &str = "contrib/systemd/camstream@.service";

#[test]
fn systemd_unit_is_hardened_and_passes_systemd_analyze() {
    let unit = read(UNIT);
    for line in [
        "ExecStart=/usr/local/bin/camstream serve",
        "Environment=CAMSTREAM_SOURCE=camera:/dev/%i",
        "EnvironmentFile=-/etc/camstream/%i.env",
        "DynamicUser=yes",
        "SupplementaryGroups=video",
        "DevicePolicy=closed",
        "DeviceAllow=/dev/%i rw",
        "DeviceAllow=char-video4linux rw",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=5",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "{UNIT} lacks `{line}`"
        );
    }
    let Some(analyze) = tool("systemd-analyze", "systemd") else {
        return;
    };
    // verify wants the ExecStart binary to exist: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("camstream@.service");
    let exe = env!("CARGO_BIN_EXE_camstream");
    std::fs::write(&copy, unit.replace("/usr/local/bin/camstream", exe)).unwrap();
    let mut cmd = Command::new(&analyze);
    // --man=no: the Documentation= page is not installed on the test machine.
    cmd.args(["verify", "--man=no"]).arg(&copy);
    let all = ok(
        &run_bounded(cmd, Duration::from_secs(60)),
        "systemd-analyze verify",
    );
    // verify exits 0 on unknown keys and bad values too; it only warns.
    assert!(
        all.trim().is_empty(),
        "systemd-analyze verify warns:\n{all}"
    );

    // The exposure score of the sandbox, offline (systemd >= 250); 2.0 of 10 now.
    let mut cmd = Command::new(&analyze);
    cmd.args(["security", "--offline=yes", "--threshold=25"])
        .arg(&copy);
    let o = run_bounded(cmd, Duration::from_secs(60));
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    if all.contains("unrecognized option") {
        eprintln!(
            "note: this systemd-analyze cannot score units offline; skipped the exposure check"
        );
    } else {
        assert!(
            o.status.success(),
            "the unit's exposure is above 2.5:\n{all}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Grafana

const RULES: &str = "contrib/prometheus/camstream.rules.yml";
const DASHBOARD: &str = "contrib/grafana/camstream.json";

#[test]
fn prometheus_rules_and_scrape_config_pass_promtool() {
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let dir = root().join("contrib/prometheus");
    for args in [
        &["check", "rules", "camstream.rules.yml"][..],
        &["test", "rules", "camstream.rules.test.yml"],
        &["check", "config", "scrape.yml"],
    ] {
        let mut cmd = Command::new(&promtool);
        cmd.current_dir(&dir).args(args);
        ok(
            &run_bounded(cmd, Duration::from_secs(60)),
            &format!("promtool {}", args.join(" ")),
        );
    }
}

/// The dashboard's PromQL queries, with Grafana's variables replaced so promtool can parse them.
fn dashboard_queries() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    let mut out = Vec::new();
    walk(&json, &mut out);
    out
}

fn without_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

#[test]
fn grafana_dashboard_is_well_formed_and_its_queries_parse() {
    let json: serde_json::Value =
        serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    assert_eq!(json["uid"], "camstream");
    let panels = json["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("panel id"))
        .collect();
    assert_eq!(ids.len(), panels.len(), "panel ids must be unique");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {} has no targets", p["title"]));
        assert!(!targets.is_empty());
        for t in targets {
            assert_eq!(
                t["datasource"]["uid"], "${datasource}",
                "panel {}",
                p["title"]
            );
        }
    }
    let queries = dashboard_queries();
    let all = queries.join("\n");
    for wanted in [
        "rate(camstream_frames_captured_total",
        "camstream_viewers",
        "camstream_viewers_rejected_total",
        "camstream_frames_skipped_total",
        "rate(camstream_bytes_sent_total",
        "histogram_quantile(0.95, sum by (instance, le) (rate(camstream_encode_seconds_bucket",
    ] {
        assert!(
            all.contains(wanted),
            "the dashboard has no query with {wanted}"
        );
    }
    for q in &queries {
        assert!(
            !without_grafana_variables(q).contains('$'),
            "unknown variable in {q}"
        );
    }

    // promtool parses PromQL when it checks rules: make each query a recording rule.
    let Some(promtool) = tool("promtool", "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let q = serde_json::to_string(&without_grafana_variables(q)).unwrap(); // a YAML string
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {q}\n"
        ));
    }
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "rules"]).arg(&file);
    ok(
        &run_bounded(cmd, Duration::from_secs(60)),
        "promtool check rules (dashboard queries)",
    );
}

/// Metric names in Prometheus text: sample names (with _bucket, _sum, _count) and TYPE names.
fn exported_metric_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.extend(rest.split_whitespace().next().map(str::to_owned));
        } else if !line.starts_with('#') {
            names.extend(
                line.split(['{', ' '])
                    .next()
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    names
}

#[test]
fn every_metric_in_rules_dashboard_and_docs_exists() {
    let server = Server::start(&["--source", "pattern", "--size", "160x120"]);
    let metrics = server.get("/metrics");
    assert_eq!(metrics.status, 200);
    let exported = exported_metric_names(&metrics.text());
    assert!(
        exported.contains("camstream_encode_seconds_bucket"),
        "{exported:?}"
    );

    let mut checked = 0;
    for file in [
        RULES,
        DASHBOARD,
        "contrib/prometheus/camstream.rules.test.yml",
        "docs/operators.md",
    ] {
        let body = read(file);
        let mut named: Vec<String> = words(&body, "camstream_");
        named.extend(words(&body, "process_"));
        assert!(
            !named.is_empty() || file.ends_with(".md"),
            "{file} names no metric"
        );
        for name in named {
            assert!(
                exported.contains(&name),
                "{file} names {name}, which camstream does not export"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} metric names found");
}

// ---------------------------------------------------------------------------------------------
// nginx

/// nginx in front of camstream, on 127.0.0.1, in a temporary prefix; stopped on drop.
struct Nginx {
    addr: SocketAddr,
    _guard: Group,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with contrib/nginx/camstream-location.conf pointed at `upstream`.
    fn start(nginx: &Path, upstream: SocketAddr) -> Nginx {
        let location = read("contrib/nginx/camstream-location.conf");
        assert!(location.contains("proxy_pass http://127.0.0.1:8080/;"));
        let location = location.replace("127.0.0.1:8080", &upstream.to_string());
        let mut last_error = String::new();
        // nginx cannot listen on port 0 and report the port: pick a free one, and try again
        // should another process take it in between.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            std::fs::write(d.join("camstream-location.conf"), &location).unwrap();
            let port = free_port();
            // SAFETY: geteuid() has no preconditions.
            let user = if unsafe { libc::geteuid() } == 0 {
                "user root;\n"
            } else {
                ""
            };
            let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
                .iter()
                .map(|t| format!("    {t}_temp_path {}/{t};\n", d.display()))
                .collect();
            let conf = format!(
                "{user}worker_processes 1;\nevents {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n    \
                 keepalive_timeout 0;\n{temp}    server {{\n        listen 127.0.0.1:{port};\n        \
                 include {}/camstream-location.conf;\n    }}\n}}\n",
                d.display()
            );
            std::fs::write(d.join("nginx.conf"), conf).unwrap();
            let mut cmd = Command::new(nginx);
            cmd.arg("-p")
                .arg(d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .args(["-e", "stderr", "-g"]);
            cmd.arg(format!(
                "daemon off; pid {}/nginx.pid; error_log stderr;",
                d.display()
            ));
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut guard = Group::spawn(cmd);
            let log = Arc::new(Mutex::new(String::new()));
            let (stderr, sink) = (guard.child.stderr.take().unwrap(), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[nginx] {line}");
                    sink.lock().unwrap().push_str(&(line + "\n"));
                }
            });
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + util::IO_TIMEOUT;
            while Instant::now() < deadline {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Nginx {
                        addr,
                        _guard: guard,
                        _dir: dir,
                    };
                }
                if guard.wait_for(Duration::from_millis(50)).is_some() {
                    break;
                }
            }
            last_error = log.lock().unwrap().clone();
            if !last_error.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx did not start:\n{last_error}");
    }
}

#[test]
fn nginx_passes_the_stream_promptly_and_the_503_at_the_limit() {
    let Some(nginx) = tool("nginx", "nginx-light") else {
        return;
    };
    let server = Server::start(&[
        "--source",
        "pattern",
        "--size",
        "160x120",
        "--max-clients",
        "1",
    ]);
    let proxy = Nginx::start(&nginx, server.addr);

    // The page and the prefix redirect.
    let page = util::get(proxy.addr, "/camera/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<img"), "{}", page.text());
    let redirect = util::get(proxy.addr, "/camera");
    assert_eq!(redirect.status, 301);
    assert!(redirect
        .header("location")
        .is_some_and(|l| l.ends_with("/camera/")));

    // The stream: every part a whole JPEG, arriving while it is fresh (nothing buffered).
    let started = Instant::now();
    let mut viewer =
        MjpegClient::open(proxy.addr, "/camera/stream", 1).expect("stream through nginx");
    assert!(
        viewer.head.header("transfer-encoding").is_none(),
        "nginx re-framed the stream"
    );
    for i in 0..5 {
        let part = viewer
            .next_part()
            .unwrap_or_else(|| panic!("the stream ended after {i} parts"));
        assert_eq!(util::jpeg_dims(&part.body), (160, 120));
        let stamp: f64 = part.headers["x-timestamp"].parse().unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            now - stamp < 3.0,
            "part {i} arrived {:.2} s after capture",
            now - stamp
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "5 parts took {:?}",
        started.elapsed()
    );

    // The only slot is taken: the next viewer gets camstream's 503, through nginx, at once.
    let t = Instant::now();
    for path in ["/camera/stream", "/camera/?action=stream"] {
        match MjpegClient::open(proxy.addr, path, 1) {
            Ok(_) => panic!("a second viewer was admitted at --max-clients 1"),
            Err(resp) => {
                assert_eq!(resp.status, 503, "{}", resp.text());
                assert_eq!(resp.header("retry-after"), Some("1"));
                assert!(
                    resp.text().contains("stream slots are taken"),
                    "{}",
                    resp.text()
                );
            }
        }
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the 503s took {:?}",
        t.elapsed()
    );
    assert_eq!(
        util::get(proxy.addr, "/camera/metrics").status,
        200,
        "metrics answer while full"
    );
    assert!(
        viewer.next_part().is_some(),
        "the first viewer is still served"
    );
    assert!(server.metric("camstream_viewers_rejected_total") >= 2.0);
}

#[test]
fn nginx_site_config_passes_nginx_t() {
    let (Some(nginx), Some(openssl)) = (tool("nginx", "nginx-light"), tool("openssl", "openssl"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut cmd = Command::new(openssl);
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    ]);
    cmd.arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"));
    ok(&run_bounded(cmd, Duration::from_secs(60)), "openssl req");
    std::fs::copy(
        root().join("contrib/nginx/camstream-location.conf"),
        d.join("camstream-location.conf"),
    )
    .unwrap();
    let site = read("contrib/nginx/camstream.conf")
        .replace(
            "/etc/letsencrypt/live/camera.example.org/fullchain.pem",
            &d.join("cert.pem").display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/camera.example.org/privkey.pem",
            &d.join("key.pem").display().to_string(),
        )
        .replace("/etc/nginx/snippets/", &format!("{}/", d.display()));
    std::fs::write(d.join("site.conf"), site).unwrap();
    let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("    {t}_temp_path {}/{t};\n", d.display()))
        .collect();
    let conf = format!(
        "events {{ }}\nhttp {{\n{temp}    include {}/site.conf;\n}}\n",
        d.display()
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .args(["-e", "stderr", "-g"]);
    cmd.arg(format!("pid {}/nginx.pid;", d.display()));
    let all = ok(&run_bounded(cmd, Duration::from_secs(30)), "nginx -t");
    assert!(!all.contains("[warn]") && !all.contains("[emerg]"), "{all}");
}

// ---------------------------------------------------------------------------------------------
// Chromium

/// The page as headless Chromium shows it, as a decoded greyscale screenshot (width, height,
/// pixels). A stream never finishes loading, but Chromium takes the shot once the document has
/// loaded; the picture may not be painted yet, so the caller retries.
fn screenshot(chromium: &Path, url: &str) -> (usize, usize, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shot.jpeg");
    let mut cmd = Command::new(chromium);
    cmd.args(util::HEADLESS_CHROMIUM)
        .args(["--window-size=800,700", "--timeout=5000"]);
    cmd.arg(format!(
        "--user-data-dir={}",
        dir.path().join("profile").display()
    ));
    cmd.arg(format!("--screenshot={}", shot.display())).arg(url);
    let o = run_bounded(cmd, Duration::from_secs(60));
    let data = std::fs::read(&shot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}); chromium said:\n{}", text(&o.stderr)));
    let img = camstream::encoder::decode_gray(&data).expect("the screenshot is a JPEG");
    let mut pixels = Vec::with_capacity(img.width * img.height);
    for row in img.pixels.chunks(img.pitch).take(img.height) {
        pixels.extend_from_slice(&row[..img.width]);
    }
    (img.width, img.height, pixels)
}

/// The rows of the screenshot where the page shows the stream (the <img> at its top).
fn picture_area(shot: &(usize, usize, Vec<u8>)) -> &[u8] {
    let (w, h, px) = shot;
    &px[..w * (*h).min(260)]
}

fn shows_a_picture(area: &[u8]) -> bool {
    let (min, max) = area
        .iter()
        .fold((255u8, 0u8), |(a, b), &p| (a.min(p), b.max(p)));
    max > min + 60
}

#[test]
fn chromium_shows_the_stream_moving() {
    let Some(chromium) = tool("chromium", "chromium") else {
        return;
    };
    let server = Server::start(&["--source", "pattern", "--size", "320x240"]);
    let url = format!("http://{}/", server.addr);
    let painted = || {
        for _ in 0..3 {
            let shot = screenshot(&chromium, &url);
            if shows_a_picture(picture_area(&shot)) {
                return shot;
            }
        }
        panic!("three screenshots of {url} show no picture");
    };
    let first = painted();
    std::thread::sleep(Duration::from_secs(1));
    let second = painted();
    assert_eq!((first.0, first.1), (800, 700));
    let (a, b) = (picture_area(&first), picture_area(&second));
    let changed = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.abs_diff(**y) > 40)
        .count();
    eprintln!("{changed} pixels of the picture changed in 1 s");
    // The frame number, the clock and the moving box: hundreds of pixels.
    assert!(
        changed > 100,
        "the stream looks the same 1 s later ({changed} pixels changed)"
    );
    assert!(server.metric("camstream_viewers_accepted_total") >= 2.0);
}

// ---------------------------------------------------------------------------------------------
// Docs and contrib name only what exists

/// Long flags per subcommand.
fn flags_of(sub: &str) -> BTreeSet<String> {
    let cmd = cli();
    let sub = cmd
        .find_subcommand(sub)
        .unwrap_or_else(|| panic!("no subcommand {sub}"));
    sub.get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect()
}

#[test]
fn docs_and_contrib_name_only_real_variables_and_flags() {
    let vars = environment_variables();
    assert!(
        vars.contains("CAMSTREAM_LISTEN") && vars.contains("CAMSTREAM_AUTH"),
        "{vars:?}"
    );
    let files = [
        "docs/operators.md",
        UNIT,
        "contrib/nginx/camstream.conf",
        "contrib/nginx/camstream-location.conf",
        "contrib/prometheus/scrape.yml",
        "contrib/debian/video0.env",
        "contrib/debian/camstream@.service",
        RULES,
    ];
    for file in files {
        let body = read(file);
        for name in words(&body, "CAMSTREAM_") {
            assert!(
                vars.contains(&name),
                "{file} names {name}, which camstream does not read"
            );
        }
        // `camstream SUB --flag ...` on one line: every flag must be one of SUB's.
        for line in body.lines() {
            for sub in ["list", "snapshot", "serve", "hash-password"] {
                let Some((_, rest)) = line.split_once(&format!("camstream {sub}")) else {
                    continue;
                };
                let rest = rest
                    .split(['`', '|', ';', '&', '>', '<', '#'])
                    .next()
                    .unwrap_or("");
                let known = flags_of(sub);
                for flag in rest.split_whitespace().filter(|w| w.starts_with("--")) {
                    let flag = flag.split('=').next().unwrap();
                    assert!(
                        known.contains(flag),
                        "{file}: `camstream {sub}` has no {flag}: {line}"
                    );
                }
            }
        }
    }
}
