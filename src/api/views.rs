//! Stored records as the API shows them (JSON), and times as RFC 3339.

use serde_json::{Map, Value, json};

use crate::store::{Attempt, Message, MessageDetail, Part, Receipt, Suppression, Timestamp};

/// `2024-01-15T12:30:00.000Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let ms = t.as_millis();
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Reads `since` as RFC 3339 (`2024-01-15T12:30:00Z`, optional fraction) or Unix seconds.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    if let Ok(secs) = text.parse::<i64>() {
        return Some(Timestamp::from_millis(secs.checked_mul(1000)?));
    }
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let rest = &text[19..];
    let (millis, zone) = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            let ms: i64 = format!("{:0<3}", &frac[..digits.min(3)]).parse().ok()?;
            (ms, &frac[digits..])
        }
        None => (0, rest),
    };
    let offset_secs = match zone {
        "Z" | "z" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) => {
            let h: i64 = z.get(1..3)?.parse().ok()?;
            let m: i64 = z.get(4..6)?.parse().ok()?;
            let s = h * 3600 + m * 60;
            if z.starts_with('+') { s } else { -s }
        }
        _ => return None,
    };
    // Days from civil (the inverse of the algorithm above).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(Timestamp::from_millis(secs * 1000 + millis))
}

fn opt_time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

fn tags(message: &Message) -> Value {
    message
        .tags
        .as_deref()
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .map_or(Value::Object(Map::new()), Value::Object)
}

/// A message without its parts, attempts and receipts (lists).
pub fn message_summary(m: &Message) -> Value {
    json!({
        "id": m.id.to_string(),
        "to": m.to,
        "from": m.from,
        "status": m.state.as_str(),
        "reason": m.reason.as_ref().map(|r| json!({ "code": r.code, "message": r.text })),
        "parts": m.parts,
        "encoding": crate::api::encoding_name(m.encoding),
        "priority": m.priority.get(),
        "attempts": m.attempts,
        "in_doubt_resubmits": m.in_doubt_resubmits,
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
        "expires_at": rfc3339(m.expires_at),
        "next_attempt_at": opt_time(m.next_attempt_at),
        "callback_url": m.callback_url,
        "carrier": m.carrier,
        "tags": tags(m),
    })
}

fn part(p: &Part) -> Value {
    json!({
        "index": p.index,
        "state": p.state.as_str(),
        "carrier": p.carrier,
        "bind": p.bind,
        "carrier_message_id": p.carrier_message_id,
        "command_status": p.command_status.to_string(),
        "receipt_stat": p.receipt_stat.as_ref().map(|s| s.to_string()),
        "receipt_err": p.receipt_err,
        "submitted_at": opt_time(p.submitted_at),
        "receipt_at": opt_time(p.receipt_at),
    })
}

fn attempt(a: &Attempt) -> Value {
    json!({
        "number": a.number,
        "carrier": a.attempt.carrier,
        "bind": a.attempt.bind,
        "parts": a.attempt.parts,
        "command_status": a.attempt.command_status.map(|s| s.to_string()),
        "outcome": a.attempt.outcome.as_str(),
        "detail": a.attempt.detail,
        "started_at": rfc3339(a.attempt.started_at),
        "ended_at": rfc3339(a.attempt.ended_at),
    })
}

fn receipt(r: &Receipt) -> Value {
    json!({
        "carrier": r.carrier,
        "carrier_message_id": r.carrier_message_id,
        "stat": r.stat.as_ref().map(|s| s.to_string()),
        "err": r.err,
        "part": r.part,
        "received_at": rfc3339(r.received_at),
        "text": r.raw,
    })
}

/// A message with everything the store knows of it (`GET /messages/{id}`).
pub fn message_detail(d: &MessageDetail) -> Value {
    let mut v = message_summary(&d.message);
    if let Value::Object(map) = &mut v {
        map.insert("body".into(), Value::String(d.message.body.clone()));
        map.insert("part_details".into(), d.parts.iter().map(part).collect());
        map.insert(
            "attempt_details".into(),
            d.attempts.iter().map(attempt).collect(),
        );
        map.insert("receipts".into(), d.receipts.iter().map(receipt).collect());
    }
    v
}

/// A suppression.
pub fn suppression(s: &Suppression) -> Value {
    json!({
        "number": s.number,
        "reason": s.reason,
        "source": s.source.as_str(),
        "created_at": rfc3339(s.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_rfc3339() {
        for ms in [0, 1_705_321_800_123, 951_782_400_000, 4_102_444_799_999] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(parse_time(&rfc3339(t)), Some(t), "{}", rfc3339(t));
        }
        assert_eq!(
            rfc3339(Timestamp::from_millis(1_705_321_800_123)),
            "2024-01-15T12:30:00.123Z"
        );
        assert_eq!(
            parse_time("2024-01-15T13:30:00+01:00"),
            Some(Timestamp::from_millis(1_705_321_800_000))
        );
        assert_eq!(
            parse_time("1705321800"),
            Some(Timestamp::from_millis(1_705_321_800_000))
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2024-13-01T00:00:00Z"), None);
    }
}
