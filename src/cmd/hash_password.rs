//! `camstream hash-password`: reads one password from stdin, with echo off on a terminal (and
//! restored on Ctrl-C), and prints its argon2 hash for a line `user:HASH` of an `--auth-file`.
//! The hashing itself is the auth module's ([`crate::server::auth::hash_password`]).

use anyhow::{bail, Context, Result};

use crate::server::auth::hash_password;

/// `camstream hash-password`: reads one password from stdin (without echo on a terminal) and
/// prints its hash.
pub fn run() -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
    }
    let echo = tty.then(EchoOff::new).flatten();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    drop(echo);
    if tty {
        eprintln!();
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("empty password on stdin");
    }
    println!("{}", hash_password(password)?);
    Ok(())
}

/// Turns terminal echo off while alive.
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed, then filled, termios.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            // Ctrl-C at the prompt must not leave the terminal without echo.
            let _ = ctrlc::set_handler(move || {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
                eprintln!();
                std::process::exit(130);
            });
            t.c_lflag &= !libc::ECHO;
            (libc::tcsetattr(0, libc::TCSANOW, &t) == 0).then_some(EchoOff(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the attributes saved in new().
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}
