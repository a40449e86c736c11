//! Placeholder until the load bench lands.
fn main() {}
