//! The scheduler: ready messages -> segment -> route -> submit -> outcome, with the retry
//! policy and failover.
//!
//! - [`policy`]: what to do after an attempt or a receipt (pure).
//! - [`dispatcher`]: the loop and the per-message tasks (I/O).
//! - `outcomes`: the attempts' outcomes, recorded in batches.

pub mod dispatcher;
mod outcomes;
pub mod policy;

pub use dispatcher::{CarrierEntry, DispatchConfig, DispatchOptions, Dispatcher};
