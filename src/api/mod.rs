//! The internal submit socket: HTTP/JSON for producers.
//!
//! - [`validate`]: request checks, each mistake with a stable code and its field.
//! - [`error`]: the error type and its JSON form.
//! - [`server`]: the routes (axum), API keys, rate limits.
//! - [`views`]: stored records as JSON, RFC 3339 times.

pub mod error;
pub mod request;
pub mod server;
pub mod validate;
pub mod views;

use crate::sms::Encoding;

/// The name the API uses for an encoding.
pub fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Gsm7 => "gsm7",
        Encoding::Latin1 => "latin1",
        Encoding::Ascii => "ascii",
        Encoding::Ucs2 => "ucs2",
        Encoding::Binary => "binary",
    }
}
