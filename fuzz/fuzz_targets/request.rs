//! Fuzzes request parsing and routing: any bytes a client can send, through `parse_head` and,
//! when they parse, through the router with authentication on. Run with
//! `cargo +nightly fuzz run request` from the repository root (see docs/reliability.md).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use camstream::server::http::{parse_head, HeadError};
use camstream::server::routes::{route, Reply};
use camstream::server::App;
use camstream::settings::{
    Endpoints, FormatChoice, ServeSettings, Size, SourceSettings, SourceSpec,
};
use libfuzzer_sys::fuzz_target;

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let settings = ServeSettings {
            source: SourceSettings {
                spec: SourceSpec::Pattern,
                size: Size {
                    width: 320,
                    height: 240,
                },
                fps: 30,
                quality: 80,
                format: FormatChoice::Auto,
                timeout: Duration::from_secs(5),
                controls: Vec::new(),
            },
            listen: "127.0.0.1:0".parse().expect("literal address"),
            max_clients: 3,
            max_connections: 67,
            workers: 2,
            send_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            allow_origin: None,
            max_clients_per_ip: None,
            max_pending_per_ip: 64,
            auth_file: None,
            auth_env: Some("user:pass".into()),
            auth_exempt: Endpoints(vec!["healthz".into()]),
        };
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
