//! The scheduler: ready messages -> segment -> route -> submit -> outcome, with the retry
//! policy and failover.
//!
//! - [`policy`]: what to do after an attempt or a receipt (pure).

pub mod policy;
