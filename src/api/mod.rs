//! The internal submit socket: HTTP/JSON for producers.
//!
//! - [`validate`]: request checks, each mistake with a stable code and its field.
//! - [`error`]: the error type and its JSON form.

pub mod error;
pub mod validate;
