//! Integration tests, compiled as one binary so the helpers are built once. They run the real
//! `camstream` binary; none needs a camera, and servers listen on 127.0.0.1 port 0.

mod auth_flood;
mod camera_skip;
mod cli;
mod clients;
mod contrib;
mod fakecam;
mod files;
mod flood;
mod hostile;
mod package;
mod page;
mod relay;
mod serve;
mod soak;
mod unread;
mod util;
