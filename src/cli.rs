//! The command-line interface, declared with clap: subcommands, flags, help texts.
//!
//! This module only declares; value parsers and value types live in [`crate::settings`], and
//! each command ([`crate::cmd`]) turns its parsed flags into validated settings. Every flag can also be set from a `CAMSTREAM_*`
//! environment variable, for service files.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::settings::{self, FormatChoice, LogLevel, Size, SourceSpec};
use crate::source::controls::Assignment;

/// Turn a camera into a bounded, observable MJPEG-over-HTTP service.
#[derive(Debug, Parser)]
#[command(
    name = "camstream",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// How much to log on stderr: off, error, warn (the default: warnings and errors), info
    /// (also events such as a viewer evicted), debug (also every connection, by address) or
    /// trace. It sets camstream's own level; other libraries log only their warnings and
    /// errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under
    /// systemd (JOURNAL_STREAM names stderr), lines carry journald priorities.
    #[arg(
        long,
        global = true,
        env = "CAMSTREAM_LOG_LEVEL",
        value_enum,
        value_name = "LEVEL"
    )]
    pub log_level: Option<LogLevel>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List cameras with their formats, sizes and frame rates.
    List(ListArgs),
    /// Write one JPEG from the source to a file (or "-" for stdout).
    Snapshot(SnapshotArgs),
    /// Serve the source as a live MJPEG stream, snapshots, health and Prometheus metrics.
    ///
    /// Resources are fixed by the settings, whatever arrives: at most --max-clients viewers
    /// stream at once (the next one gets 503 with Retry-After at once), at most
    /// --max-connections connections are open, and the process runs at most
    /// workers + senders + 4 threads (+ 1 password verifier with --auth-file), where senders
    /// is one per core, at most four (the capture thread, the connection thread, the main
    /// thread and the signal thread make the 4). The bound is printed at start.
    Serve(ServeArgs),
    /// Show a camera's controls (focus, exposure, white balance, ...), or set them and show what
    /// the camera accepted.
    Controls(ControlsArgs),
    /// Hash a password (read from stdin) for a line `user:HASH` of an --auth-file.
    HashPassword,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array instead of text.
    #[arg(long, env = "CAMSTREAM_JSON")]
    pub json: bool,
}

/// Where frames come from and how they are encoded; shared by `snapshot` and `serve`.
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// Frame source: camera (the first capture camera), camera:N, camera:/dev/videoN or a
    /// /dev/v4l/by-id/... path, pattern (a synthetic moving test pattern), file:PATH (an MJPEG
    /// file of at most 512 MiB or a folder of .jpg files, looped; frames over 32 MiB and folder
    /// entries that are not regular files are skipped and counted), or http://URL (relay another MJPEG server or a
    /// camera's stream or snapshot URL; its user and password come from the URL or from
    /// CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD).
    #[arg(long, env = "CAMSTREAM_SOURCE", default_value = "camera", value_name = "SOURCE",
          value_parser = settings::parse_source)]
    pub source: SourceSpec,

    /// Frame size WIDTHxHEIGHT (even numbers, 16..=7680 by 16..=4320). A camera that does not
    /// offer it streams the nearest size it has (with a warning); file sources keep the size of
    /// their own frames.
    #[arg(long, env = "CAMSTREAM_SIZE", default_value = "640x480", value_name = "WxH",
          value_parser = settings::parse_size)]
    pub size: Size,

    /// Frames per second to capture (1..=120).
    #[arg(long, env = "CAMSTREAM_FPS", default_value_t = 30, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,

    /// JPEG quality for frames that camstream encodes (1..=100).
    #[arg(long, env = "CAMSTREAM_QUALITY", default_value_t = 80, value_name = "1..100",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,

    /// Camera pixel format: auto prefers MJPEG so frames pass through without re-encoding.
    #[arg(long, env = "CAMSTREAM_FORMAT", value_enum, default_value_t = FormatChoice::Auto)]
    pub format: FormatChoice,

    /// How long opening the source (a big file too) or waiting for a frame may take before the
    /// source counts as failed (e.g. 5s, 500ms).
    #[arg(long, env = "CAMSTREAM_TIMEOUT", default_value = "5s", value_name = "DURATION",
          value_parser = settings::parse_duration)]
    pub timeout: Duration,

    /// Set a camera control when the camera opens and again after every reconnect, e.g.
    /// --control focus_automatic_continuous=0 --control focus_absolute=40 (applied in order;
    /// names as `camstream controls` shows them, menu values by number or name). Repeatable, and
    /// each takes a comma-separated list too, as does CAMSTREAM_CONTROLS (used when no --control
    /// is given). An unknown name or a value out of range
    /// is a usage error when the camera is present at start, else a warning when it opens; a
    /// control the camera refuses is a warning and the stream goes on.
    #[arg(long = "control", env = "CAMSTREAM_CONTROLS", value_name = "NAME=VALUE",
          value_delimiter = ',', value_parser = settings::parse_control)]
    pub control: Vec<Assignment>,
}

#[derive(Debug, Args)]
pub struct ControlsArgs {
    /// The camera: camera (the first capture camera), camera:N, camera:/dev/videoN or a
    /// /dev/v4l/by-id/... path.
    #[arg(long, env = "CAMSTREAM_SOURCE", default_value = "camera", value_name = "SOURCE",
          value_parser = settings::parse_source)]
    pub source: SourceSpec,

    /// Print JSON instead of text.
    #[arg(long, env = "CAMSTREAM_JSON")]
    pub json: bool,

    /// Controls to set, in this order (so autofocus can be turned off before the focus is
    /// set); then the values the camera accepted are printed (drivers clamp and round).
    #[arg(value_name = "NAME=VALUE", value_parser = settings::parse_control)]
    pub assignments: Vec<Assignment>,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Output file, replaced atomically; an existing file keeps its owner and mode, and a
    /// symbolic link's target is replaced (the link stays). "-" or /dev/stdout writes to
    /// stdout; a FIFO is written in place; device nodes, sockets and directories are refused.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Camera warm-up frames to discard first, so that exposure has settled.
    #[arg(long, env = "CAMSTREAM_SKIP", default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub skip: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "CAMSTREAM_LISTEN", default_value = "127.0.0.1:8080", value_name = "ADDR",
          value_parser = settings::parse_listen)]
    pub listen: std::net::SocketAddr,

    /// Most concurrent stream viewers; the next one gets 503 with Retry-After at once.
    #[arg(long, env = "CAMSTREAM_MAX_CLIENTS", default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub max_clients: u32,

    /// Most open connections of any kind (viewers, requests being read or answered, idle
    /// sockets); at least --max-clients. At the cap, a connection still sending its request head
    /// is closed to make room (see --max-pending-per-ip); only when none is left is a newcomer
    /// answered 503. Default: what the open-file limit allows (its hard limit minus 128), at
    /// most 16384 and at least max-clients + 64.
    #[arg(long, env = "CAMSTREAM_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=60000))]
    pub max_connections: Option<u32>,

    /// Share of the connections still sending their request head that one IP address (for
    /// IPv6, one /64) keeps when room must be made: at the connection cap, the address with the
    /// most such connections, if more than this, loses its oldest first; otherwise the oldest of
    /// all goes.
    #[arg(long, env = "CAMSTREAM_MAX_PENDING_PER_IP", default_value_t = 64, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=60000))]
    pub max_pending_per_ip: u32,

    /// Threads answering short requests (/snapshot, /metrics, /state, /healthz, /).
    #[arg(long, env = "CAMSTREAM_WORKERS", default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,

    /// A viewer that accepts no data for this long is disconnected and its slot freed.
    #[arg(long, env = "CAMSTREAM_SEND_TIMEOUT", default_value = "10s", value_name = "DURATION",
          value_parser = settings::parse_duration)]
    pub send_timeout: Duration,

    /// Time a client has to send its request line and headers.
    #[arg(long, env = "CAMSTREAM_HEADER_TIMEOUT", default_value = "5s", value_name = "DURATION",
          value_parser = settings::parse_duration)]
    pub header_timeout: Duration,

    /// Send Access-Control-Allow-Origin with this value and answer CORS preflights: an origin
    /// (scheme://host or scheme://host:port, as a browser sends it in Origin) or *.
    #[arg(long, env = "CAMSTREAM_ALLOW_ORIGIN", value_name = "ORIGIN",
          value_parser = settings::parse_origin)]
    pub allow_origin: Option<String>,

    /// Most concurrent stream viewers from one IP address (default: no per-address limit).
    #[arg(long, env = "CAMSTREAM_MAX_CLIENTS_PER_IP", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub max_clients_per_ip: Option<u32>,

    /// Require HTTP Basic authentication: a file of `user:HASH` lines (see hash-password;
    /// argon2 costs up to m=64 MiB, t=8, p=16). SIGHUP reloads it.
    /// CAMSTREAM_AUTH=user:password adds a user from the environment.
    #[arg(long, env = "CAMSTREAM_AUTH_FILE", value_name = "PATH")]
    pub auth_file: Option<std::path::PathBuf>,

    /// Endpoints reachable without authentication (comma-separated: healthz, metrics, state,
    /// snapshot, stream, index), so probes and scrapers need no password. "none" for none.
    #[arg(long, env = "CAMSTREAM_AUTH_EXEMPT", value_name = "LIST", default_value = "healthz",
          value_parser = settings::parse_endpoints)]
    pub auth_exempt: settings::Endpoints,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
