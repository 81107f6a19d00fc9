//! `cargo xtask gen`: every generated file, its comparison with the committed one, and the copy
//! of the command tree without hidden subcommands and flags that the completions are made from.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use clap::{ArgGroup, Command, CommandFactory};
use clap_complete::Shell;

use crate::man;

/// Folders whose every file is generated; a file in them that `gen` would not write is extra.
pub const OUT_DIRS: [&str; 2] = ["man", "completions"];

/// The shells completions are generated for; file names are clap_complete's usual ones
/// (camstream.bash, _camstream, camstream.fish, camstream.elv, _camstream.ps1).
const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// The camstream command tree, as the binary has it.
pub fn camstream_command() -> Command {
    camstream::cli::Cli::command()
}

/// Every generated file for `cmd` (not yet built): path relative to the repository root, and
/// its bytes.
pub fn generate(cmd: &Command) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    // Building sets the bin names and propagates the version flag. The man pages leave out
    // clap's `help` subcommand, which has no page; the completions keep it (it works).
    let mut for_man = cmd.clone().disable_help_subcommand(true);
    for_man.build();
    for (name, page) in man::pages(&for_man)? {
        files.insert(format!("man/{name}"), page);
    }
    let mut cmd = cmd.clone();
    cmd.build();
    let cmd = &cmd;
    let shown = visible(cmd);
    let bin = cmd.get_name();
    for shell in SHELLS {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut shown.clone(), bin, &mut buf);
        files.insert(
            format!(
                "completions/{}",
                clap_complete::Generator::file_name(&shell, bin)
            ),
            buf,
        );
    }
    check_nothing_hidden_leaks(cmd, &files)?;
    Ok(files)
}

/// Writes (or with `check`, compares) every generated file. Returns whether all were up to date.
pub fn run(root: &Path, check: bool) -> Result<bool, String> {
    let files = generate(&camstream_command())?;
    let mut stale = Vec::new();
    for (rel, want) in &files {
        let path = root.join(rel);
        match fs::read(&path) {
            Ok(have) if have == *want => continue,
            Ok(_) => stale.push(format!("{rel} (differs)")),
            Err(_) => stale.push(format!("{rel} (missing)")),
        }
        if !check {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            fs::write(&path, want).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    for dir in OUT_DIRS {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut extra: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
            .filter(|rel| !files.contains_key(rel))
            .collect();
        extra.sort();
        for rel in extra {
            if !check {
                fs::remove_file(root.join(&rel))
                    .map_err(|e| format!("cannot remove {rel}: {e}"))?;
            }
            stale.push(format!("{rel} (not generated any more)"));
        }
    }
    if check {
        if stale.is_empty() {
            println!("xtask: {} generated files are up to date", files.len());
        } else {
            eprintln!("xtask: these files differ from what the current CLI generates:");
            for s in &stale {
                eprintln!("  {s}");
            }
            eprintln!("xtask: run `cargo xtask gen` and commit the result");
        }
    } else {
        for s in &stale {
            println!("xtask: updated {s}");
        }
        println!(
            "xtask: {} files generated, {} changed",
            files.len(),
            stale.len()
        );
    }
    Ok(stale.is_empty())
}

/// A copy of `cmd` (built) without hidden subcommands and arguments, for clap_complete, which
/// otherwise completes them. Keeps what completions use: names, bin names, about texts, visible
/// aliases, the arguments themselves (cloned whole: help, value names, hints, possible values),
/// groups restricted to visible members, and the settings that change what is completed.
pub fn visible(cmd: &Command) -> Command {
    // The help and version flags of a built command are already among its arguments.
    let mut out = Command::new(leak(cmd.get_name()))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .subcommand_required(cmd.is_subcommand_required_set())
        .arg_required_else_help(cmd.is_arg_required_else_help_set())
        .args_conflicts_with_subcommands(cmd.is_args_conflicts_with_subcommands_set())
        .allow_external_subcommands(cmd.is_allow_external_subcommands_set())
        .visible_aliases(cmd.get_visible_aliases().map(leak).collect::<Vec<_>>());
    if let Some(b) = cmd.get_bin_name() {
        out = out.bin_name(b.to_owned());
    }
    if let Some(d) = cmd.get_display_name() {
        out = out.display_name(d.to_owned());
    }
    if let Some(v) = cmd.get_version() {
        out = out.version(leak(v));
    }
    if let Some(a) = cmd.get_about() {
        out = out.about(a.clone());
    }
    if let Some(a) = cmd.get_long_about() {
        out = out.long_about(a.clone());
    }
    // A built command's global flags (--log-level) are already copied into the subcommands
    // that take them (not into clap's `help`); marked global again, they would spread there too.
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        out = out.arg(arg.clone().global(false));
    }
    for group in cmd.get_groups() {
        let members: Vec<_> = group
            .get_args()
            .filter(|id| {
                cmd.get_arguments()
                    .any(|a| a.get_id() == *id && !a.is_hide_set())
            })
            .cloned()
            .collect();
        if !members.is_empty() {
            out = out.group(
                ArgGroup::new(group.get_id().clone())
                    .args(members)
                    .multiple(group.clone().is_multiple())
                    .required(group.is_required_set()),
            );
        }
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out = out.subcommand(visible(sub));
    }
    out
}

/// clap (without its `string` feature, which would make camstream's clap a second build)
/// takes only `&'static str` names; this process is short-lived.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Fails if a hidden subcommand or long flag appears in any generated file: the filter above
/// and clap_mangen's own are what keep them out, and this proves they did.
fn check_nothing_hidden_leaks(
    cmd: &Command,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    let mut hidden = Vec::new();
    collect_hidden(cmd, &mut hidden);
    for (rel, bytes) in files {
        let text = String::from_utf8_lossy(bytes);
        // A subcommand's name may well be an ordinary word of some man page's prose.
        let in_prose = |w: &str| !w.starts_with(['-', '\\']) && rel.starts_with("man/");
        for word in hidden.iter().filter(|w| !in_prose(w)) {
            if contains_word(&text, word) {
                return Err(format!("hidden `{word}` appears in {rel}"));
            }
        }
    }
    Ok(())
}

/// Hidden long flags (as `--name`, roff-escaped too) and hidden subcommand names under `cmd`.
fn collect_hidden(cmd: &Command, out: &mut Vec<String>) {
    for arg in cmd.get_arguments().filter(|a| a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            // Another visible subcommand may own a visible flag of the same name.
            if !any_visible_long(cmd, long) {
                out.push(format!("--{long}"));
                out.push(format!("\\-\\-{long}"));
            }
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            out.push(sub.get_name().to_owned());
        } else {
            collect_hidden(sub, out);
        }
    }
}

fn any_visible_long(cmd: &Command, long: &str) -> bool {
    cmd.get_arguments()
        .any(|a| !a.is_hide_set() && a.get_long() == Some(long))
        || cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .any(|s| any_visible_long(s, long))
}

/// `word` occurs in `text` and not as part of a longer name.
fn contains_word(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        // A flag (`--x`) may follow anything but a letter or digit; a name not even a `-`.
        let starts = match before {
            None => true,
            Some(c) if word.starts_with(['-', '\\']) => !c.is_ascii_alphanumeric(),
            Some(c) => !is_name(c),
        };
        starts && !after.is_some_and(is_name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Arg;

    fn with_hidden() -> Command {
        Command::new("demo")
            .version("1.0")
            .propagate_version(true)
            .subcommand(
                Command::new("run")
                    .about("Runs.")
                    .arg(
                        Arg::new("speed")
                            .long("speed")
                            .env("DEMO_SPEED")
                            .help("How fast."),
                    )
                    .arg(
                        Arg::new("secret-knob")
                            .long("secret-knob")
                            .env("DEMO_SECRET_KNOB")
                            .hide(true),
                    ),
            )
            .subcommand(
                Command::new("internal-debug")
                    .about("Not for users.")
                    .hide(true),
            )
    }

    #[test]
    fn generate_leaves_out_hidden_things() {
        let files = generate(&with_hidden()).unwrap();
        assert!(
            files.contains_key("man/demo-run.1") && files.contains_key("completions/_demo.ps1")
        );
        for (name, bytes) in &files {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("secret") && !text.contains("internal-debug"),
                "{name}: {text}"
            );
        }
    }

    #[test]
    fn completions_leave_out_hidden_subcommands_and_flags() {
        let mut cmd = with_hidden();
        cmd.build();
        let shown = visible(&cmd);
        for shell in SHELLS {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut shown.clone(), "demo", &mut buf);
            let text = String::from_utf8(buf).unwrap();
            assert!(text.contains("speed"), "{shell}: {text}");
            assert!(!text.contains("secret-knob"), "{shell}: {text}");
            assert!(!text.contains("internal-debug"), "{shell}: {text}");
        }
    }

    #[test]
    fn the_filter_changes_nothing_when_nothing_is_hidden() {
        let mut cmd = camstream_command();
        cmd.build();
        let mut hidden = Vec::new();
        collect_hidden(&cmd, &mut hidden);
        if !hidden.is_empty() {
            return; // then the output differs, as it should; the leak check covers it
        }
        for shell in SHELLS {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            clap_complete::generate(shell, &mut cmd.clone(), "camstream", &mut a);
            clap_complete::generate(shell, &mut visible(&cmd), "camstream", &mut b);
            assert_eq!(
                String::from_utf8(a).unwrap(),
                String::from_utf8(b).unwrap(),
                "{shell}"
            );
        }
    }

    #[test]
    fn the_leak_check_catches_hidden_names() {
        let mut cmd = with_hidden();
        cmd.build();
        let mut files = BTreeMap::new();
        files.insert("x".to_owned(), b"use --speed here".to_vec());
        assert!(check_nothing_hidden_leaks(&cmd, &files).is_ok());
        files.insert("y".to_owned(), b"complete --secret-knob".to_vec());
        assert!(check_nothing_hidden_leaks(&cmd, &files).is_err());
    }

    #[test]
    fn man_pages_leave_out_hidden_things_and_list_only_visible_environment() {
        let mut cmd = with_hidden().disable_help_subcommand(true);
        cmd.build();
        let pages = man::pages(&cmd).unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["demo.1", "demo-run.1"]);
        let all: String = pages
            .iter()
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert!(all.contains("DEMO_SPEED"));
        assert!(
            !all.contains("DEMO_SECRET_KNOB")
                && !all.contains("secret")
                && !all.contains("internal")
        );
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(
            generate(&camstream_command()).unwrap(),
            generate(&camstream_command()).unwrap()
        );
    }
}
