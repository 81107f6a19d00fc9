//! Development tasks (being written).
fn main() {}
