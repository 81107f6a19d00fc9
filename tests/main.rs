//! Integration tests, compiled as one binary so the helpers are built once. They run the real
//! `camstream` binary; none needs a camera, and servers listen on 127.0.0.1 port 0.

mod admission;
mod auth_flood;
mod camera_skip;
mod cli;
mod clients;
mod contrib;
mod controls;
mod endpoints;
mod fakecam;
mod files;
mod flood;
mod hostile;
mod logging;
mod package;
mod page;
mod relay;
mod shutdown;
mod soak;
mod streaming;
mod unread;
mod util;
