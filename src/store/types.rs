//! What the store keeps and what its operations take and return.

use std::fmt;
use std::str::FromStr;

use super::{MessageId, Timestamp};
use crate::pdu::CommandStatus;
use crate::sms::{Encoding, MessageIdKey, ReceiptStat};

/// The most messages (or updates, or receipts) one call may carry: one commit's worth.
pub const MAX_BATCH: usize = 1_000;

/// The most rows one read returns (list pages, claims, suppression pages).
pub const MAX_PAGE: usize = 1_000;

macro_rules! coded_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The lower-case name used in the API and in logs.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// The small integer stored in the database.
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The value stored as `code`; `None` for a code this build does not know.
            pub fn from_code(code: i64) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            /// Reads the lower-case name (as written by `Display`).
            fn from_str(s: &str) -> Result<$name, UnknownName> {
                match s { $($text => Ok($name::$variant),)* _ => Err(UnknownName(s.to_owned())) }
            }
        }
    };
}

/// A name that is not one of an enum's values (e.g. a status filter in an API request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

coded_enum! {
    /// Where a message is on its path (DESIGN.md, "A message's path"). The last six are final:
    /// a message in one of them never changes state again and carries a [`Reason`].
    pub enum MessageState {
        /// Committed by the API, waiting for its first attempt.
        Accepted = 0, "accepted";
        /// Claimed by the dispatcher; an attempt is in progress. A message found in this state
        /// at start-up is *in doubt*: some of its parts may have reached the carrier.
        Submitting = 1, "submitting";
        /// Every part was accepted by the carrier; waiting for receipts until the deadline.
        Submitted = 2, "submitted";
        /// Waiting for its next attempt at `next_attempt_at`.
        Retrying = 3, "retrying";
        /// Final: the receipts say every part was delivered.
        Delivered = 4, "delivered";
        /// Final: a permanent error, or retries ran out.
        Failed = 5, "failed";
        /// Final: the TTL passed before delivery.
        Expired = 6, "expired";
        /// Final: the carrier or the handset rejected it.
        Rejected = 7, "rejected";
        /// Final: no receipt came within the receipt timeout.
        Unknown = 8, "unknown";
        /// Final: cancelled before it was submitted.
        Cancelled = 9, "cancelled";
    }
}

impl MessageState {
    /// True for the states a message never leaves.
    pub fn is_final(self) -> bool {
        self.code() >= MessageState::Delivered.code()
    }

    /// True for the states the dispatcher claims from (accepted, retrying).
    pub fn is_ready(self) -> bool {
        matches!(self, MessageState::Accepted | MessageState::Retrying)
    }
}

/// The final states a dispatcher or a receipt roll-up may set with [`Update::Finish`].
/// (Cancelled is set only by [`Update::Cancel`], which checks that nothing was sent.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalState {
    /// Every part delivered.
    Delivered,
    /// A permanent error, or retries exhausted.
    Failed,
    /// The TTL passed.
    Expired,
    /// Rejected by the carrier or the handset.
    Rejected,
    /// No receipt within the receipt timeout.
    Unknown,
}

impl From<FinalState> for MessageState {
    fn from(s: FinalState) -> MessageState {
        match s {
            FinalState::Delivered => MessageState::Delivered,
            FinalState::Failed => MessageState::Failed,
            FinalState::Expired => MessageState::Expired,
            FinalState::Rejected => MessageState::Rejected,
            FinalState::Unknown => MessageState::Unknown,
        }
    }
}

/// Why a message is where it is: a machine code and a human text. Every final state carries
/// one; a retry carries the reason of the retry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reason {
    /// A stable machine code: a `command_status` name (`ESME_RINVDSTADR`), a receipt stat
    /// (`UNDELIV`), or one of the engine's own (`receipt_timeout`, `cancelled`).
    pub code: String,
    /// A sentence for people.
    pub text: String,
}

impl Reason {
    /// A reason with this code and text.
    pub fn new(code: impl Into<String>, text: impl Into<String>) -> Reason {
        Reason {
            code: code.into(),
            text: text.into(),
        }
    }

    /// The reason for a carrier's `command_status`: its spec name (or hex value) as the code.
    pub fn from_status(status: CommandStatus, text: impl Into<String>) -> Reason {
        Reason::new(status.to_string(), text)
    }
}

/// How urgent a message is, 0 (bulk) to 3 (most urgent), like SMPP's `priority_flag`. Higher
/// priorities are claimed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Priority(u8);

impl Priority {
    /// The highest priority.
    pub const MAX: Priority = Priority(3);

    /// The priority `p`, or `None` above [`Priority::MAX`].
    pub fn new(p: u8) -> Option<Priority> {
        (p <= Priority::MAX.0).then_some(Priority(p))
    }

    /// The value, 0–3.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A message handed to [`Store::accept`](super::Store::accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The producer's idempotency key: a repeat within the idempotency window (24 h by
    /// default) returns the original message instead of making a second one. Keys are global;
    /// the API prefixes them with the producer's identity if producers share the engine.
    pub idempotency_key: Option<String>,
    /// The destination number (the API has normalised it; suppressions compare it exactly).
    pub to: String,
    /// The source address (number, short code or alphanumeric sender).
    pub from: String,
    /// The text.
    pub body: String,
    /// The alphabet the API chose.
    pub encoding: Encoding,
    /// How many parts the text makes (at least 1).
    pub parts: u16,
    /// How urgent it is.
    pub priority: Priority,
    /// When it expires if not delivered (accepted time + TTL).
    pub expires_at: Timestamp,
    /// The first attempt's time; `None` means now.
    pub not_before: Option<Timestamp>,
    /// Where status callbacks go.
    pub callback_url: Option<String>,
    /// The carrier to use instead of routing.
    pub carrier: Option<String>,
    /// The producer's tags, as a JSON string the store does not read.
    pub tags: Option<String>,
}

/// What [`Store::accept`](super::Store::accept) did with one message, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Stored under this new id.
    Inserted(MessageId),
    /// The idempotency key was used within the window: this is the original message's id
    /// and nothing was stored.
    Duplicate(MessageId),
    /// The destination is suppressed; nothing was stored.
    Suppressed(Suppression),
}

impl AcceptOutcome {
    /// The message id, unless the destination was suppressed.
    pub fn id(&self) -> Option<MessageId> {
        match self {
            AcceptOutcome::Inserted(id) | AcceptOutcome::Duplicate(id) => Some(*id),
            AcceptOutcome::Suppressed(_) => None,
        }
    }
}

/// A stored message, as claims, reads and recovery return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Our id.
    pub id: MessageId,
    /// The producer's idempotency key.
    pub idempotency_key: Option<String>,
    /// Destination.
    pub to: String,
    /// Source.
    pub from: String,
    /// Text.
    pub body: String,
    /// Alphabet.
    pub encoding: Encoding,
    /// Number of parts.
    pub parts: u16,
    /// Priority.
    pub priority: Priority,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Status callback URL.
    pub callback_url: Option<String>,
    /// Forced carrier.
    pub carrier: Option<String>,
    /// Producer's tags (JSON).
    pub tags: Option<String>,
    /// Current state.
    pub state: MessageState,
    /// The reason of the last retry, or of the final state (always set when final).
    pub reason: Option<Reason>,
    /// When it was accepted (also written in its id).
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// For accepted and retrying messages the time of the next attempt, for submitted ones
    /// the receipt deadline; `None` when final.
    pub next_attempt_at: Option<Timestamp>,
    /// Attempts finished so far.
    pub attempts: u32,
    /// Parts resubmitted while their first submit was in doubt (no response came).
    pub in_doubt_resubmits: u32,
}

coded_enum! {
    /// Where one part stands with the carrier.
    pub enum PartState {
        /// Accepted by the carrier (submit_sm_resp ESME_ROK); no final receipt yet.
        /// Intermediate receipts (ENROUTE, ACCEPTD...) leave this state and set the stat.
        Submitted = 0, "submitted";
        /// Refused in submit_sm_resp; see the part's command_status.
        Rejected = 1, "rejected";
        /// A final receipt said DELIVRD.
        Delivered = 2, "delivered";
        /// A final receipt said anything else (UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN).
        Undelivered = 3, "undelivered";
    }
}

impl PartState {
    /// The part state a receipt with this stat leads to from `Submitted`, or `None` if the
    /// stat is not final (the part stays submitted).
    pub fn after_receipt(stat: &ReceiptStat) -> Option<PartState> {
        if !stat.is_final() {
            None
        } else if *stat == ReceiptStat::Delivered {
            Some(PartState::Delivered)
        } else {
            Some(PartState::Undelivered)
        }
    }

    /// The state after a receipt with this stat, or `None` if the receipt leaves the part as
    /// it is (an intermediate receipt after a final one).
    pub fn with_receipt(self, stat: &ReceiptStat) -> Option<PartState> {
        match PartState::after_receipt(stat) {
            Some(state) => Some(state),
            None if self.has_final_receipt() => None,
            None => Some(self),
        }
    }

    /// True once a final receipt arrived (delivered or undelivered).
    pub fn has_final_receipt(self) -> bool {
        matches!(self, PartState::Delivered | PartState::Undelivered)
    }
}

/// One part of a message as the carrier saw it (the last attempt's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 0-based index within the message.
    pub index: u16,
    /// Where it stands.
    pub state: PartState,
    /// The carrier account it went to.
    pub carrier: String,
    /// The bind it went over.
    pub bind: String,
    /// The carrier's message id as written in submit_sm_resp.
    pub carrier_message_id: Option<String>,
    /// Its canonical key ([`MessageIdKey`]), which receipts are matched on.
    pub message_id_key: Option<String>,
    /// The last submit_sm_resp `command_status`.
    pub command_status: CommandStatus,
    /// The last receipt's stat.
    pub receipt_stat: Option<ReceiptStat>,
    /// The last receipt's err field.
    pub receipt_err: Option<String>,
    /// When the carrier accepted it.
    pub submitted_at: Option<Timestamp>,
    /// When the last receipt for it arrived.
    pub receipt_at: Option<Timestamp>,
    /// When this record last changed.
    pub updated_at: Timestamp,
}

coded_enum! {
    /// How an attempt ended.
    pub enum AttemptOutcome {
        /// The carrier accepted every part.
        Accepted = 0, "accepted";
        /// The carrier throttled (ESME_RTHROTTLED, ESME_RMSGQFUL).
        Throttled = 1, "throttled";
        /// A transient error: a status like ESME_RSYSERR, a lost bind.
        Transient = 2, "transient";
        /// A permanent error status.
        Permanent = 3, "permanent";
        /// No submit_sm_resp came: the attempt is in doubt.
        NoResponse = 4, "no_response";
        /// Given up before anything was sent (shutdown, no route, expiry).
        Aborted = 5, "aborted";
    }
}

/// One attempt as the dispatcher reports it in [`Update::AttemptFinished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    /// Carrier account.
    pub carrier: String,
    /// Bind.
    pub bind: String,
    /// Parts sent in this attempt.
    pub parts: u16,
    /// The deciding submit_sm_resp status (`None` when no response came).
    pub command_status: Option<CommandStatus>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Free detail for people (e.g. "bind lost").
    pub detail: Option<String>,
    /// When the first part was sent.
    pub started_at: Timestamp,
    /// When the outcome was known.
    pub ended_at: Timestamp,
}

/// One stored attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// What the dispatcher reported.
    pub attempt: NewAttempt,
}

/// What follows a finished attempt; see [`Update::AttemptFinished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Every part accepted: wait for receipts until the deadline (then the message is
    /// reported by [`Store::receipt_overdue`](super::Store::receipt_overdue)).
    Submitted {
        /// When to give up waiting for receipts.
        receipt_deadline: Timestamp,
    },
    /// Try again at `at`.
    Retry {
        /// Next attempt time.
        at: Timestamp,
        /// Why.
        reason: Reason,
    },
    /// Finished.
    Final {
        /// The final state.
        state: FinalState,
        /// Why.
        reason: Reason,
    },
}

/// A change the dispatcher or the receipt handler records with
/// [`Store::apply`](super::Store::apply). Each names the message by id; what each requires of
/// the message's current state is written beside it (otherwise the outcome is
/// [`UpdateOutcome::NotAllowed`] and nothing changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The carrier accepted a part (submit_sm_resp ESME_ROK). Any non-final state. If a
    /// receipt for this (carrier, key) arrived earlier and is stored unmatched, it is matched
    /// now, in the same transaction, and the outcome is [`UpdateOutcome::ReceiptMatched`].
    PartSubmitted {
        /// The message.
        id: MessageId,
        /// The part's index.
        part: u16,
        /// Carrier account.
        carrier: String,
        /// Bind.
        bind: String,
        /// The carrier's id, as written in submit_sm_resp.
        carrier_message_id: String,
        /// Its canonical key.
        key: MessageIdKey,
    },
    /// The carrier refused a part. Any non-final state.
    PartRejected {
        /// The message.
        id: MessageId,
        /// The part's index.
        part: u16,
        /// Carrier account.
        carrier: String,
        /// Bind.
        bind: String,
        /// The refusal.
        status: CommandStatus,
    },
    /// An attempt ended: the attempt is recorded and the message moves on as `next` says.
    /// Requires `submitting`.
    AttemptFinished {
        /// The message.
        id: MessageId,
        /// The attempt.
        attempt: NewAttempt,
        /// What follows.
        next: AfterAttempt,
    },
    /// Schedule another attempt without recording one (e.g. a receipt said UNDELIV with a
    /// retryable error). Requires `submitting`, `submitted` or `retrying`.
    ScheduleRetry {
        /// The message.
        id: MessageId,
        /// Next attempt time.
        at: Timestamp,
        /// Why.
        reason: Reason,
    },
    /// Give a claimed message back untouched (shutdown, throttling before anything was
    /// sent): it becomes ready again at `at`, as `accepted` if it never had an attempt, else
    /// `retrying`. Requires `submitting`.
    Release {
        /// The message.
        id: MessageId,
        /// When it becomes ready.
        at: Timestamp,
    },
    /// Put the message in a final state. Requires a non-final state.
    Finish {
        /// The message.
        id: MessageId,
        /// The final state.
        state: FinalState,
        /// Why.
        reason: Reason,
    },
    /// Count one resubmit of an in-doubt part. Requires a non-final state.
    InDoubtResubmit {
        /// The message.
        id: MessageId,
    },
    /// Cancel a message nothing was sent for yet. Requires `accepted` or `retrying`.
    Cancel {
        /// The message.
        id: MessageId,
        /// Why.
        reason: Reason,
    },
}

impl Update {
    /// The message the update is about.
    pub fn id(&self) -> MessageId {
        match self {
            Update::PartSubmitted { id, .. }
            | Update::PartRejected { id, .. }
            | Update::AttemptFinished { id, .. }
            | Update::ScheduleRetry { id, .. }
            | Update::Release { id, .. }
            | Update::Finish { id, .. }
            | Update::InDoubtResubmit { id }
            | Update::Cancel { id, .. } => *id,
        }
    }
}

/// What one [`Update`] did, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Recorded.
    Applied,
    /// Recorded ([`Update::PartSubmitted`]), and a receipt stored earlier was matched to the
    /// part: roll it up.
    ReceiptMatched(ReceiptMatch),
    /// No message has this id (never existed, or pruned).
    NotFound,
    /// The message's state does not allow it; nothing changed.
    NotAllowed {
        /// The message's current state.
        state: MessageState,
    },
}

/// A delivery receipt as the receipt handler hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReceipt {
    /// The carrier account whose bind it came in on.
    pub carrier: String,
    /// The id as the receipt wrote it.
    pub carrier_message_id: String,
    /// Its canonical key (for the carrier's receipt id format).
    pub key: MessageIdKey,
    /// The stat, if the receipt had one.
    pub stat: Option<ReceiptStat>,
    /// The err field.
    pub err: Option<String>,
    /// The receipt's full text as received.
    pub raw: String,
}

/// A stored receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The store's id of this receipt.
    pub id: i64,
    /// The carrier account it came from.
    pub carrier: String,
    /// The id as the receipt wrote it.
    pub carrier_message_id: String,
    /// Its canonical key, as stored ([`MessageIdKey::as_str`]).
    pub key: String,
    /// The stat, if the receipt had one.
    pub stat: Option<ReceiptStat>,
    /// The err field.
    pub err: Option<String>,
    /// The receipt's full text as received.
    pub raw: String,
    /// When it arrived (was stored).
    pub received_at: Timestamp,
    /// The part it was matched to; `None` while unmatched.
    pub part: Option<u16>,
}

/// One part's receipt position, for rolling a message up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartReceiptState {
    /// The part's index.
    pub index: u16,
    /// Its state.
    pub state: PartState,
    /// Its last receipt stat.
    pub stat: Option<ReceiptStat>,
    /// Its last receipt err.
    pub err: Option<String>,
}

/// A receipt matched to a part, with what the caller needs to roll the message up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptMatch {
    /// The stored receipt's id.
    pub receipt_id: i64,
    /// The message.
    pub message_id: MessageId,
    /// The part matched.
    pub part: u16,
    /// The message's state (before any roll-up).
    pub message_state: MessageState,
    /// When the message was accepted.
    pub accepted_at: Timestamp,
    /// Whether the message has a callback URL of its own.
    pub has_callback_url: bool,
    /// The message's number of parts.
    pub parts_total: u16,
    /// Every stored part of the message, in index order (parts never submitted are absent).
    pub parts: Vec<PartReceiptState>,
    /// The final state a [`RollUp`] gave the message in the same commit, with its reason;
    /// `None` when the rule left it as it was (or there was no rule).
    pub finished: Option<(FinalState, Reason)>,
}

impl ReceiptMatch {
    /// True when every one of the message's parts has a final receipt.
    pub fn all_parts_final(&self) -> bool {
        self.parts.len() == usize::from(self.parts_total)
            && self.parts.iter().all(|p| p.state.has_final_receipt())
    }
}

/// What [`Store::store_receipts`](super::Store::store_receipts) did with one receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Stored and matched to a part.
    Matched(ReceiptMatch),
    /// Stored, matching no part yet: it is matched when a submit_sm_resp with its key lands
    /// ([`Update::PartSubmitted`]), or pruned after the unmatched-receipt retention.
    Unmatched {
        /// The stored receipt's id.
        receipt_id: i64,
    },
}

/// A roll-up rule for [`Store::store_receipts_rolling_up`](super::Store::store_receipts_rolling_up):
/// given the carrier a receipt came from and its match on a `submitted` message, the final
/// state the message takes in the same commit, or `None` to leave it (still waiting, or a
/// case the caller decides itself, such as a failure worth sending again). Its answer must
/// follow from its arguments alone: the store may ask before it has confirmed that the
/// message is `submitted`, and applies the answer only if it is.
pub type RollUp = std::sync::Arc<
    dyn Fn(&str, &ReceiptMatch) -> Option<(FinalState, Reason)> + Send + Sync + 'static,
>;

/// A mobile-originated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMo {
    /// The carrier account it came from.
    pub carrier: String,
    /// Sender (the handset).
    pub from: String,
    /// Recipient (our number or short code).
    pub to: String,
    /// Text.
    pub text: String,
}

/// A stored MO message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mo {
    /// The store's id, increasing with arrival.
    pub id: i64,
    /// What arrived.
    pub mo: NewMo,
    /// When.
    pub received_at: Timestamp,
}

coded_enum! {
    /// Who suppressed a number.
    pub enum SuppressionSource {
        /// An operator or producer through the API.
        Api = 0, "api";
        /// The handset sent an opt-out keyword (MO).
        MoKeyword = 1, "mo_keyword";
    }
}

/// A number messages must not be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The number, exactly as destinations are written.
    pub number: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub source: SuppressionSource,
    /// When (re)created.
    pub created_at: Timestamp,
}

/// A message with everything kept about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDetail {
    /// The message.
    pub message: Message,
    /// Its parts, by index.
    pub parts: Vec<Part>,
    /// Its attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// Receipts matched to it, oldest first.
    pub receipts: Vec<Receipt>,
}

/// A page position returned by [`Store::list`](super::Store::list). Opaque to callers: hand
/// it back as it came, or parse one that came back from a client with [`Cursor::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(pub(crate) MessageId);

impl Cursor {
    /// A cursor from its string form; `None` if it is not one.
    pub fn parse(s: &str) -> Option<Cursor> {
        s.strip_prefix("c")?.parse().ok().map(Cursor)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// A query for [`Store::list`](super::Store::list): newest first, every filter optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    /// Only messages in this state.
    pub state: Option<MessageState>,
    /// Only messages to this number.
    pub to: Option<String>,
    /// Only messages created at or after this time.
    pub since: Option<Timestamp>,
    /// Continue after this position (from the previous page).
    pub cursor: Option<Cursor>,
    /// Page size, 1 to [`MAX_PAGE`].
    pub limit: usize,
}

/// One page of messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The messages, newest first.
    pub messages: Vec<Message>,
    /// Where the next page starts; `None` when this is the last page.
    pub next: Option<Cursor>,
}

/// How many messages are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateCounts([u64; 10]);

impl StateCounts {
    /// The counts from one number per state, in [`MessageState::ALL`] order.
    pub fn from_array(counts: [u64; 10]) -> StateCounts {
        StateCounts(counts)
    }

    /// The number of messages in `state`.
    pub fn get(&self, state: MessageState) -> u64 {
        self.0[usize::from(state.code())]
    }

    /// Every state with its count.
    pub fn iter(&self) -> impl Iterator<Item = (MessageState, u64)> + '_ {
        MessageState::ALL.iter().map(|s| (*s, self.get(*s)))
    }

    /// Messages not yet final.
    pub fn open(&self) -> u64 {
        self.iter()
            .filter(|(s, _)| !s.is_final())
            .map(|(_, n)| n)
            .sum()
    }
}

/// What a restarted engine must resume, from [`Store::recover`](super::Store::recover).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Messages left in `submitting`: an attempt was under way when the engine stopped, so
    /// some parts may have reached the carrier. Their parts tell which submit_sm_resp
    /// arrived; the in-doubt policy decides the rest. Oldest first.
    pub in_doubt: Vec<MessageDetail>,
    /// Every ready message (accepted or retrying): id and next attempt time, in claim order.
    /// They need no special handling: [`Store::claim`](super::Store::claim) hands them out.
    pub ready: Vec<(MessageId, Timestamp)>,
    /// How many messages wait for receipts (`submitted`).
    pub awaiting_receipts: u64,
}

/// What one [`Store::prune`](super::Store::prune) call deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneReport {
    /// Finished messages (with their parts, attempts and receipts).
    pub messages: u64,
    /// Unmatched receipts past their retention.
    pub unmatched_receipts: u64,
    /// Idempotency keys past the window.
    pub idempotency_keys: u64,
    /// MO messages past the retention.
    pub mo: u64,
    /// True if a limit was reached: call again to continue.
    pub more: bool,
}

/// The write queue's fill, for metrics and health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Rows waiting for or inside the current commit.
    pub queued_rows: usize,
    /// The most that may wait; beyond it writes fail with
    /// [`StoreError::Backlogged`](super::StoreError::Backlogged).
    pub capacity: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_and_names_round_trip() {
        for (i, s) in MessageState::ALL.iter().enumerate() {
            assert_eq!(usize::from(s.code()), i);
            assert_eq!(MessageState::from_code(i as i64), Some(*s));
            assert_eq!(s.as_str().parse::<MessageState>(), Ok(*s));
        }
        assert_eq!(MessageState::from_code(10), None);
        assert!("bogus".parse::<MessageState>().is_err());
        let finals: Vec<_> = MessageState::ALL.iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals.len(), 6);
        assert!(!MessageState::Submitted.is_final());
    }

    #[test]
    fn final_receipts_decide_the_part_state() {
        assert_eq!(
            PartState::after_receipt(&ReceiptStat::Delivered),
            Some(PartState::Delivered)
        );
        assert_eq!(
            PartState::after_receipt(&ReceiptStat::Undeliverable),
            Some(PartState::Undelivered)
        );
        assert_eq!(PartState::after_receipt(&ReceiptStat::Enroute), None);
        assert_eq!(
            PartState::after_receipt(&ReceiptStat::Other("BUFFRED".into())),
            None
        );
    }

    #[test]
    fn cursors_print_and_parse() {
        let c = Cursor(MessageId::from_u128(12345));
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        assert_eq!(Cursor::parse("garbage"), None);
        assert_eq!(Cursor::parse("c"), None);
    }

    #[test]
    fn priorities_stop_at_three() {
        assert_eq!(Priority::new(3), Some(Priority::MAX));
        assert_eq!(Priority::new(4), None);
        assert!(Priority::new(2) > Priority::new(1));
    }
}

/// Where [`Store::claim_fresh`](super::Store::claim_fresh) sends the messages it claims as
/// they are accepted, and how many it may claim.
#[derive(Clone, Debug)]
pub struct FreshClaims {
    /// How many messages the dispatcher takes now. The store takes one from it for each
    /// message it claims; the dispatcher sets it again as its room changes.
    pub room: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Where the claimed messages go, `submitting`, once their commit is on the disk (before
    /// their producer hears of them).
    pub to: tokio::sync::mpsc::UnboundedSender<Vec<Message>>,
}
