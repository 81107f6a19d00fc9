//! The `camstream` binary: parse the command line, run the subcommand, report an error once and
//! choose the exit code (0 ok, 1 runtime error, 2 usage error, 130 after a second Ctrl-C).

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use camstream::cli::{Cli, Command};
use camstream::{list, server, settings::ServeSettings, snapshot};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::List(a) => list::run(a),
        Command::Snapshot(a) => snapshot::run(a),
        Command::Serve(a) => match ServeSettings::try_from(a) {
            Ok(s) => server::serve(&s),
            // Flags that contradict each other: a usage error, reported (exit 2) like clap's own.
            Err(why) => {
                let mut cmd = Cli::command();
                cmd.build();
                let serve = cmd.find_subcommand_mut("serve").expect("serve exists");
                serve
                    .error(clap::error::ErrorKind::ArgumentConflict, why)
                    .exit()
            }
        },
        Command::HashPassword => server::auth::hash_password_command(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `camstream list | head`: the reader left; that is not our failure.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("camstream: error: {e:#}");
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
