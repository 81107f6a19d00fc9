//! HTTP Basic authentication: who may watch.
//!
//! Credentials come from `--auth-file` (lines `user:$argon2id$...`, made by
//! `camstream hash-password`) and/or `CAMSTREAM_AUTH=user:password`. Every comparison of secret
//! material is constant-time (argon2's verifier, `subtle` for the rest) and every user is checked,
//! so timing says nothing about which user exists. argon2 is slow on purpose (tens of ms), so a
//! successful check is remembered for the header value, in a small bounded cache, so that
//! players reconnecting and snapshot polls do not pay it every time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Remembered successful logins; cleared when full, so an attacker cannot grow it.
const CACHE_MAX: usize = 64;

/// One user's secret.
enum Secret {
    /// An argon2 PHC string from the auth file.
    Hash(String),
    /// A plain password from the environment.
    Plain(Vec<u8>),
}

/// The configured users; empty means authentication is off.
#[derive(Default)]
pub struct Auth {
    users: Vec<(String, Secret)>,
    cache: Mutex<HashMap<String, ()>>,
}

impl Auth {
    /// Loads `--auth-file` and `CAMSTREAM_AUTH` (either may be absent).
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Auth> {
        let mut users = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read auth file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (user, hash) = line.split_once(':').ok_or_else(|| {
                    anyhow!(
                        "auth file {} line {}: expected user:hash",
                        path.display(),
                        n + 1
                    )
                })?;
                PasswordHash::new(hash).map_err(|e| {
                    anyhow!(
                        "auth file {} line {}: not a password hash ({e}); make one with camstream hash-password",
                        path.display(),
                        n + 1
                    )
                })?;
                users.push((user.to_string(), Secret::Hash(hash.to_string())));
            }
            if users.is_empty() {
                bail!("auth file {} lists no users", path.display());
            }
        }
        if let Some(v) = env {
            let (user, pass) = v
                .split_once(':')
                .filter(|(u, p)| !u.is_empty() && !p.is_empty())
                .ok_or_else(|| anyhow!("CAMSTREAM_AUTH must be user:password"))?;
            users.push((user.to_string(), Secret::Plain(pass.as_bytes().to_vec())));
        }
        Ok(Auth {
            users,
            cache: Mutex::default(),
        })
    }

    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the `Authorization` header value carries valid credentials.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(header) = header else { return false };
        if self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(header)
        {
            return true;
        }
        let Some((user, pass)) = decode_basic(header) else {
            return false;
        };
        let mut ok = subtle::Choice::from(0);
        for (name, secret) in &self.users {
            let name_ok = name.as_bytes().ct_eq(user.as_bytes());
            let pass_ok = match secret {
                Secret::Plain(p) => p.as_slice().ct_eq(pass.as_bytes()),
                Secret::Hash(h) => {
                    let good = PasswordHash::new(h)
                        .map(|h| {
                            Argon2::default()
                                .verify_password(pass.as_bytes(), &h)
                                .is_ok()
                        })
                        .unwrap_or(false);
                    subtle::Choice::from(u8::from(good))
                }
            };
            ok |= name_ok & pass_ok;
        }
        let ok: bool = ok.into();
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(header.to_string(), ());
        }
        ok
    }
}

/// `Basic base64(user:password)` → (user, password).
fn decode_basic(header: &str) -> Option<(String, String)> {
    let (scheme, b64) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Hashes a password for the auth file (argon2id, a random salt, the crate's default cost).
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("cannot make a salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

fn getrandom(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("cannot read /dev/urandom for a salt")
}

/// `camstream hash-password`: reads one password from stdin (without echo on a terminal) and
/// prints its hash.
pub fn hash_password_command() -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn hashed_and_plain_users_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(
            &file,
            format!("# viewers\nalice:{}\n", hash_password("s3cret").unwrap()),
        )
        .unwrap();
        let auth = Auth::load(Some(&file), Some("bob:hunter2")).unwrap();
        assert!(auth.enabled());
        assert!(auth.check(Some(&basic("alice", "s3cret"))));
        assert!(auth.check(Some(&basic("alice", "s3cret")))); // cached
        assert!(auth.check(Some(&basic("bob", "hunter2"))));
        assert!(!auth.check(Some(&basic("alice", "hunter2"))));
        assert!(!auth.check(Some(&basic("bob", "s3cret"))));
        assert!(!auth.check(Some(&basic("carol", "s3cret"))));
        assert!(!auth.check(Some("Bearer abc")));
        assert!(!auth.check(Some("Basic !!!")));
        assert!(!auth.check(None));
    }

    #[test]
    fn bad_auth_config_is_an_error_naming_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "alice:plaintext\n").unwrap();
        let e = Auth::load(Some(&file), None).err().unwrap().to_string();
        assert!(e.contains("line 1") && e.contains("hash-password"), "{e}");
        assert!(Auth::load(Some(&dir.path().join("missing")), None).is_err());
        assert!(Auth::load(None, Some("nocolon")).is_err());
        assert!(!Auth::load(None, None).unwrap().enabled());
    }
}
