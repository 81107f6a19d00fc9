//! HTTP Basic authentication: who may watch, and how passwords are checked without letting
//! those who guess wrong take the workers or the memory.
//!
//! Credentials come from `--auth-file` (lines `user:$argon2id$...`, made by
//! `camstream hash-password`) and/or `CAMSTREAM_AUTH=user:password`. Secrets are compared in
//! constant time (`subtle`), and a user name is looked up among all of them the same way; an
//! unknown name costs an argon2 check like a known one, so timing does not tell which exist.
//!
//! argon2 is slow and memory-hard on purpose (hash-password's cost: ~20 ms and 19 MiB a check).
//! Run on the request workers, a flood of wrong passwords held every worker, and each check's
//! fresh 19 MiB, taken from that thread's malloc arena, was never returned: 100 MB after 8 bad
//! logins, 450 MB after a few seconds (issue 9). So:
//! - a successful check is remembered for its header value, in a small bounded cache, so that
//!   players reconnecting and snapshot polls do not pay it again;
//! - a request that needs argon2 goes, connection and all, through a small bounded queue to one
//!   verifier thread ([`Gate`]), which keeps one argon2 working memory for every check
//!   ([`Memory`]), answers a wrong password 401 itself and sends a right one back to the
//!   workers; while the queue is full, such requests get 503 at once, and no worker ever waits;
//! - an address with [`FAILURES_ALLOWED`] wrong passwords within [`FAILURE_WINDOW`] gets 429
//!   without any check until that window ends;
//! - a hash costlier than [`MAX_M_COST_KIB`], [`MAX_T_COST`] or [`MAX_P_COST`] is refused at
//!   start, so the verifier's memory has a known bound.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use arc_swap::ArcSwap;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rouille::Response;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::server::app::App;
use crate::server::conn::{client_key, write_from};
use crate::server::http::{text, Outgoing, ReplyTo};
use crate::server::listener::Job;
use crate::server::routes;

/// Largest argon2 memory cost accepted from the auth file, in KiB (64 MiB). hash-password's
/// own is 19 MiB; this is also what the verifier's working memory can grow to.
pub const MAX_M_COST_KIB: u32 = 64 * 1024;
/// Largest argon2 time cost (passes over the memory) accepted; hash-password's own is 2.
pub const MAX_T_COST: u32 = 8;
/// Largest argon2 parallelism (lanes) accepted; hash-password's own is 1.
pub const MAX_P_COST: u32 = 16;
/// Wrong passwords an address may send within [`FAILURE_WINDOW`] before it gets 429.
pub const FAILURES_ALLOWED: u32 = 5;
/// How long failures are counted against an address, counted from its first one.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered; beyond it the expired are forgotten, then all, so
/// an attacker with many addresses cannot grow the table.
const ADDRESSES_TRACKED: usize = 4096;
/// Remembered successful logins; cleared when full, so an attacker cannot grow it.
const CACHE_MAX: usize = 64;
/// Requests waiting for the verifier, and verified ones waiting for a worker. At ~20 ms a
/// check, a full queue is ~160 ms of work.
const VERIFY_QUEUE: usize = 8;

/// What the credentials of a request come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// No credentials: 401 asks for them (how a browser learns to prompt; not a failure).
    Missing,
    /// Wrong credentials: 401, and one more failure for the address.
    Denied,
    /// Too many failures from this address lately: 429, to retry after this long.
    Backoff(Duration),
    /// Only argon2 can tell: a job for the verifier.
    Verify,
}

/// What a request refused by authentication gets; `None` for [`Access::Granted`]. A request
/// left at [`Access::Verify`] is one the verifier had no room for: 503, to retry shortly.
pub fn refusal(access: Access) -> Option<Response> {
    match access {
        Access::Granted => None,
        Access::Missing | Access::Denied => {
            Some(text(401, "authentication required").with_unique_header(
                "WWW-Authenticate",
                "Basic realm=\"camstream\", charset=\"UTF-8\"",
            ))
        }
        Access::Backoff(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            Some(
                text(
                    429,
                    &format!("too many wrong passwords from this address; retry in {secs} s"),
                )
                .with_unique_header("Retry-After", secs.to_string()),
            )
        }
        Access::Verify => Some(busy()),
    }
}

/// The answer while the verifier's queue is full.
fn busy() -> Response {
    text(503, "too many passwords waiting to be checked; retry later")
        .with_unique_header("Retry-After", "1")
}

/// One verifier's argon2 working memory, kept for every check (allocating it per check is what
/// left hundreds of MiB behind). It grows to the largest cost in the auth file, at most
/// [`MAX_M_COST_KIB`].
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    fn blocks(&mut self, n: usize) -> &mut [Block] {
        if self.0.len() < n {
            // Replaced, not resized: the old contents need no copying.
            self.0 = vec![Block::default(); n];
        }
        &mut self.0[..n]
    }
}

/// An argon2 hash from the auth file, parsed once.
struct Hashed {
    argon2: Argon2<'static>,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Hashed {
    /// Parses a PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) within the cost limits.
    fn parse(phc: &str) -> Result<Hashed, String> {
        let h = PasswordHash::new(phc).map_err(|e| {
            format!("not a password hash ({e}); make one with camstream hash-password")
        })?;
        let algorithm = Algorithm::try_from(h.algorithm).map_err(|_| {
            format!(
                "{} is not an argon2 hash; make one with camstream hash-password",
                h.algorithm
            )
        })?;
        let version = h
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(|e| format!("unknown argon2 version ({e})"))?
            .unwrap_or_default();
        let params = Params::try_from(&h).map_err(|e| format!("bad argon2 parameters ({e})"))?;
        for (name, value, limit, unit) in [
            ("m", params.m_cost(), MAX_M_COST_KIB, " KiB"),
            ("t", params.t_cost(), MAX_T_COST, ""),
            ("p", params.p_cost(), MAX_P_COST, ""),
        ] {
            if value > limit {
                return Err(format!(
                    "argon2 cost {name}={value} is above camstream's limit of {name}={limit}{unit}; \
                     make a new hash with camstream hash-password"
                ));
            }
        }
        let (Some(salt), Some(hash)) = (h.salt, h.hash) else {
            return Err("incomplete password hash (no salt or no hash); make one with camstream hash-password".into());
        };
        let mut buf = [0u8; 64];
        let salt = salt
            .decode_b64(&mut buf)
            .map_err(|e| format!("bad salt in the password hash ({e})"))?
            .to_vec();
        if salt.len() < argon2::MIN_SALT_LEN {
            return Err(format!(
                "the salt is shorter than {} bytes; make a new hash with camstream hash-password",
                argon2::MIN_SALT_LEN
            ));
        }
        Ok(Hashed {
            argon2: Argon2::new(algorithm, version, params),
            salt,
            hash: hash.as_bytes().to_vec(),
        })
    }

    /// Whether `password` has this hash, computed in `memory`, compared in constant time.
    fn matches(&self, password: &[u8], memory: &mut Memory) -> Choice {
        // A PHC string holds at most 64 bytes of output.
        let mut out = [0u8; 64];
        let out = &mut out[..self.hash.len()];
        let blocks = memory.blocks(self.argon2.params().block_count());
        match self
            .argon2
            .hash_password_into_with_memory(password, &self.salt, out, blocks)
        {
            Ok(()) => out.ct_eq(&self.hash),
            Err(_) => Choice::from(0),
        }
    }
}

/// One user's secret.
enum Secret {
    /// An argon2 hash from the auth file.
    Hash(Hashed),
    /// A plain password from the environment.
    Plain(Vec<u8>),
}

struct User {
    name: String,
    secret: Secret,
}

/// The configured users; empty means authentication is off.
#[derive(Default)]
struct Users(Vec<User>);

impl Users {
    fn load(file: Option<&Path>, env: Option<&str>) -> Result<Users> {
        let mut users = Vec::new();
        if let Some(path) = file {
            let at = |n: usize| format!("auth file {} line {}", path.display(), n + 1);
            let text = read_private(path)?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (name, hash) = line
                    .split_once(':')
                    .ok_or_else(|| anyhow!("{}: expected user:hash", at(n)))?;
                if name.is_empty() {
                    bail!("{}: empty user name (expected user:hash)", at(n));
                }
                let hashed = Hashed::parse(hash).map_err(|why| anyhow!("{}: {why}", at(n)))?;
                users.push(User {
                    name: name.to_string(),
                    secret: Secret::Hash(hashed),
                });
            }
            if users.is_empty() {
                bail!("auth file {} lists no users", path.display());
            }
        }
        if let Some(v) = env {
            let (name, pass) = v
                .split_once(':')
                .filter(|(u, p)| !u.is_empty() && !p.is_empty())
                .ok_or_else(|| anyhow!("CAMSTREAM_AUTH must be user:password"))?;
            users.push(User {
                name: name.to_string(),
                secret: Secret::Plain(pass.as_bytes().to_vec()),
            });
        }
        Ok(Users(users))
    }

    /// The user called `name`. Every name is compared, and none is chosen by a branch, so the
    /// time taken does not depend on which user it is.
    fn find(&self, name: &str) -> Option<&User> {
        let mut index = 0u64;
        let mut found = Choice::from(0);
        for (i, user) in self.0.iter().enumerate() {
            let hit = user.name.as_bytes().ct_eq(name.as_bytes()) & !found;
            index.conditional_assign(&(i as u64), hit);
            found |= hit;
        }
        bool::from(found).then(|| &self.0[index as usize])
    }

    /// A hash to check an unknown user's password against, so that it costs the same time.
    fn decoy(&self) -> Option<&Hashed> {
        self.0.iter().find_map(|u| match &u.secret {
            Secret::Hash(h) => Some(h),
            Secret::Plain(_) => None,
        })
    }
}

/// Reads the auth file, with a warning if other users may read or change it.
fn read_private(path: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read auth file {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        if let Some(w) = exposure_warning(path, meta.permissions().mode()) {
            // A log line, not eprintln!, which panics if stderr is gone (a reload after a hangup).
            log::warn!("{w}");
        }
    }
    Ok(text)
}

/// The warning for an auth file with `mode`, if others may read or write it.
fn exposure_warning(path: &Path, mode: u32) -> Option<String> {
    let what = match (mode & 0o004 != 0, mode & 0o002 != 0) {
        (false, false) => return None,
        (true, false) => "read (and attack offline)",
        (false, true) => "change (and add themselves)",
        (true, true) => "read and change",
    };
    Some(format!(
        "auth file {p} (mode {:o}) is open to other users, who can {what}; chmod o-rwx {p}",
        mode & 0o7777,
        p = path.display()
    ))
}

/// Failures per address, for the backoff.
#[derive(Default)]
struct Failures(HashMap<IpAddr, Tally>);

struct Tally {
    since: Instant,
    count: u32,
}

impl Failures {
    /// How long `addr` must still wait, if it is backing off.
    fn backoff(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let t = self.0.get(&addr)?;
        let left = FAILURE_WINDOW.checked_sub(now.saturating_duration_since(t.since))?;
        (t.count >= FAILURES_ALLOWED && !left.is_zero()).then_some(left)
    }

    fn record(&mut self, addr: IpAddr, now: Instant) {
        let expired = |t: &Tally| now.saturating_duration_since(t.since) >= FAILURE_WINDOW;
        if !self.0.contains_key(&addr) && self.0.len() >= ADDRESSES_TRACKED {
            self.0.retain(|_, t| !expired(t));
            if self.0.len() >= ADDRESSES_TRACKED {
                self.0.clear();
            }
        }
        let t = self.0.entry(addr).or_insert(Tally {
            since: now,
            count: 0,
        });
        if expired(t) {
            *t = Tally {
                since: now,
                count: 0,
            };
        }
        t.count = t.count.saturating_add(1);
    }
}

/// The configured users, with what is remembered about recent logins.
pub struct Auth {
    file: Option<PathBuf>,
    env: Option<String>,
    users: ArcSwap<Users>,
    cache: Mutex<HashSet<String>>,
    failures: Mutex<Failures>,
}

impl Auth {
    /// Loads `--auth-file` and `CAMSTREAM_AUTH` (either may be absent).
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<Auth> {
        Ok(Auth {
            users: ArcSwap::from_pointee(Users::load(file, env)?),
            file: file.map(Path::to_path_buf),
            env: env.map(str::to_string),
            cache: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    pub fn enabled(&self) -> bool {
        !self.users.load().0.is_empty()
    }

    /// Whether some password needs argon2, and so a verifier thread (with `--auth-file`).
    pub fn hashed(&self) -> bool {
        self.users.load().decoy().is_some()
    }

    /// Checks the `Authorization` header value of a request from `peer`, argon2 included, on
    /// the calling thread with memory of its own: for tests and the fuzz target. The server
    /// uses [`Gate`], which never runs argon2 on a worker.
    pub fn check(&self, header: Option<&str>, peer: IpAddr) -> Access {
        self.decide(header, peer, Some(&mut Memory::default()))
    }

    /// Like [`Auth::check`] but without argon2: [`Access::Verify`] when only that can tell.
    pub fn screen(&self, header: Option<&str>, peer: IpAddr) -> Access {
        self.decide(header, peer, None)
    }

    /// Like [`Auth::check`], computing argon2 in the verifier's `memory`.
    pub fn verify(&self, header: Option<&str>, peer: IpAddr, memory: &mut Memory) -> Access {
        self.decide(header, peer, Some(memory))
    }

    fn decide(&self, header: Option<&str>, peer: IpAddr, memory: Option<&mut Memory>) -> Access {
        let Some(header) = header else {
            return Access::Missing;
        };
        // Before the backoff: a user already logged in from a busy address (a proxy, say)
        // keeps working.
        if self.cache().contains(header) {
            return Access::Granted;
        }
        let addr = client_key(peer);
        if let Some(wait) = self.failures().backoff(addr, Instant::now()) {
            return Access::Backoff(wait);
        }
        let users = self.users.load();
        let ok = match decode_basic(header) {
            None => false,
            Some((name, password)) => {
                let password = password.as_bytes();
                match (users.find(&name).map(|u| &u.secret), memory) {
                    (Some(Secret::Plain(p)), _) => p.as_slice().ct_eq(password).into(),
                    (Some(Secret::Hash(_)), None) => return Access::Verify,
                    (Some(Secret::Hash(h)), Some(m)) => h.matches(password, m).into(),
                    (None, None) if users.decoy().is_some() => return Access::Verify,
                    (None, Some(m)) => {
                        if let Some(h) = users.decoy() {
                            let _ = h.matches(password, m);
                        }
                        false
                    }
                    (None, None) => false,
                }
            }
        };
        if ok {
            let mut cache = self.cache();
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(header.to_string());
            Access::Granted
        } else {
            self.failures().record(addr, Instant::now());
            Access::Denied
        }
    }

    /// Reads the users again (on SIGHUP); on an error the old ones stay. Logins remembered so
    /// far are forgotten, so a removed user or a changed password takes effect at once.
    pub fn reload(&self) -> Result<usize> {
        let users = Users::load(self.file.as_deref(), self.env.as_deref())?;
        let n = users.0.len();
        self.users.store(Arc::new(users));
        self.cache().clear();
        Ok(n)
    }

    fn cache(&self) -> MutexGuard<'_, HashSet<String>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failures(&self) -> MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SIGHUP: reloads `auth` and says how that went on stderr (never panicking: the terminal may
/// be gone, which is when a hangup comes).
pub fn reload_on_hangup(auth: &Auth) {
    let file = auth.file.as_deref().unwrap_or(Path::new("-")).display();
    match auth.reload() {
        Ok(n) => log::info!(
            target: crate::logging::NOTICE,
            "SIGHUP: reloaded auth file {file} ({n} user{})",
            if n == 1 { "" } else { "s" }
        ),
        Err(e) => log::error!("SIGHUP: {e:#}; keeping the users loaded before"),
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

/// The workers' side of authentication: each worker takes its requests through a `Gate`,
/// which answers or hands on those that need credentials, and collects what the verifier
/// has checked.
#[derive(Clone)]
pub struct Gate {
    /// To the verifier thread; `None` when no password is hashed.
    to_verifier: Option<Sender<Job>>,
    /// Requests whose password the verifier accepted.
    verified: Receiver<Job>,
}

/// What a worker got from its two queues.
enum Next {
    New(Job),
    Verified(Job),
    Closed,
    VerifierGone,
}

impl Gate {
    /// Starts the verifier thread if some password is hashed (that is, with `--auth-file`).
    /// It ends when every clone of the returned gate is dropped.
    pub fn start(app: &Arc<App>) -> Result<(Gate, Option<JoinHandle<()>>)> {
        if !app.auth.hashed() {
            let gate = Gate {
                to_verifier: None,
                verified: crossbeam_channel::never(),
            };
            return Ok((gate, None));
        }
        let (to_verifier, jobs) = crossbeam_channel::bounded(VERIFY_QUEUE);
        let (done, verified) = crossbeam_channel::bounded(VERIFY_QUEUE);
        let app = Arc::clone(app);
        let thread = std::thread::Builder::new()
            .name("verify".into())
            .spawn(move || verifier(&jobs, &done, &app))
            .context("cannot start the password verifier thread")?;
        let gate = Gate {
            to_verifier: Some(to_verifier),
            verified,
        };
        Ok((gate, Some(thread)))
    }

    /// The next request from `jobs` (or back from the verifier) that a worker may route now,
    /// its credentials accepted if it needs any; `None` once `jobs` is closed. Requests that
    /// are refused are answered here; those that need argon2 go to the verifier.
    pub fn next(&mut self, jobs: &Receiver<Job>, app: &App) -> Option<Job> {
        loop {
            let next = crossbeam_channel::select! {
                recv(jobs) -> job => job.map_or(Next::Closed, Next::New),
                recv(self.verified) -> job => job.map_or(Next::VerifierGone, Next::Verified),
            };
            match next {
                Next::New(job) => {
                    if let Some(job) = self.screen(job, app) {
                        return Some(job);
                    }
                }
                Next::Verified(job) => return Some(job),
                Next::Closed => return None,
                Next::VerifierGone => self.verified = crossbeam_channel::never(),
            }
        }
    }

    /// Returns `job` if a worker may route it; otherwise answers it or queues it for the verifier.
    fn screen(&self, job: Job, app: &App) -> Option<Job> {
        let req = &job.request;
        if !routes::needs_auth(req, app) {
            return Some(job);
        }
        let access = app
            .auth
            .screen(req.header("Authorization"), req.remote_addr().ip());
        match access {
            Access::Granted => return Some(job),
            Access::Verify => {
                let queued = match &self.to_verifier {
                    Some(tx) => tx.try_send(job).map_err(TrySendError::into_inner),
                    None => Err(job),
                };
                if let Err(job) = queued {
                    refuse(job, Access::Verify, app);
                }
            }
            refused => refuse(job, refused, app),
        }
        None
    }
}

/// The verifier thread: checks each queued password in the same memory; sends the accepted
/// requests back to the workers and answers the others.
fn verifier(jobs: &Receiver<Job>, verified: &Sender<Job>, app: &App) {
    let mut memory = Memory::default();
    for job in jobs.iter() {
        let req = &job.request;
        let access = app.auth.verify(
            req.header("Authorization"),
            req.remote_addr().ip(),
            &mut memory,
        );
        if access != Access::Granted {
            refuse(job, access, app);
            continue;
        }
        match verified.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => refuse(job, Access::Verify, app),
            // The workers are gone: shutting down.
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Answers a request that authentication refused, counts it, and closes the connection.
fn refuse(job: Job, access: Access, app: &App) {
    match access {
        Access::Denied => app.metrics.auth_failures.inc(),
        Access::Backoff(_) | Access::Verify => app.metrics.auth_throttled.inc(),
        Access::Granted | Access::Missing => {}
    }
    let Some(resp) = refusal(access) else { return };
    let Job { mut conn, request } = job;
    let to = ReplyTo {
        minor_version: conn.minor_version,
        head_only: request.method() == "HEAD",
        allow_origin: app.settings.allow_origin.as_deref().map(Arc::from),
    };
    // The socket is non-blocking and a refusal is a few hundred bytes: one write, never a wait.
    let out = Outgoing::new(resp, &to);
    let _ = write_from(&mut conn.stream, &out.bufs(), 0);
    let _ = conn.stream.shutdown(std::net::Shutdown::Write);
    // Dropping `conn` closes it and frees its connection permit.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    /// A distinct client address per use, so the backoff stays out of tests about other things.
    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    fn users_file(dir: &Path, text: &str) -> PathBuf {
        let file = dir.join("users");
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn hashed_and_plain_users_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_password("s3cret").unwrap();
        let file = users_file(dir.path(), &format!("# viewers\nalice:{hash}\n"));
        let auth = Auth::load(Some(&file), Some("bob:hunter2")).unwrap();
        assert!(auth.enabled() && auth.hashed());
        let check = |user, pass, n| auth.check(Some(&basic(user, pass)), ip(n));
        assert_eq!(check("alice", "s3cret", 1), Access::Granted);
        assert_eq!(check("alice", "s3cret", 1), Access::Granted); // cached
        assert_eq!(check("bob", "hunter2", 2), Access::Granted);
        assert_eq!(check("alice", "hunter2", 3), Access::Denied);
        assert_eq!(check("bob", "s3cret", 4), Access::Denied);
        assert_eq!(check("carol", "s3cret", 5), Access::Denied);
        assert_eq!(check("", "s3cret", 5), Access::Denied);
        assert_eq!(auth.check(Some("Bearer abc"), ip(6)), Access::Denied);
        assert_eq!(auth.check(Some("Basic !!!"), ip(7)), Access::Denied);
        assert_eq!(auth.check(None, ip(8)), Access::Missing);
        assert!(!Auth::load(None, None).unwrap().enabled());
        assert!(!Auth::load(None, Some("bob:hunter2")).unwrap().hashed());
    }

    #[test]
    fn screening_never_runs_argon2_and_the_verifier_reuses_its_memory() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hash_password("s3cret").unwrap();
        let file = users_file(dir.path(), &format!("alice:{hash}\n"));
        let auth = Auth::load(Some(&file), Some("bob:hunter2")).unwrap();
        let (good, bad) = (basic("alice", "s3cret"), basic("alice", "nope"));
        // Hashed users, and unknown ones (who must cost the same), wait for the verifier;
        // plain passwords are cheap and decided at once.
        assert_eq!(auth.screen(Some(&good), ip(1)), Access::Verify);
        assert_eq!(
            auth.screen(Some(&basic("mallory", "x")), ip(1)),
            Access::Verify
        );
        assert_eq!(
            auth.screen(Some(&basic("bob", "hunter2")), ip(1)),
            Access::Granted
        );
        assert_eq!(auth.screen(Some(&basic("bob", "x")), ip(2)), Access::Denied);

        let mut memory = Memory::default();
        assert_eq!(auth.verify(Some(&bad), ip(3), &mut memory), Access::Denied);
        let blocks = Params::DEFAULT.block_count();
        assert_eq!(memory.0.len(), blocks, "hash-password's 19 MiB, no more");
        let at = memory.0.as_ptr();
        assert_eq!(
            auth.verify(Some(&good), ip(3), &mut memory),
            Access::Granted
        );
        assert_eq!(
            auth.verify(Some(&basic("eve", "x")), ip(4), &mut memory),
            Access::Denied
        );
        assert_eq!(
            (memory.0.as_ptr(), memory.0.len()),
            (at, blocks),
            "the same memory"
        );
        // Once accepted, the header is remembered: no more argon2 for it.
        assert_eq!(auth.screen(Some(&good), ip(5)), Access::Granted);
    }

    #[test]
    fn an_address_that_keeps_failing_backs_off_without_a_check() {
        let auth = Auth::load(None, Some("bob:hunter2")).unwrap();
        let good = basic("bob", "hunter2");
        assert_eq!(auth.check(Some(&good), ip(1)), Access::Granted);
        for _ in 0..FAILURES_ALLOWED {
            assert_eq!(
                auth.check(Some(&basic("bob", "guess")), ip(1)),
                Access::Denied
            );
        }
        let Access::Backoff(wait) = auth.check(Some(&basic("bob", "guess")), ip(1)) else {
            panic!("no backoff");
        };
        assert!(
            wait <= FAILURE_WINDOW && wait > FAILURE_WINDOW / 2,
            "{wait:?}"
        );
        // Not even the right password is checked now, unless it was accepted before.
        assert!(matches!(
            auth.check(Some(&basic("bob", "hunter2 ")), ip(1)),
            Access::Backoff(_)
        ));
        assert_eq!(auth.check(Some(&good), ip(1)), Access::Granted);
        // Others are not affected; asking without credentials is no failure.
        assert_eq!(
            auth.check(Some(&basic("bob", "guess")), ip(2)),
            Access::Denied
        );
        for _ in 0..2 * FAILURES_ALLOWED {
            assert_eq!(auth.check(None, ip(3)), Access::Missing);
        }
        assert_eq!(
            auth.check(Some(&basic("bob", "guess")), ip(3)),
            Access::Denied
        );
    }

    #[test]
    fn failures_expire_and_their_table_is_bounded() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let a = ip(1);
        for _ in 0..FAILURES_ALLOWED {
            assert_eq!(f.backoff(a, t0), None);
            f.record(a, t0);
        }
        assert_eq!(f.backoff(a, t0), Some(FAILURE_WINDOW));
        assert_eq!(f.backoff(a, t0 + FAILURE_WINDOW), None);
        f.record(a, t0 + FAILURE_WINDOW);
        assert_eq!(f.backoff(a, t0 + FAILURE_WINDOW), None, "a new window");
        for n in 0..3 * ADDRESSES_TRACKED as u32 {
            f.record(IpAddr::from(n.to_be_bytes()), t0);
            assert!(f.0.len() <= ADDRESSES_TRACKED);
        }
        // IPv6 is counted per /64; an IPv4-mapped address as the IPv4 one.
        let v6 = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(v6("2001:db8::1"), v6("2001:db8::ffff:2"));
        assert_ne!(v6("2001:db8::1"), v6("2001:db8:0:1::1"));
        assert_eq!(v6("::ffff:192.0.2.1"), ip(1));
    }

    #[test]
    fn bad_auth_config_is_an_error_naming_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| {
            let file = users_file(dir.path(), text);
            let e = Auth::load(Some(&file), None).err().unwrap().to_string();
            assert!(e.contains(file.to_str().unwrap()), "{e}");
            e
        };
        let e = err("alice:plaintext\n");
        assert!(e.contains("line 1") && e.contains("hash-password"), "{e}");
        let ok = hash_password("x").unwrap();
        let e = err(&format!("# users\n:{ok}\n"));
        assert!(e.contains("line 2") && e.contains("empty user name"), "{e}");
        let costly = ok.replace("m=19456", "m=262144");
        let e = err(&format!("alice:{costly}\n"));
        assert!(
            e.contains("line 1") && e.contains("m=262144") && e.contains("m=65536"),
            "{e}"
        );
        let e = err(&format!("alice:{}\n", ok.replace("t=2", "t=9")));
        assert!(e.contains("t=9") && e.contains("limit of t=8"), "{e}");
        let e = err("alice:$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n");
        assert!(e.contains("not an argon2 hash"), "{e}");
        let e = err("# nobody\n");
        assert!(e.contains("lists no users"), "{e}");
        assert!(Auth::load(Some(&dir.path().join("missing")), None).is_err());
        assert!(Auth::load(None, Some("nocolon")).is_err());
        assert!(Auth::load(None, Some(":pass")).is_err());
    }

    #[test]
    fn hash_password_output_is_within_the_limits() {
        let hash = hash_password("x").unwrap();
        let h = Hashed::parse(&hash).unwrap();
        let p = h.argon2.params();
        assert!(
            p.m_cost() <= MAX_M_COST_KIB && p.t_cost() <= MAX_T_COST && p.p_cost() <= MAX_P_COST
        );
        // RFC 9106's second recommendation (argon2-cffi's default) passes too.
        let rfc = hash.replace("m=19456,t=2,p=1", "m=65536,t=3,p=4");
        assert!(Hashed::parse(&rfc).is_ok());
    }

    #[test]
    fn an_auth_file_open_to_others_is_warned_about() {
        let p = Path::new("/etc/camstream/users");
        for mode in [0o100600, 0o640, 0o400, 0o660] {
            assert_eq!(exposure_warning(p, mode), None, "{mode:o}");
        }
        let w = exposure_warning(p, 0o100666).unwrap();
        assert!(
            w.contains("mode 666") && w.contains("read and change"),
            "{w}"
        );
        assert!(w.contains("chmod o-rwx /etc/camstream/users"), "{w}");
        assert!(exposure_warning(p, 0o644).unwrap().contains("read"));
        assert!(exposure_warning(p, 0o602).unwrap().contains("change"));
    }

    #[test]
    fn reloading_takes_new_users_and_keeps_the_old_ones_on_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let line = |user: &str, pass: &str| format!("{user}:{}\n", hash_password(pass).unwrap());
        let file = users_file(dir.path(), &line("alice", "one"));
        let auth = Auth::load(Some(&file), None).unwrap();
        let alice = basic("alice", "one");
        assert_eq!(auth.check(Some(&alice), ip(1)), Access::Granted);
        std::fs::write(&file, line("bob", "two")).unwrap();
        assert_eq!(auth.reload().unwrap(), 1);
        // The remembered login is forgotten with the user.
        assert_eq!(auth.check(Some(&alice), ip(1)), Access::Denied);
        assert_eq!(
            auth.check(Some(&basic("bob", "two")), ip(2)),
            Access::Granted
        );
        std::fs::write(&file, "bob:garbage\n").unwrap();
        assert!(auth.reload().unwrap_err().to_string().contains("line 1"));
        assert_eq!(
            auth.check(Some(&basic("bob", "two")), ip(3)),
            Access::Granted
        );
    }
}
