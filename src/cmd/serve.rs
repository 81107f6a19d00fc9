//! `camstream serve`: checks the flags that depend on each other, starts the server
//! ([`crate::server`]), prints the address it bound, and runs until a signal says stop.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Result;

use crate::cli::ServeArgs;
use crate::cmd::{check_controls, source_settings, UsageError};
use crate::logging::NOTICE;
use crate::server::{auth, listener, stream, thread_bound, App, Server};
use crate::settings::ServeSettings;
use crate::shutdown::{self, Shutdown};

/// `camstream serve`: runs until SIGINT/SIGTERM, then shuts down cleanly. SIGHUP reloads the
/// auth file if there is one, and otherwise shuts down too (so closing the terminal still
/// stops a plain `camstream serve`).
pub fn run(args: &ServeArgs) -> Result<()> {
    let settings = settings(args).map_err(|message| UsageError {
        command: "serve",
        message,
    })?;
    serve(&settings)
}

/// Validates what no single flag's parser can: the flags that depend on each other. The error
/// is a usage error (exit 2) that names both flags. The process environment is read here too
/// (`CAMSTREAM_AUTH`), so the server itself only sees settings.
pub fn settings(a: &ServeArgs) -> Result<ServeSettings, String> {
    let max_clients = a.max_clients as usize;
    let max_connections = match a.max_connections {
        Some(n) if (n as usize) < max_clients => {
            return Err(format!(
                "--max-connections {n} is below --max-clients {max_clients}: every stream \
                 viewer holds a connection (raise --max-connections, or leave it unset)"
            ))
        }
        Some(n) => n as usize,
        None => listener::default_max_connections(max_clients),
    };
    let source = source_settings(&a.source);
    check_controls(&source)?;
    Ok(ServeSettings {
        source,
        listen: a.listen,
        max_clients,
        max_connections,
        workers: a.workers as usize,
        send_timeout: a.send_timeout,
        header_timeout: a.header_timeout,
        allow_origin: a.allow_origin.clone(),
        max_clients_per_ip: a.max_clients_per_ip.map(|n| n as usize),
        max_pending_per_ip: a.max_pending_per_ip as usize,
        auth_file: a.auth_file.clone(),
        auth_env: std::env::var("CAMSTREAM_AUTH")
            .ok()
            .filter(|v| !v.is_empty()),
        auth_exempt: a.auth_exempt.clone(),
    })
}

/// Serves `settings` until SIGINT/SIGTERM (see [`run`]).
pub fn serve(settings: &ServeSettings) -> Result<()> {
    let shutdown = Shutdown::new();
    // The signal thread starts first (the others inherit its blocked signals), so it finds the
    // app, once there is one, here.
    let running: Arc<OnceLock<Arc<App>>> = Arc::default();
    let hangup = settings.auth_file.is_some().then(|| {
        let running = Arc::clone(&running);
        Box::new(move || {
            if let Some(app) = running.get() {
                auth::reload_on_hangup(&app.auth);
            }
        }) as Box<dyn Fn() + Send>
    });
    shutdown::install_signal_handler(&shutdown, hangup)?;
    let s = settings.clone();
    let server = Server::start(settings.clone(), shutdown.clone())?;
    let _ = running.set(Arc::clone(server.app()));
    let host = match server.addr() {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        a => a.to_string(),
    };
    // The start line goes to stdout whatever the log level: scripts and tests read the bound
    // address from it.
    println!(
        "camstream: serving {} on http://{host}/ (stream /stream, max {} viewers, {} connections, {} workers, {} senders, threads <= {})",
        s.source.spec,
        s.max_clients,
        s.max_connections,
        s.workers,
        stream::sender_count(),
        thread_bound(&s)
    );
    if let Some(w) = exposure_warning(server.addr(), server.app().auth.enabled()) {
        log::warn!("{w}");
    }
    shutdown.wait();
    log::info!(target: NOTICE, "shutting down");
    server.stop();
    Ok(())
}

/// The warning for a server that anyone on the network can watch, if this one is such.
fn exposure_warning(addr: SocketAddr, auth: bool) -> Option<String> {
    (!addr.ip().is_loopback() && !auth).then(|| {
        format!("listening on {addr} without authentication; anyone who can reach it can watch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_server_beyond_loopback_is_warned_about() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lan: SocketAddr = "192.0.2.7:8080".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(exposure_warning(any, false)
            .unwrap()
            .contains("0.0.0.0:8080 without authentication"));
        assert!(exposure_warning(lan, false).is_some());
        assert!(exposure_warning(any, true).is_none());
        assert!(exposure_warning(lo, false).is_none());
        assert!(exposure_warning(lo6, false).is_none());
    }
}
