//! Tests of what the Debian package ships that need neither root nor a package build: the
//! packaged unit is the manual-install unit with another ExecStart, the example env file holds
//! settings `camstream serve` reads and accepts, and the README's commands are what `.ci/run`
//! runs. `.ci/package-test` builds, installs and removes the package itself (root, release build).

use crate::util::{self, Server};

fn read(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The lines systemd acts on: no comments, no blank lines.
fn directives(unit: &str) -> Vec<&str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn the_packaged_unit_is_the_manual_unit_with_exec_start_in_usr_bin() {
    let manual = read("contrib/systemd/camstream@.service");
    let packaged = read("contrib/debian/camstream@.service");
    let expected: Vec<String> = directives(&manual)
        .into_iter()
        .map(|l| l.replace("ExecStart=/usr/local/bin/", "ExecStart=/usr/bin/"))
        .collect();
    assert!(
        expected
            .iter()
            .any(|l| l == "ExecStart=/usr/bin/camstream serve"),
        "contrib/systemd/camstream@.service no longer starts /usr/local/bin/camstream serve"
    );
    // Same sandbox, same settings, same order: a change to one unit must be made to both.
    assert_eq!(
        directives(&packaged),
        expected,
        "contrib/debian/camstream@.service differs from contrib/systemd/camstream@.service \
         in more than ExecStart"
    );
}

/// `NAME=value` of every setting in the example, the commented-out ones included.
fn example_settings() -> Vec<(String, String)> {
    read("contrib/debian/video0.env")
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .filter(|l| l.starts_with("CAMSTREAM_"))
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap_or_else(|| panic!("no `=` in {l}"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_example_env_file_names_only_variables_camstream_serve_reads() {
    let settings = example_settings();
    assert!(settings.len() >= 5, "{settings:?}");
    // The man page is generated from the CLI and checked for staleness (contrib.rs).
    let man = read("man/camstream-serve.1");
    for (name, _) in &settings {
        assert!(
            man.contains(&format!("\\fB{name}\\fR")),
            "contrib/debian/video0.env sets {name}, which camstream-serve(1) does not list"
        );
    }
}

#[test]
fn camstream_serve_accepts_every_example_setting_and_finds_the_camera_by_id() {
    let settings = example_settings();
    let (_, source) = settings
        .iter()
        .find(|(name, _)| name == "CAMSTREAM_SOURCE")
        .expect("the example sets CAMSTREAM_SOURCE");
    assert!(
        source.starts_with("camera:/dev/v4l/by-id/"),
        "the example should name the camera by its stable id: {source}"
    );
    let mut cmd = util::camstream();
    for (name, value) in &settings {
        // The users file exists only where an operator made one; --auth-file has its own tests.
        if name != "CAMSTREAM_AUTH_FILE" {
            cmd.env(name, value);
        }
    }
    // The fixture's --listen 127.0.0.1:0 wins over CAMSTREAM_LISTEN. No such camera here:
    // camstream starts anyway, shows NO SIGNAL and keeps retrying.
    let server = Server::start_with(cmd, &[]);
    assert!(
        server.banner.contains(&format!("serving {source} on ")),
        "{}",
        server.banner
    );
    if let Some((_, n)) = settings
        .iter()
        .find(|(name, _)| name == "CAMSTREAM_MAX_CLIENTS")
    {
        assert!(
            server.banner.contains(&format!("max {n} viewers")),
            "{}",
            server.banner
        );
    }
}

#[test]
fn the_readme_commands_are_what_ci_runs() {
    let readme = read("README.md");
    let commands: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect();
    assert!(
        commands.contains(&"bash .ci/deps build && cargo run --release -- serve --source pattern"),
        "README: the run command installs the build set only (.ci/deps build)"
    );
    let test = commands
        .iter()
        .find(|c| c.contains("cargo test"))
        .expect("README has a test command");
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l == *test),
        ".ci/run does not run the README's test command `{test}`"
    );
}
