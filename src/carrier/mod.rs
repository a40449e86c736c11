//! A carrier's pool of binds.
pub mod backoff;
pub mod breaker;
pub mod config;
pub mod throttle;
