//! Conversions between rows and the store's types. Values read back are outside data: every
//! conversion is checked, and a value this build does not know is [`StoreError::Corrupt`].

use rusqlite::Row;

use crate::pdu::CommandStatus;
use crate::sms::{Encoding, ReceiptStat};
use crate::store::{
    Attempt, AttemptOutcome, Message, MessageId, MessageState, Mo, NewAttempt, NewMo, Part,
    PartState, Priority, Reason, StoreError, Suppression, SuppressionSource, Timestamp,
};

/// The columns [`message`] reads, in order (prefix with a table alias where needed).
pub(super) const MESSAGE_COLUMNS: &str = "id, idem_key, to_addr, from_addr, body, encoding, \
     parts, priority, expires_at, callback, carrier, tags, state, reason_code, reason_text, \
     created_at, updated_at, next_at, attempts, in_doubt";

/// The columns [`part`] reads.
pub(super) const PART_COLUMNS: &str = "idx, state, carrier, bind, carrier_id, id_key, status, \
     receipt_stat, receipt_err, submitted_at, receipt_at, updated_at";

/// The columns [`attempt`] reads.
pub(super) const ATTEMPT_COLUMNS: &str =
    "n, carrier, bind, parts, status, outcome, detail, started_at, ended_at";

/// The columns [`suppression`] reads.
pub(super) const SUPPRESSION_COLUMNS: &str = "number, reason, source, created_at";

/// The columns [`mo`] reads.
pub(super) const MO_COLUMNS: &str = "id, carrier, from_addr, to_addr, text, received_at";

pub(super) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

pub(super) fn encoding_code(e: Encoding) -> i64 {
    match e {
        Encoding::Gsm7 => 0,
        Encoding::Latin1 => 1,
        Encoding::Ascii => 2,
        Encoding::Ucs2 => 3,
        Encoding::Binary => 4,
    }
}

fn encoding_from_code(code: i64) -> Result<Encoding, StoreError> {
    Ok(match code {
        0 => Encoding::Gsm7,
        1 => Encoding::Latin1,
        2 => Encoding::Ascii,
        3 => Encoding::Ucs2,
        4 => Encoding::Binary,
        _ => return Err(corrupt(format!("encoding code {code}"))),
    })
}

pub(super) fn message_id(bytes: &[u8]) -> Result<MessageId, StoreError> {
    MessageId::from_slice(bytes).ok_or_else(|| corrupt(format!("{}-byte id", bytes.len())))
}

pub(super) fn state(code: i64) -> Result<MessageState, StoreError> {
    MessageState::from_code(code).ok_or_else(|| corrupt(format!("message state {code}")))
}

pub(super) fn part_state(code: i64) -> Result<PartState, StoreError> {
    PartState::from_code(code).ok_or_else(|| corrupt(format!("part state {code}")))
}

fn int<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| corrupt(format!("{what} {value} out of range")))
}

pub(super) fn u16_of(value: i64, what: &str) -> Result<u16, StoreError> {
    int(value, what)
}

pub(super) fn u32_of(value: i64, what: &str) -> Result<u32, StoreError> {
    int(value, what)
}

fn ts(value: i64) -> Timestamp {
    Timestamp::from_millis(value)
}

fn reason(code: Option<String>, text: Option<String>) -> Option<Reason> {
    match (code, text) {
        (None, None) => None,
        (code, text) => Some(Reason {
            code: code.unwrap_or_default(),
            text: text.unwrap_or_default(),
        }),
    }
}

pub(super) fn receipt_stat(text: Option<String>) -> Option<ReceiptStat> {
    text.map(|s| ReceiptStat::parse(&s))
}

/// A message from [`MESSAGE_COLUMNS`] starting at column `at`.
pub(super) fn message(row: &Row<'_>, at: usize) -> Result<Message, StoreError> {
    let id: Vec<u8> = row.get(at)?;
    let priority: i64 = row.get(at + 7)?;
    Ok(Message {
        id: message_id(&id)?,
        idempotency_key: row.get(at + 1)?,
        to: row.get(at + 2)?,
        from: row.get(at + 3)?,
        body: row.get(at + 4)?,
        encoding: encoding_from_code(row.get(at + 5)?)?,
        parts: u16_of(row.get(at + 6)?, "parts")?,
        priority: u8::try_from(priority)
            .ok()
            .and_then(Priority::new)
            .ok_or_else(|| corrupt(format!("priority {priority}")))?,
        expires_at: ts(row.get(at + 8)?),
        callback_url: row.get(at + 9)?,
        carrier: row.get(at + 10)?,
        tags: row.get(at + 11)?,
        state: state(row.get(at + 12)?)?,
        reason: reason(row.get(at + 13)?, row.get(at + 14)?),
        created_at: ts(row.get(at + 15)?),
        updated_at: ts(row.get(at + 16)?),
        next_attempt_at: row.get::<_, Option<i64>>(at + 17)?.map(ts),
        attempts: int(row.get(at + 18)?, "attempts")?,
        in_doubt_resubmits: int(row.get(at + 19)?, "in-doubt count")?,
    })
}

/// A part from [`PART_COLUMNS`].
pub(super) fn part(row: &Row<'_>) -> Result<Part, StoreError> {
    Ok(Part {
        index: u16_of(row.get(0)?, "part index")?,
        state: part_state(row.get(1)?)?,
        carrier: row.get(2)?,
        bind: row.get(3)?,
        carrier_message_id: row.get(4)?,
        message_id_key: row.get(5)?,
        command_status: CommandStatus(int(row.get(6)?, "command_status")?),
        receipt_stat: receipt_stat(row.get(7)?),
        receipt_err: row.get(8)?,
        submitted_at: row.get::<_, Option<i64>>(9)?.map(ts),
        receipt_at: row.get::<_, Option<i64>>(10)?.map(ts),
        updated_at: ts(row.get(11)?),
    })
}

/// An attempt from [`ATTEMPT_COLUMNS`].
pub(super) fn attempt(row: &Row<'_>) -> Result<Attempt, StoreError> {
    let outcome: i64 = row.get(5)?;
    let status: Option<i64> = row.get(4)?;
    Ok(Attempt {
        number: int(row.get(0)?, "attempt number")?,
        attempt: NewAttempt {
            carrier: row.get(1)?,
            bind: row.get(2)?,
            parts: u16_of(row.get(3)?, "attempt parts")?,
            command_status: status
                .map(|s| int(s, "command_status").map(CommandStatus))
                .transpose()?,
            outcome: AttemptOutcome::from_code(outcome)
                .ok_or_else(|| corrupt(format!("attempt outcome {outcome}")))?,
            detail: row.get(6)?,
            started_at: ts(row.get(7)?),
            ended_at: ts(row.get(8)?),
        },
    })
}

/// A suppression from [`SUPPRESSION_COLUMNS`].
pub(super) fn suppression(row: &Row<'_>) -> Result<Suppression, StoreError> {
    let source: i64 = row.get(2)?;
    Ok(Suppression {
        number: row.get(0)?,
        reason: row.get(1)?,
        source: SuppressionSource::from_code(source)
            .ok_or_else(|| corrupt(format!("suppression source {source}")))?,
        created_at: ts(row.get(3)?),
    })
}

/// An MO message from [`MO_COLUMNS`].
pub(super) fn mo(row: &Row<'_>) -> Result<Mo, StoreError> {
    Ok(Mo {
        id: row.get(0)?,
        mo: NewMo {
            carrier: row.get(1)?,
            from: row.get(2)?,
            to: row.get(3)?,
            text: row.get(4)?,
        },
        received_at: ts(row.get(5)?),
    })
}
