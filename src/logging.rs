//! Log lines on stderr, through the `log` facade and `env_logger`: one line per event, naming
//! its subject (the source, the client's address, the limit hit).
//!
//! Levels: `--log-level` (or `CAMSTREAM_LOG_LEVEL`) sets camstream's own level, and other crates
//! log their warnings and errors only; without it `RUST_LOG` is honoured in full (`env_logger`
//! syntax, e.g. `camstream::server=debug`); the default is `warn`. Nothing is logged per frame
//! or per request below `info`.
//!
//! Lines keep the style camstream always had: `camstream: error: ...`, `camstream: warning:
//! ...`, `camstream: info: ...`, `camstream: debug: ...`. [`NOTICE`] lines answer an operator's
//! own action (shutting down on a signal, reloading the auth file) and show unless warnings are
//! turned off: `camstream: shutting down`. The start line is no log line: `serve` prints it on
//! stdout whatever the level, since scripts read the bound address from it.
//!
//! Under systemd (`JOURNAL_STREAM` names our stderr), each line starts with its syslog priority
//! (`<3>` error, `<4>` warning, `<5>` notice, `<6>` info, `<7>` debug), which journald strips and
//! records, so `journalctl -p warning` shows exactly the warnings and errors.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::settings::LogLevel;

/// The target of notices: `log::info!(target: NOTICE, ...)`.
pub const NOTICE: &str = "camstream::notice";

/// Whether lines carry journald priority prefixes; set once by [`init`].
static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Installs the logger. `level` is `--log-level`; `rust_log` the `RUST_LOG` variable;
/// `journal_stream` the `JOURNAL_STREAM` variable.
pub fn init(level: Option<LogLevel>, rust_log: Option<&str>, journal_stream: Option<&str>) {
    let journal = journal_stream.is_some_and(names_stderr);
    JOURNAL.store(journal, Ordering::Relaxed);
    let filtered = || {
        let mut b = env_logger::Builder::new();
        match (level, rust_log.filter(|s| !s.trim().is_empty())) {
            (Some(level), _) => {
                let level = LevelFilter::from(level);
                b.filter_level(level.min(LevelFilter::Warn));
                b.filter_module("camstream", level);
            }
            (None, Some(spec)) => {
                b.parse_filters(spec);
            }
            (None, None) => {
                b.filter_level(LevelFilter::Warn);
            }
        }
        b
    };
    // Notices show wherever camstream's warnings show.
    let warnings = filtered().build().enabled(
        &Metadata::builder()
            .level(Level::Warn)
            .target("camstream")
            .build(),
    );
    let notices = if warnings {
        LevelFilter::Info
    } else {
        LevelFilter::Off
    };
    let mut b = filtered();
    b.filter_module(NOTICE, notices);
    b.target(env_logger::Target::Stderr)
        .write_style(env_logger::WriteStyle::Never)
        // env_logger writes each formatted record with one write (and ignores errors: stderr
        // may be gone after a hangup), so lines from different threads never interleave.
        .format(move |buf, record| buf.write_all(line(record, journal).as_bytes()));
    // Only fails if a logger is already installed (a second init): keep that one.
    let _ = b.try_init();
}

/// Prints `camstream: error: MSG` whatever the level: the error a command ends with.
pub fn print_error(msg: impl fmt::Display) {
    let text = format_line(
        Level::Error,
        "camstream",
        &format_args!("{msg}"),
        JOURNAL.load(Ordering::Relaxed),
    );
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn line(record: &Record<'_>, journal: bool) -> String {
    format_line(record.level(), record.target(), record.args(), journal)
}

/// One log line, newline-terminated. A multi-line message is joined into one line: journald
/// would make each line an entry of its own, and only the first would carry the priority.
fn format_line(level: Level, target: &str, args: &fmt::Arguments<'_>, journal: bool) -> String {
    let notice = target == NOTICE;
    let (priority, label) = match level {
        Level::Error => ("<3>", "error: "),
        Level::Warn => ("<4>", "warning: "),
        Level::Info if notice => ("<5>", ""),
        Level::Info => ("<6>", "info: "),
        Level::Debug => ("<7>", "debug: "),
        Level::Trace => ("<7>", "trace: "),
    };
    let mut s = String::with_capacity(96);
    if journal {
        s.push_str(priority);
    }
    s.push_str("camstream: ");
    s.push_str(label);
    // Another crate's line says whose it is.
    if target != "camstream" && !target.starts_with("camstream::") {
        s.push_str(target);
        s.push_str(": ");
    }
    let msg = args.to_string();
    s.push_str(&msg.trim_end().replace('\n', " "));
    s.push('\n');
    s
}

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd for a service whose output goes to
/// the journal) names our stderr. A process started from such a service but with its stderr
/// redirected (to a file, a pipe) inherits the variable, and must not write the prefixes.
fn names_stderr(journal_stream: &str) -> bool {
    // SAFETY: fstat on fd 2 into a zeroed stat; nothing is kept.
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(2, &mut st) != 0 {
            return false;
        }
        st
    };
    stream_matches(journal_stream, st.st_dev as u64, st.st_ino as u64)
}

fn stream_matches(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

impl From<LogLevel> for LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Off => LevelFilter::Off,
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
            LogLevel::Trace => LevelFilter::Trace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(level: Level, target: &str, msg: &str, journal: bool) -> String {
        format_line(level, target, &format_args!("{msg}"), journal)
    }

    #[test]
    fn lines_keep_the_camstream_style_without_a_journal() {
        let t = "camstream::capture";
        assert_eq!(
            fmt(Level::Warn, t, "source camera: gone", false),
            "camstream: warning: source camera: gone\n"
        );
        assert_eq!(fmt(Level::Error, t, "x", false), "camstream: error: x\n");
        assert_eq!(
            fmt(Level::Info, t, "viewer 192.0.2.1:5 evicted", false),
            "camstream: info: viewer 192.0.2.1:5 evicted\n"
        );
        assert_eq!(fmt(Level::Debug, t, "d", false), "camstream: debug: d\n");
        assert_eq!(fmt(Level::Trace, t, "t", false), "camstream: trace: t\n");
        assert_eq!(
            fmt(Level::Info, NOTICE, "shutting down", false),
            "camstream: shutting down\n"
        );
    }

    #[test]
    fn under_journald_lines_start_with_their_priority() {
        let t = "camstream::server";
        assert_eq!(fmt(Level::Error, t, "x", true), "<3>camstream: error: x\n");
        assert_eq!(fmt(Level::Warn, t, "x", true), "<4>camstream: warning: x\n");
        assert_eq!(
            fmt(Level::Info, NOTICE, "shutting down", true),
            "<5>camstream: shutting down\n"
        );
        assert_eq!(fmt(Level::Info, t, "x", true), "<6>camstream: info: x\n");
        assert_eq!(fmt(Level::Debug, t, "x", true), "<7>camstream: debug: x\n");
        assert_eq!(fmt(Level::Trace, t, "x", true), "<7>camstream: trace: x\n");
    }

    #[test]
    fn one_event_is_one_line_and_other_crates_are_named() {
        assert_eq!(
            fmt(Level::Warn, "camstream", "a\nb\n", true),
            "<4>camstream: warning: a b\n"
        );
        assert_eq!(
            fmt(Level::Warn, "tiny_http", "oops", false),
            "camstream: warning: tiny_http: oops\n"
        );
        assert_eq!(
            fmt(Level::Warn, "camstreamer", "oops", false),
            "camstream: warning: camstreamer: oops\n"
        );
    }

    #[test]
    fn journal_stream_must_name_this_stream() {
        assert!(stream_matches("64769:1234", 64769, 1234));
        assert!(stream_matches("64769:1234\n", 64769, 1234));
        assert!(!stream_matches("64769:1235", 64769, 1234));
        assert!(!stream_matches("1:1234", 64769, 1234));
        assert!(!stream_matches("", 64769, 1234));
        assert!(!stream_matches("64769", 64769, 1234));
        assert!(!stream_matches("x:y", 64769, 1234));
    }
}
