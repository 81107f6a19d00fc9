//! Man pages: camstream.1 and one page per visible subcommand, rendered by clap_mangen from the
//! clap definition, plus the sections clap knows nothing of: EXAMPLES (each one parsed with the
//! real CLI, so an example cannot name a flag that no longer exists), ENVIRONMENT (derived from
//! the arguments' `get_env()`, so it cannot go stale), EXIT STATUS, SIGNALS and SEE ALSO.

use std::collections::BTreeMap;

use clap::Command;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

/// A piece of a hand-written section.
#[derive(Clone, Copy)]
enum Block {
    /// A paragraph.
    P(&'static str),
    /// A tagged paragraph: the tag in bold, then the text.
    Item(&'static str, &'static str),
}
use Block::{Item, P};

/// What a page has beyond clap_mangen's sections; keyed by the command's path ("camstream serve").
struct Extra {
    /// (command line, what it does); command lines starting with `camstream` (after optional
    /// `CAMSTREAM_*=value` assignments) are parsed with the CLI.
    examples: &'static [(&'static str, &'static str)],
    /// Sections between EXAMPLES and ENVIRONMENT (title, blocks).
    sections: &'static [(&'static str, &'static [Block])],
    exit_status: &'static [Block],
    signals: &'static [Block],
}

const EXIT_COMMON: [Block; 3] = [
    Item("0", "Success. A reader that goes away early (camstream list | head) is not an error."),
    Item("1", "A runtime error: the source cannot be opened, the address cannot be bound, the file cannot be written. The reason is printed once on standard error as \"camstream: error: ...\"."),
    Item("2", "A usage error: an unknown flag or an invalid value, reported by the argument parser with the flag's name."),
];

const SERVE_SIGNALS: &[Block] = &[
    Item("SIGINT, SIGTERM", "Shut down cleanly: stop accepting connections, end every stream, release the camera and exit with status 0, within about a second."),
    Item("a second SIGINT or SIGTERM", "Exit at once with status 130, even if the shutdown is stuck (a camera read that hangs, say)."),
    Item("SIGHUP", "With --auth-file: read the auth file again and say so on standard error; remembered logins are forgotten, so a removed user or a changed password takes effect at once. If the file cannot be used, the error is printed and the users loaded before stay. Nothing else is reloaded. Without --auth-file, SIGHUP shuts down like SIGTERM (so closing the terminal stops camstream serve)."),
    P("Broken connections never raise SIGPIPE: a viewer that goes away just ends its stream."),
];

const ONE_SHOT_SIGNALS: &[Block] = &[P(
    "No signal is handled specially: SIGINT or SIGTERM ends the command at once.",
)];

/// Environment variables that set no option (so `get_env()` cannot list them), with the command
/// that reads them. Each must be named in the help of one of that command's options, which is
/// checked, so that a variable dropped from the code cannot linger here.
const OTHER_ENV: &[(&str, &str, &str)] = &[
    (
        "CAMSTREAM_AUTH",
        "camstream serve",
        "user:password: one more user for HTTP Basic authentication, besides those of --auth-file. \
         A password has no flag because command lines are visible to every local user (ps).",
    ),
    (
        "RUST_LOG",
        "camstream",
        "What to log when --log-level is not given, in env_logger's syntax: a level (error, warn, \
         info, debug, trace) or module=level pairs, e.g. camstream::server=debug. The default \
         is warn.",
    ),
    (
        "JOURNAL_STREAM",
        "camstream",
        "Set by systemd when standard error goes to the journal. When it names camstream's \
         standard error, every log line starts with its syslog priority (<3> error, <4> \
         warning, <5> notice, <6> info, <7> debug), so journalctl -p warning shows the \
         warnings and errors only.",
    ),
];

fn extra(path: &str) -> Extra {
    match path {
        "camstream" => Extra {
            examples: &[
                ("camstream list", "Show the cameras with their formats, sizes and frame rates."),
                ("camstream snapshot photo.jpg", "Save one JPEG from the first camera."),
                ("camstream serve --source pattern", "Serve a moving test pattern on http://127.0.0.1:8080/, no camera needed."),
                (
                    "camstream serve --source camera:/dev/video0 --size 1280x720 --fps 15 --listen 0.0.0.0:8080 --max-clients 5",
                    "Serve a camera to the network, at most 5 viewers at a time.",
                ),
            ],
            sections: &[],
            exit_status: &[
                EXIT_COMMON[0],
                EXIT_COMMON[1],
                EXIT_COMMON[2],
                Item("130", "camstream serve got a second SIGINT or SIGTERM while shutting down."),
            ],
            signals: &[
                P("camstream serve handles SIGINT and SIGTERM (see camstream-serve(1)): the first shuts it down cleanly and it exits 0, a second one makes it exit at once with status 130. The other subcommands handle no signal specially."),
            ],
        },
        "camstream list" => Extra {
            examples: &[
                ("camstream list", "Each camera as camera:N with its device path, its stable /dev/v4l/by-id name, driver, formats, sizes and frame rates."),
                ("camstream list --json", "The same as a JSON array, for scripts."),
            ],
            sections: &[],
            exit_status: &[EXIT_COMMON[0], EXIT_COMMON[1], EXIT_COMMON[2]],
            signals: ONE_SHOT_SIGNALS,
        },
        "camstream snapshot" => Extra {
            examples: &[
                ("camstream snapshot photo.jpg", "One JPEG from the first camera, after 5 warm-up frames."),
                (
                    "camstream snapshot --source camera:/dev/video2 --size 1920x1080 --skip 30 photo.jpg",
                    "A full-HD picture from /dev/video2, after a second of warm-up at 30 fps so that exposure has settled.",
                ),
                ("camstream snapshot --source pattern - > pattern.jpg", "Write the JPEG to standard output."),
                ("camstream snapshot --source file:recording.mjpeg first.jpg", "The first frame of an MJPEG file."),
            ],
            sections: &[],
            exit_status: &[EXIT_COMMON[0], EXIT_COMMON[1], EXIT_COMMON[2]],
            signals: &[P("No signal is handled specially: SIGINT or SIGTERM ends the command at once. The JPEG is written to a temporary file and renamed into place, so OUT is never left half-written.")],
        },
        "camstream controls" => Extra {
            examples: &[
                ("camstream controls", "The first camera's controls: name, type, range and step or menu entries, default, current value, and whether another control makes it inactive (manual focus while autofocus is on)."),
                (
                    "camstream controls --source camera:2 focus_automatic_continuous=0 focus_absolute=40",
                    "Turn autofocus off, then set the focus, in that order; prints the values the camera accepted (drivers clamp and round to the step).",
                ),
                ("camstream controls auto_exposure=manual_mode exposure_time_absolute=200", "A menu by entry name (or number), then the exposure it unlocks."),
                ("camstream serve --control focus_automatic_continuous=0 --control focus_absolute=40", "Set them whenever the camera opens, so a replugged camera keeps them."),
            ],
            sections: &[],
            exit_status: &[
                EXIT_COMMON[0],
                Item("1", "The camera could not be opened or refused a control (the error names the control and gives the driver's reason)."),
                Item("2", "A usage error: an unknown flag, or a control the camera does not have or a value it does not take (the message lists what is valid)."),
            ],
            signals: ONE_SHOT_SIGNALS,
        },
        "camstream hash-password" => Extra {
            examples: &[
                ("camstream hash-password", "Ask for a password (not echoed on a terminal) and print its argon2 hash; put it in the --auth-file of camstream serve as a line user:HASH."),
                ("camstream hash-password < password.txt", "Hash the first line of a file."),
            ],
            sections: &[],
            exit_status: &[
                Item("0", "The hash was printed."),
                Item("1", "The password was empty or standard input could not be read."),
                EXIT_COMMON[2],
            ],
            signals: ONE_SHOT_SIGNALS,
        },
        "camstream serve" => Extra {
            examples: &[
                ("camstream serve --source pattern", "A moving test pattern on http://127.0.0.1:8080/ (no camera needed)."),
                (
                    "camstream serve --source camera:/dev/video0 --size 1280x720 --fps 15 --listen 0.0.0.0:8080",
                    "Serve /dev/video0 to the network. Anyone who can reach the port can watch unless --auth-file is given; put a TLS reverse proxy in front of it (contrib/nginx/).",
                ),
                ("camstream serve --max-clients 3 --send-timeout 5s", "At most 3 viewers; a viewer that accepts no data for 5 seconds is disconnected."),
                ("camstream serve --listen 127.0.0.1:0", "Listen on a free port; the address actually bound is printed on standard output."),
                ("camstream serve --log-level debug", "Also log each connection and viewer, by address, and each viewer refused or evicted, on standard error (the default shows warnings and errors only)."),
                ("CAMSTREAM_SOURCE=camera:1 CAMSTREAM_LISTEN=127.0.0.1:8081 camstream serve", "The same settings from the environment, as in a service file."),
                ("ffmpeg -f mpjpeg -i http://127.0.0.1:8080/stream -t 10 -c copy clip.mkv", "Record 10 seconds of the stream without re-encoding."),
            ],
            sections: &[(
                "HTTP INTERFACE",
                &[
                    Item("GET /", "A small page that shows the stream and the live numbers."),
                    Item("GET /stream, GET /?action=stream", "The live MJPEG stream (multipart/x-mixed-replace, one image/jpeg part per frame with Content-Length and X-Timestamp). The newest frame is sent at once, then every new one; a slow viewer skips frames instead of falling behind. ?fps=N (1 to 120) caps the rate for this viewer. When --max-clients viewers are connected, the next one gets 503 Service Unavailable with Retry-After at once. The /?action= URLs are mjpg-streamer's, as used by OctoPrint and Mainsail."),
                    Item("GET /snapshot, GET /?action=snapshot", "One JPEG, after waiting up to 2 seconds for a fresh frame; 503 while there is no frame yet."),
                    Item("GET /metrics", "Prometheus metrics, all named camstream_* plus the standard process_* ones."),
                    Item("GET /healthz", "200 while the source delivers frames, 503 (with the reason) while it is down."),
                    Item("GET /state", "Status as JSON: source, frame, viewers, connections, settings and totals."),
                    Item("GET /controls, POST /controls", "The camera's controls as JSON (as camstream controls --json shows them). A POST sets them, in order, from a form (focus_automatic_continuous=0&focus_absolute=40) or a JSON object, and answers with the controls afterwards; the stream goes on. 400 names a control or value that is not valid, 409 or 502 carries the driver's refusal, 404 means the source has no controls, 403 refuses a POST from a page of another origin (one that is neither this server nor --allow-origin), so another site cannot change the camera. The body is at most 4 KiB (else 413) and must arrive within --header-timeout (else 408). With authentication on, /controls always needs credentials (--auth-exempt cannot name it); changes are counted in camstream_control_changes_total and logged with the client's address."),
                    Item("authentication", "With --auth-file or CAMSTREAM_AUTH, every endpoint but those named by --auth-exempt (by default /healthz) answers 401 with WWW-Authenticate: Basic unless the request carries valid credentials. Passwords from the auth file are checked by one verifier thread with a small queue, never by the request workers: while its queue is full, a login that needs checking gets 503 with Retry-After. An address (an IPv6 /64) that sent 5 wrong passwords within a minute gets 429 Too Many Requests with Retry-After, unchecked, for the rest of that minute. A login once accepted is remembered and not checked again."),
                    P("Only GET and HEAD are served (and POST for /controls and the stream), and OPTIONS for CORS (see --allow-origin); other methods get 405. Unknown query parameters are ignored. While the source is down the stream shows a NO SIGNAL picture about once a second, the source is retried, and nothing exits."),
                ],
            )],
            exit_status: &[
                Item("0", "Stopped by SIGINT or SIGTERM (or SIGHUP without --auth-file)."),
                Item("1", "A runtime error, e.g. the address cannot be bound or the auth file is unusable (a line that is not user:HASH, an empty user name, an argon2 cost above m=65536 KiB, t=8 or p=16); printed once as \"camstream: error: ...\". A missing or failing camera is not one: the stream shows NO SIGNAL and the camera is retried."),
                EXIT_COMMON[2],
                Item("130", "A second SIGINT or SIGTERM arrived while shutting down."),
            ],
            signals: SERVE_SIGNALS,
        },
        _ => Extra { examples: &[], sections: &[], exit_status: &EXIT_COMMON, signals: &[] },
    }
}

/// An environment variable that sets an option.
struct EnvVar {
    flag: String,
    /// The subcommands (by path) whose option it sets.
    commands: Vec<String>,
}

/// Every environment variable of a visible option under `cmd`, by name.
fn environment(cmd: &Command, out: &mut BTreeMap<String, EnvVar>) {
    let path = cmd
        .get_bin_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    for arg in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_hide_env_set())
    {
        let Some(env) = arg.get_env() else { continue };
        let flag = match (arg.get_long(), arg.get_value_names()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(names)) => names.first().map(|n| n.to_string()).unwrap_or_default(),
            (None, None) => arg.get_id().to_string(),
        };
        let e = out
            .entry(env.to_string_lossy().into_owned())
            .or_insert(EnvVar {
                flag,
                commands: vec![],
            });
        e.commands.push(path.clone());
    }
    for sub in shown_subcommands(cmd) {
        environment(sub, out);
    }
}

/// Checks that each of [`OTHER_ENV`] is still named in the help of an option of its command.
fn check_other_env(root: &Command) -> Result<(), String> {
    for (name, path, _) in OTHER_ENV {
        let cmd = find(root, path);
        let named = cmd.is_some_and(|c| {
            c.get_arguments().any(|a| {
                let help = a
                    .get_long_help()
                    .or(a.get_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                help.contains(name)
            })
        });
        if !named && root.get_name() == "camstream" {
            return Err(format!("{name} is no longer named in an option's help of `{path}`: update OTHER_ENV in xtask/src/man.rs"));
        }
    }
    Ok(())
}

/// The (visible) command whose bin name is `path`.
fn find<'a>(cmd: &'a Command, path: &str) -> Option<&'a Command> {
    if cmd.get_bin_name().unwrap_or_else(|| cmd.get_name()) == path {
        return Some(cmd);
    }
    shown_subcommands(cmd).find_map(|s| find(s, path))
}

/// Subcommands that get a page: visible ones, without clap's generated `help`.
fn shown_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Every page, as (file name, roff source), the root's first. `root` must be built.
pub fn pages(root: &Command) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut envs = BTreeMap::new();
    environment(root, &mut envs);
    check_other_env(root)?;
    let mut all = Vec::new();
    collect(root, &mut all);
    let names: Vec<String> = all.iter().map(|c| page_name(c)).collect();
    all.iter().map(|c| page(root, c, &envs, &names)).collect()
}

fn collect<'a>(cmd: &'a Command, out: &mut Vec<&'a Command>) {
    out.push(cmd);
    for sub in shown_subcommands(cmd) {
        collect(sub, out);
    }
}

/// "camstream-serve" for `camstream serve`.
fn page_name(cmd: &Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned()
}

fn page(
    root: &Command,
    cmd: &Command,
    envs: &BTreeMap<String, EnvVar>,
    all_pages: &[String],
) -> Result<(String, Vec<u8>), String> {
    let path = cmd
        .get_bin_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    let extra = extra(&path);
    // No date in the title line: the output depends on the CLI only.
    let version = root.get_version().unwrap_or_default();
    let man = Man::new(cmd.clone())
        .manual(format!("{} manual", root.get_name()))
        .source(
            format!("{} {version}", root.get_name())
                .trim_end()
                .to_owned(),
        );
    let mut out = Vec::new();
    let io = |e: std::io::Error| e.to_string();
    man.render_title(&mut out).map_err(io)?;
    man.render_name_section(&mut out).map_err(io)?;
    man.render_synopsis_section(&mut out).map_err(io)?;
    man.render_description_section(&mut out).map_err(io)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).map_err(io)?;
    }
    if shown_subcommands(cmd).next().is_some() {
        man.render_subcommands_section(&mut out).map_err(io)?;
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(&mut out).map_err(io)?;
    }

    let mut r = Roff::new();
    if !extra.examples.is_empty() {
        r.control("SH", ["EXAMPLES"]);
        for (line, what) in extra.examples {
            check_example(root, line, envs)?;
            r.control("TP", []).text([bold(*line)]).text([roman(*what)]);
        }
    }
    for (title, blocks) in extra.sections {
        r.control("SH", [*title]);
        blocks_to_roff(&mut r, blocks);
    }

    let under = |c: &str| c == path || c.starts_with(&format!("{path} "));
    let mine: Vec<(&String, &EnvVar)> = envs
        .iter()
        .filter(|(_, e)| e.commands.iter().any(|c| under(c)))
        .collect();
    let others: Vec<_> = if root.get_name() == "camstream" {
        OTHER_ENV.iter().filter(|(_, c, _)| under(c)).collect()
    } else {
        vec![]
    };
    if !mine.is_empty() || !others.is_empty() {
        r.control("SH", ["ENVIRONMENT"]);
        r.text([roman(
            "Every option can also be set from an environment variable, which suits service files \
             (see camstream@.service in contrib/systemd/). An option given on the command line wins \
             over its variable. On/off flags accept true or false.",
        )]);
        for (name, e) in mine {
            r.control("TP", []).text([bold(name.as_str())]);
            let mut text: Vec<Inline> = vec![roman("Sets "), bold(e.flag.as_str())];
            if e.commands.len() > 1 || e.commands[0] != path {
                text.push(roman(format!(" for {}", e.commands.join(" and "))));
            }
            text.push(roman("."));
            r.text(text);
        }
        for (name, command, what) in others {
            r.control("TP", []).text([bold(*name)]);
            let of = if *command == path {
                String::new()
            } else {
                format!(" Read by {command}.")
            };
            r.text([roman(format!("{what}{of}"))]);
        }
    }
    r.control("SH", ["EXIT STATUS"]);
    blocks_to_roff(&mut r, extra.exit_status);
    if !extra.signals.is_empty() {
        r.control("SH", ["SIGNALS"]);
        blocks_to_roff(&mut r, extra.signals);
    }
    r.control("SH", ["SEE ALSO"]);
    let me = page_name(cmd);
    let mut see: Vec<Inline> = Vec::new();
    for other in all_pages.iter().filter(|p| **p != me) {
        if !see.is_empty() {
            see.push(roman(", "));
        }
        see.push(bold(other.as_str()));
        see.push(roman("(1)"));
    }
    if root.get_name() == "camstream" {
        if !see.is_empty() {
            see.push(roman(", "));
        }
        see.push(roman("and the operators' guide, "));
        see.push(italic("docs/operators.md"));
        see.push(roman(" in the source, for systemd, nginx, Prometheus, Grafana, OctoPrint and Home Assistant recipes."));
    }
    if !see.is_empty() {
        r.text(see);
    }
    out.extend_from_slice(without_preamble(&r.render()).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out).map_err(io)?;
    }
    let text = String::from_utf8(out).map_err(|e| e.to_string())?;
    Ok((format!("{me}.1"), dedupe_preamble(&text).into_bytes()))
}

fn blocks_to_roff(r: &mut Roff, blocks: &[Block]) {
    for b in blocks {
        match b {
            P(text) => {
                r.control("PP", []).text([roman(*text)]);
            }
            Item(tag, text) => {
                r.control("TP", []).text([bold(*tag)]).text([roman(*text)]);
            }
        }
    }
}

/// The lines roff puts before every rendering (apostrophe handling); the page needs them once.
fn preamble() -> String {
    Roff::new().render()
}

fn without_preamble(s: &str) -> &str {
    s.strip_prefix(preamble().as_str()).unwrap_or(s)
}

/// Each clap_mangen section is rendered on its own and starts with the preamble; keep the first.
fn dedupe_preamble(s: &str) -> String {
    let p = preamble();
    match s.strip_prefix(p.as_str()) {
        Some(rest) => format!("{p}{}", rest.replace(p.as_str(), "")),
        None => s.replace(p.as_str(), ""),
    }
}

/// Parses an example's camstream command line with the real CLI; checks its variables exist.
fn check_example(
    root: &Command,
    line: &str,
    envs: &BTreeMap<String, EnvVar>,
) -> Result<(), String> {
    if line.contains(['"', '\'', '\\']) {
        return Err(format!(
            "example `{line}`: no quoting, please (it is parsed by splitting on spaces)"
        ));
    }
    let mut words = line.split_whitespace().peekable();
    while let Some((name, _)) = words.peek().and_then(|w| w.split_once('=')) {
        if !envs.contains_key(name) && !OTHER_ENV.iter().any(|(n, _, _)| *n == name) {
            return Err(format!("example `{line}`: no option reads {name}"));
        }
        words.next();
    }
    if words.peek() != Some(&root.get_name()) {
        return Ok(()); // another program (ffmpeg, curl): nothing to check
    }
    let argv: Vec<&str> = words
        .take_while(|w| !["|", ">", "<", "2>", "&&", ";"].contains(w))
        .collect();
    root.clone()
        .try_get_matches_from(argv)
        .map(|_| ())
        .map_err(|e| format!("example `{line}` does not parse:\n{e}"))
}
