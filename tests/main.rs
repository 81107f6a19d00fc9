//! Integration tests, compiled as one binary so the helpers are built once. They run the real
//! `camstream` binary; none needs a camera, and servers listen on 127.0.0.1 port 0.

mod cli;
mod contrib;
mod fakecam;
mod flood;
mod hostile;
mod serve;
mod soak;
mod util;
