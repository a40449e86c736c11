//! What a producer may send, checked field by field into a message the engine can take.
//!
//! The request body is read as JSON first and each field is then checked by hand, so every
//! mistake gets a stable code and the field it is about, not a parser's sentence.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::request::{Body, FIELDS, Field};
use crate::pdu::{Npi, Ton};
use crate::sms::{self, CarrierTextOptions, Plan};

/// Limits and defaults for message requests (`[api]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Text options used to price and check a body before a carrier is chosen.
    pub text: CarrierTextOptions,
    /// `ttl` when the request gives none, seconds.
    pub default_ttl_secs: u64,
    /// Largest `ttl`, seconds.
    pub max_ttl_secs: u64,
    /// `priority` when the request gives none.
    pub default_priority: u8,
    /// Carriers a request may force with `carrier`.
    pub carriers: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            text: CarrierTextOptions::default(),
            default_ttl_secs: 48 * 3600,
            max_ttl_secs: 7 * 24 * 3600,
            default_priority: 1,
            carriers: Vec::new(),
        }
    }
}

/// A sender: a number, a short code, or an alphanumeric id, with the TON/NPI it goes out with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    /// As sent in source_addr (no `+`).
    pub addr: String,
    /// Its TON.
    pub ton: Ton,
    /// Its NPI.
    pub npi: Npi,
}

/// A message request that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidMessage {
    /// E.164 digits without `+`.
    pub to: String,
    /// The sender.
    pub from: Sender,
    /// The text.
    pub body: String,
    /// The producer's idempotency key.
    pub id: Option<String>,
    /// Validity, seconds.
    pub ttl_secs: u64,
    /// 0 (bulk) to 3 (most urgent).
    pub priority: u8,
    /// Where to POST status changes.
    pub callback_url: Option<String>,
    /// A carrier the producer insists on.
    pub carrier: Option<String>,
    /// Producer labels, as a JSON object.
    pub tags: Map<String, Value>,
    /// Encoding, parts and units, as the default text options price it.
    pub plan: Plan,
}

fn string<'r>(value: &'r Field<'_>, field: &str) -> Result<Option<&'r str>, ApiError> {
    match value {
        Field::Null => Ok(None),
        Field::Str(s) => Ok(Some(s)),
        _ => Err(ApiError::invalid_type(field, "a string")),
    }
}

fn number(value: &Field<'_>, field: &str) -> Result<Option<u64>, ApiError> {
    match value {
        Field::Null => Ok(None),
        Field::Whole(n) => Ok(Some(*n)),
        Field::OtherNumber => Err(ApiError::invalid_type(field, "a whole number, 0 or more")),
        _ => Err(ApiError::invalid_type(field, "a number")),
    }
}

/// Checks a destination: E.164, `+` optional, 7 to 15 digits, not starting with 0.
pub fn destination(to: &str) -> Result<String, ApiError> {
    let digits = to.strip_prefix('+').unwrap_or(to);
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(digits.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_destination",
            "to",
            "expected an E.164 number: an optional '+', then 7 to 15 digits, not starting with 0",
        ))
    }
}

/// Checks a sender: `+` and an E.164 number, a short code of 3 to 8 digits, or an
/// alphanumeric sender id of at most 11 characters (letters, digits, space, `.-_&`).
pub fn sender(from: &str) -> Result<Sender, ApiError> {
    let digits = from.strip_prefix('+').unwrap_or(from);
    let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if all_digits && (from.starts_with('+') || digits.len() > 8) {
        let to = destination(from).map_err(|_| {
            ApiError::bad_request(
                "invalid_sender",
                "from",
                "a sender number must be E.164 (7 to 15 digits)",
            )
        })?;
        return Ok(Sender {
            addr: to,
            ton: Ton::INTERNATIONAL,
            npi: Npi::ISDN,
        });
    }
    if all_digits && (3..=8).contains(&digits.len()) {
        return Ok(Sender {
            addr: digits.to_owned(),
            ton: Ton::NETWORK_SPECIFIC,
            npi: Npi::UNKNOWN,
        });
    }
    let alphanumeric = (1..=11).contains(&from.chars().count())
        && from
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '&'))
        && from.chars().any(|c| c.is_ascii_alphabetic());
    if alphanumeric {
        return Ok(Sender {
            addr: from.to_owned(),
            ton: Ton::ALPHANUMERIC,
            npi: Npi::UNKNOWN,
        });
    }
    Err(ApiError::bad_request(
        "invalid_sender",
        "from",
        "expected an E.164 number, a short code of 3 to 8 digits, or an alphanumeric sender id of at most 11 characters",
    ))
}

/// Checks one message request (its body as read).
pub fn message(body: &Body<'_>, limits: &Limits) -> Result<ValidMessage, ApiError> {
    let Body::Object(object) = body else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "",
            "expected a JSON object",
        ));
    };
    if let Some(unknown) = &object.unknown {
        return Err(ApiError::bad_request(
            "unknown_field",
            unknown,
            format!(
                "unknown field {unknown:?}; known fields: {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let to = string(&object.to, "to")?.ok_or_else(|| ApiError::missing("to"))?;
    let to = destination(to)?;
    let from = sender(string(&object.from, "from")?.ok_or_else(|| ApiError::missing("from"))?)?;
    let body = string(&object.body, "body")?.ok_or_else(|| ApiError::missing("body"))?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "body",
            "the body is empty",
        ));
    }
    let plan = sms::plan(body, &limits.text).map_err(|e| match e {
        sms::SmsError::TooManyParts { parts, max } => ApiError::bad_request(
            "body_too_long",
            "body",
            format!("the body needs {parts} parts; at most {max} are allowed"),
        ),
        other => ApiError::bad_request("invalid_body", "body", other.to_string()),
    })?;
    let id = match string(&object.id, "id")? {
        Some(id) if (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_graphic()) => {
            Some(id.to_owned())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_id",
                "id",
                "an id is 1 to 64 printable ASCII characters without spaces",
            ));
        }
        None => None,
    };
    let ttl_secs = number(&object.ttl, "ttl")?.unwrap_or(limits.default_ttl_secs);
    if ttl_secs == 0 || ttl_secs > limits.max_ttl_secs {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            "ttl",
            format!("ttl is seconds, from 1 to {}", limits.max_ttl_secs),
        ));
    }
    let priority =
        number(&object.priority, "priority")?.unwrap_or(u64::from(limits.default_priority));
    if priority > 3 {
        return Err(ApiError::bad_request(
            "invalid_priority",
            "priority",
            "priority is 0 (bulk) to 3 (most urgent)",
        ));
    }
    let callback_url = match string(&object.callback_url, "callback_url")? {
        Some(url)
            if url.len() <= 2048
                && (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "http://".len() =>
        {
            Some(url.to_owned())
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_callback_url",
                "callback_url",
                "expected an http:// or https:// URL of at most 2048 characters",
            ));
        }
        None => None,
    };
    let carrier = match string(&object.carrier, "carrier")? {
        Some(name) if limits.carriers.iter().any(|c| c == name) => Some(name.to_owned()),
        Some(name) => {
            return Err(ApiError::bad_request(
                "unknown_carrier",
                "carrier",
                format!("no carrier named {name:?}"),
            ));
        }
        None => None,
    };
    let tags = match &object.tags {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(tags))
            if tags.len() <= 16
                && tags
                    .iter()
                    .all(|(k, v)| k.len() <= 64 && v.as_str().is_some_and(|v| v.len() <= 256)) =>
        {
            tags.clone()
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_tags",
                "tags",
                "tags are an object of at most 16 string values (keys up to 64, values up to 256 characters)",
            ));
        }
    };
    Ok(ValidMessage {
        to,
        from,
        body: body.to_owned(),
        id,
        ttl_secs,
        priority: priority as u8,
        callback_url,
        carrier,
        tags,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Checks a request given as a JSON value, read as the server reads its body.
    fn check(value: &Value, limits: &Limits) -> Result<ValidMessage, ApiError> {
        let text = value.to_string();
        message(&serde_json::from_str(&text).unwrap(), limits)
    }

    fn code(value: Value) -> (String, Option<String>) {
        let e = check(&value, &Limits::default()).unwrap_err();
        (e.code.to_owned(), e.field)
    }

    #[test]
    fn accepts_a_plain_message_and_prices_it() {
        let m = check(
            &json!({"to": "+447700900123", "from": "MyBrand", "body": "Your code is 123456"}),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(m.to, "447700900123");
        assert_eq!(m.from.ton, Ton::ALPHANUMERIC);
        assert_eq!(m.plan.parts, 1);
        assert_eq!(m.ttl_secs, 48 * 3600);
        assert_eq!(m.priority, 1);
    }

    #[test]
    fn senders_get_the_ton_their_form_implies() {
        assert_eq!(sender("+447700900001").unwrap().ton, Ton::INTERNATIONAL);
        assert_eq!(sender("447700900001").unwrap().ton, Ton::INTERNATIONAL);
        assert_eq!(sender("12345").unwrap().ton, Ton::NETWORK_SPECIFIC);
        assert_eq!(sender("Acme Ltd").unwrap().ton, Ton::ALPHANUMERIC);
        assert!(sender("TwelveChars!").is_err());
        assert!(sender("AVeryLongBrand").is_err());
        assert!(sender("12").is_err());
    }

    #[test]
    fn every_mistake_has_its_code_and_field() {
        let ok = json!({"to": "+447700900123", "from": "Acme", "body": "hi"});
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        assert_eq!(code(json!([1])).0, "invalid_request");
        assert_eq!(
            code(with("bogus", json!(1))),
            ("unknown_field".into(), Some("bogus".into()))
        );
        assert_eq!(
            code(json!({"from": "Acme", "body": "hi"})),
            ("missing_field".into(), Some("to".into()))
        );
        assert_eq!(
            code(with("to", json!(447700900123u64))),
            ("invalid_type".into(), Some("to".into()))
        );
        assert_eq!(code(with("to", json!("+44"))).0, "invalid_destination");
        assert_eq!(
            code(with("to", json!("07700900123"))).0,
            "invalid_destination"
        );
        assert_eq!(code(with("from", json!("!!"))).0, "invalid_sender");
        assert_eq!(code(with("body", json!(""))).0, "empty_body");
        assert_eq!(
            code(with("body", json!("x".repeat(1531)))).0,
            "body_too_long"
        );
        assert_eq!(code(with("id", json!("has space"))).0, "invalid_id");
        assert_eq!(code(with("ttl", json!(0))).0, "invalid_ttl");
        assert_eq!(code(with("ttl", json!(-5))).0, "invalid_type");
        assert_eq!(code(with("priority", json!(4))).0, "invalid_priority");
        assert_eq!(
            code(with("callback_url", json!("ftp://x"))).0,
            "invalid_callback_url"
        );
        assert_eq!(code(with("carrier", json!("nope"))).0, "unknown_carrier");
        assert_eq!(code(with("tags", json!({"a": 1}))).0, "invalid_tags");
    }

    #[test]
    fn the_longest_gsm_body_that_fits_ten_parts_is_accepted() {
        let ok = json!({"to": "+447700900123", "from": "Acme", "body": "x".repeat(1530)});
        assert_eq!(check(&ok, &Limits::default()).unwrap().plan.parts, 10);
    }
}
