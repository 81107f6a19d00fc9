//! Fuzzes request parsing and routing: any bytes a client can send, through `parse_head` and,
//! when they parse, through the router with authentication on. Run with
//! `cargo +nightly fuzz run request` from the repository root (see docs/reliability.md).

#![no_main]

use std::sync::OnceLock;

use camstream::server::http::{parse_head, HeadError};
use camstream::server::routes::{route, Reply};
use camstream::server::App;
use camstream::settings::ServeSettings;
use libfuzzer_sys::fuzz_target;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let mut settings = ServeSettings::small_pattern();
        settings.auth_env = Some("user:pass".into());
        // No capture thread and a closed slot: every request is answered at once.
        let app = App::new(settings).expect("app");
        app.slot.close();
        app
    })
}

fuzz_target!(|data: &[u8]| {
    let peer = "127.0.0.1:9".parse().unwrap();
    match parse_head(data, peer) {
        Ok(head) => match route(&head.request, app()) {
            Reply::Response(r) => assert!((200..600).contains(&r.status_code)),
            Reply::Stream { max_fps } => assert!(max_fps.is_none_or(|f| (1..=120).contains(&f))),
            Reply::Snapshot => {}
        },
        Err(HeadError::Partial) => {}
        Err(HeadError::Reject(code, _)) => assert!([400, 414, 431].contains(&code)),
    }
});
