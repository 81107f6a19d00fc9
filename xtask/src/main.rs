//! Development tasks for camstream, run as `cargo xtask TASK` (an alias in .cargo/config.toml).
//!
//! `gen` writes the man pages (man/*.1) and the shell completions (completions/*) from the clap
//! definition in `camstream::cli`; `gen --check` writes nothing and exits 1 naming every file that
//! differs from what the current CLI generates (tests/contrib.rs runs it). Hidden subcommands and
//! flags are left out of both: clap_mangen skips them by itself, clap_complete does not, so the
//! completions are generated from a copy of the command tree without them (see [`gen::visible`]).

mod gen;
mod man;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask gen [--check]

  gen          write man/*.1 and completions/* from the clap definition (src/cli.rs)
  gen --check  write nothing; exit 1 and name the files that are stale, missing or extra";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["gen"] => gen::run(&workspace_root(), false),
        ["gen", "--check"] => gen::run(&workspace_root(), true),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The repository root: the parent of this crate's folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
