//! The `camstream` binary: parse the command line, run the subcommand ([`camstream::cmd`]),
//! report an error once and choose the exit code (0 ok, 1 runtime error, 2 usage error, 130
//! after a second Ctrl-C).

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use camstream::cli::{Cli, Command};
use camstream::cmd::{self, UsageError};
use camstream::logging;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let var = |name| std::env::var(name).ok();
    logging::init(
        cli.log_level,
        var("RUST_LOG").as_deref(),
        var("JOURNAL_STREAM").as_deref(),
    );
    let result = match &cli.command {
        Command::List(a) => cmd::list::run(a),
        Command::Snapshot(a) => cmd::snapshot::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Controls(a) => cmd::controls::run(a),
        Command::HashPassword => cmd::hash_password::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `camstream list | head`: the reader left; that is not our failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // Flags that contradict each other: a usage error, reported (exit 2) like clap's own.
        Err(e) if e.is::<UsageError>() => {
            let usage = e.downcast::<UsageError>().expect("checked above");
            let mut cmd = Cli::command();
            cmd.build();
            let sub = cmd
                .find_subcommand_mut(usage.command)
                .expect("a usage error names a subcommand");
            sub.error(clap::error::ErrorKind::ArgumentConflict, usage.message)
                .exit()
        }
        Err(e) => {
            logging::print_error(format_args!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
        || e.chain()
            .filter_map(|c| c.downcast_ref::<serde_json::Error>())
            .any(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
}
