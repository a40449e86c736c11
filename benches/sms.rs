//! sms benches (filled in by the sms module).
fn main() {}
