//! The retry policy (DESIGN.md, "Default error classification"): what to do after an attempt,
//! and after a receipt. Pure: time and randomness come in as arguments.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::pdu::{CommandStatus, StatusClass};
use crate::sms::ReceiptStat;

/// What to do with a message whose submit response never came (DESIGN promise 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum InDoubtPolicy {
    /// Submit it again (counted as an in-doubt resubmit): the handset may get it twice.
    #[default]
    Resubmit,
    /// Wait this long for late responses to settle it (then receipts can match the parts
    /// too: a receipt names the carrier's id, which only the response gives), then resubmit,
    /// counted, whatever part is still unanswered.
    WaitForReceipt {
        /// How long, in seconds.
        wait_secs: u64,
    },
    /// Fail it with reason `in_doubt`: never risk a duplicate.
    Fail,
}

/// Retry settings; the defaults are the house policy.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Most submit attempts per message (the first included). Default 5.
    pub max_attempts: u32,
    /// Backoff before the second attempt, ms. Default 2 000.
    pub initial_backoff_ms: u64,
    /// Longest backoff, ms. Default 600 000 (10 min).
    pub max_backoff_ms: u64,
    /// Delay before a throttled message is tried again on the same carrier, ms. Default 200.
    pub throttle_delay_ms: u64,
    /// Most resubmits driven by failed receipts. Default 3.
    pub max_receipt_retries: u32,
    /// Receipt `err` codes after which UNDELIV is worth retrying (EXPIRED always is). Default
    /// none.
    pub retryable_receipt_errors: Vec<String>,
    /// Statuses whose class this carrier overrides: name or number → `throttle`, `transient`,
    /// `permanent` (e.g. `{ "ESME_RINVDSTADR" = "transient" }` for a carrier that uses it for
    /// "no route").
    pub status_classes: HashMap<String, ClassName>,
}

/// A status class as written in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassName {
    /// Slow down and requeue on the same carrier.
    Throttle,
    /// Back off, maybe elsewhere.
    Transient,
    /// Fail the message.
    Permanent,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff_ms: 2_000,
            max_backoff_ms: 600_000,
            throttle_delay_ms: 200,
            max_receipt_retries: 3,
            retryable_receipt_errors: Vec::new(),
            status_classes: HashMap::new(),
        }
    }
}

/// A policy whose configuration could not be read; the text names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

/// How one attempt ended, as the dispatcher saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Every part accepted.
    Accepted,
    /// A part was answered with this error status.
    Rejected(CommandStatus),
    /// A part's response never came.
    InDoubt,
    /// The bind went down with the parts unanswered; like in doubt, but the SMSC most
    /// likely never saw them if nothing was written.
    BindLost,
    /// The carrier's breaker is open or none of its binds is up.
    Unavailable,
}

/// Why a message failed, in words a producer can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailReason {
    /// A stable machine code (`ESME_RINVDSTADR`, `max_attempts`, `in_doubt`, `UNDELIV`).
    pub code: String,
    /// A sentence.
    pub message: String,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Done: every part accepted.
    Submitted,
    /// Throttled: try again on the same carrier after `delay`; never counts as a failure.
    Requeue {
        /// How long to wait.
        delay: Duration,
    },
    /// Try again after `delay`, on the next carrier if `switch_carrier`.
    Retry {
        /// How long to wait.
        delay: Duration,
        /// Whether to prefer another carrier.
        switch_carrier: bool,
        /// True when this resubmits parts the SMSC may already have (counted).
        in_doubt: bool,
    },
    /// Wait this long for a receipt or a late response to settle the doubt.
    AwaitSettlement {
        /// How long.
        wait: Duration,
    },
    /// Give up: the message fails with this reason.
    Fail(FailReason),
    /// The TTL would pass first: the message expires.
    Expire,
}

/// What a receipt means for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptClass {
    /// Delivered to the handset.
    Delivered,
    /// Not final yet (ENROUTE, ACCEPTD where treated as intermediate, unknown words).
    Pending,
    /// Failed, but worth sending again.
    Transient,
    /// Failed for good.
    Permanent,
}

impl RetryPolicy {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_attempts == 0 {
            return Err(PolicyError("retry.max_attempts: at least 1".into()));
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return Err(PolicyError(
                "retry.initial_backoff_ms: above retry.max_backoff_ms".into(),
            ));
        }
        for status in self.status_classes.keys() {
            if CommandStatus::parse(status).is_none() {
                return Err(PolicyError(format!(
                    "retry.status_classes: unknown status {status:?}"
                )));
            }
        }
        Ok(())
    }

    /// The class of a response status on this carrier: the override if there is one, else
    /// the house default. Session statuses (e.g. ESME_RINVBNDSTS) are the bind's problem, so
    /// the message is retried.
    pub fn classify(&self, status: CommandStatus) -> StatusClass {
        for (name, class) in &self.status_classes {
            if CommandStatus::parse(name) == Some(status) {
                return match class {
                    ClassName::Throttle => StatusClass::Throttle,
                    ClassName::Transient => StatusClass::Transient,
                    ClassName::Permanent => StatusClass::Permanent,
                };
            }
        }
        match status.class() {
            StatusClass::Session => StatusClass::Transient,
            class => class,
        }
    }

    /// Exponential backoff with equal jitter: half the step fixed, half random (`draw` is a
    /// uniform random number).
    pub fn backoff(&self, attempts_made: u32, draw: u64) -> Duration {
        let step = self
            .initial_backoff_ms
            .saturating_mul(1u64 << attempts_made.saturating_sub(1).min(32))
            .min(self.max_backoff_ms);
        let half = step / 2;
        Duration::from_millis(half + if half == 0 { 0 } else { draw % (half + 1) })
    }

    /// What to do after an attempt. `attempts_made` counts this one; `expires_at` is the
    /// message's TTL; `in_doubt` is the carrier's policy for missing responses.
    pub fn after_attempt(
        &self,
        outcome: AttemptOutcome,
        attempts_made: u32,
        now: SystemTime,
        expires_at: SystemTime,
        in_doubt: InDoubtPolicy,
        draw: u64,
    ) -> Decision {
        let retry = |switch_carrier: bool, in_doubt: bool, delay: Duration| {
            if attempts_made >= self.max_attempts {
                return Decision::Fail(FailReason {
                    code: "max_attempts".into(),
                    message: format!("gave up after {attempts_made} attempts"),
                });
            }
            if now + delay >= expires_at {
                return Decision::Expire;
            }
            Decision::Retry {
                delay,
                switch_carrier,
                in_doubt,
            }
        };
        match outcome {
            AttemptOutcome::Accepted => Decision::Submitted,
            AttemptOutcome::Rejected(status) => match self.classify(status) {
                StatusClass::Ok => Decision::Submitted,
                StatusClass::Throttle => {
                    let delay = Duration::from_millis(self.throttle_delay_ms);
                    if now + delay >= expires_at {
                        Decision::Expire
                    } else {
                        Decision::Requeue { delay }
                    }
                }
                StatusClass::Transient | StatusClass::Session => {
                    retry(true, false, self.backoff(attempts_made, draw))
                }
                StatusClass::Permanent => Decision::Fail(FailReason {
                    code: status.to_string(),
                    message: format!("the carrier refused the message with {status}"),
                }),
            },
            // Nothing was sent anywhere: try the next carrier soon, without spending an
            // attempt's backoff.
            AttemptOutcome::Unavailable => {
                let delay = Duration::from_millis(self.throttle_delay_ms);
                if now + delay >= expires_at {
                    Decision::Expire
                } else {
                    Decision::Requeue { delay }
                }
            }
            AttemptOutcome::InDoubt | AttemptOutcome::BindLost => match in_doubt {
                InDoubtPolicy::Resubmit => retry(true, true, Duration::ZERO),
                InDoubtPolicy::WaitForReceipt { wait_secs } => Decision::AwaitSettlement {
                    wait: Duration::from_secs(wait_secs),
                },
                InDoubtPolicy::Fail => Decision::Fail(FailReason {
                    code: "in_doubt".into(),
                    message: "no response to the submit; resubmitting could duplicate it".into(),
                }),
            },
        }
    }

    /// What a receipt means (DESIGN: UNDELIV/EXPIRED with a retryable error are transient;
    /// REJECTD, DELETED and other UNDELIV are permanent). `accepted_is_final` is the carrier's
    /// reading of ACCEPTD.
    pub fn classify_receipt(
        &self,
        stat: &ReceiptStat,
        err: Option<&str>,
        accepted_is_final: bool,
    ) -> ReceiptClass {
        match stat {
            ReceiptStat::Delivered => ReceiptClass::Delivered,
            ReceiptStat::Accepted if accepted_is_final => ReceiptClass::Delivered,
            ReceiptStat::Accepted | ReceiptStat::Enroute => ReceiptClass::Pending,
            ReceiptStat::Expired => ReceiptClass::Transient,
            ReceiptStat::Undeliverable => {
                let retryable = err.is_some_and(|e| {
                    let e = e.trim_start_matches('0');
                    self.retryable_receipt_errors
                        .iter()
                        .any(|r| r.trim_start_matches('0') == e)
                });
                if retryable {
                    ReceiptClass::Transient
                } else {
                    ReceiptClass::Permanent
                }
            }
            ReceiptStat::Rejected | ReceiptStat::Deleted | ReceiptStat::Unknown => {
                ReceiptClass::Permanent
            }
            // Providers that write FAILED mean a final failure.
            ReceiptStat::Other(word) if word == "FAILED" => ReceiptClass::Permanent,
            // Other words outside Table B-2: not final; the receipt timeout settles them.
            ReceiptStat::Other(_) => ReceiptClass::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW + Duration::from_secs(secs)
    }

    fn decide(policy: &RetryPolicy, outcome: AttemptOutcome, attempts: u32) -> Decision {
        policy.after_attempt(
            outcome,
            attempts,
            at(0),
            at(3600),
            InDoubtPolicy::Resubmit,
            0,
        )
    }

    #[test]
    fn throttling_requeues_on_the_same_carrier_and_never_fails() {
        let p = RetryPolicy::default();
        for attempts in [1, 5, 50] {
            assert_eq!(
                decide(
                    &p,
                    AttemptOutcome::Rejected(CommandStatus::ESME_RTHROTTLED),
                    attempts
                ),
                Decision::Requeue {
                    delay: Duration::from_millis(200)
                }
            );
        }
        assert!(matches!(
            decide(
                &p,
                AttemptOutcome::Rejected(CommandStatus::ESME_RMSGQFUL),
                1
            ),
            Decision::Requeue { .. }
        ));
    }

    #[test]
    fn transient_errors_back_off_on_another_carrier_until_max_attempts() {
        let p = RetryPolicy::default();
        let Decision::Retry {
            delay,
            switch_carrier,
            in_doubt,
        } = decide(&p, AttemptOutcome::Rejected(CommandStatus::ESME_RSYSERR), 1)
        else {
            panic!()
        };
        assert!(switch_carrier && !in_doubt);
        assert!(delay >= Duration::from_millis(1000) && delay <= Duration::from_millis(2000));
        let Decision::Fail(reason) =
            decide(&p, AttemptOutcome::Rejected(CommandStatus::ESME_RSYSERR), 5)
        else {
            panic!()
        };
        assert_eq!(reason.code, "max_attempts");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for (attempts, low, high) in [
            (1, 1_000, 2_000),
            (2, 2_000, 4_000),
            (3, 4_000, 8_000),
            (20, 300_000, 600_000),
        ] {
            for draw in [0, 1, 777, u64::MAX] {
                let ms = p.backoff(attempts, draw).as_millis() as u64;
                assert!((low..=high).contains(&ms), "attempt {attempts}: {ms}");
            }
        }
    }

    #[test]
    fn permanent_errors_fail_with_the_status_as_reason() {
        let p = RetryPolicy::default();
        let Decision::Fail(reason) = decide(
            &p,
            AttemptOutcome::Rejected(CommandStatus::ESME_RINVDSTADR),
            1,
        ) else {
            panic!()
        };
        assert_eq!(reason.code, "ESME_RINVDSTADR");
    }

    #[test]
    fn a_carrier_can_reclassify_a_status() {
        let mut p = RetryPolicy::default();
        p.status_classes
            .insert("ESME_RINVDSTADR".into(), ClassName::Transient);
        assert!(p.validate().is_ok());
        assert!(matches!(
            decide(
                &p,
                AttemptOutcome::Rejected(CommandStatus::ESME_RINVDSTADR),
                1
            ),
            Decision::Retry { .. }
        ));
        p.status_classes
            .insert("ESME_NOPE".into(), ClassName::Transient);
        assert!(p.validate().is_err());
    }

    #[test]
    fn a_retry_past_the_ttl_expires_the_message() {
        let p = RetryPolicy::default();
        let d = p.after_attempt(
            AttemptOutcome::Rejected(CommandStatus::ESME_RSYSERR),
            1,
            at(0),
            at(1),
            InDoubtPolicy::Resubmit,
            0,
        );
        assert_eq!(d, Decision::Expire);
    }

    #[test]
    fn in_doubt_follows_the_carrier_policy() {
        let p = RetryPolicy::default();
        assert!(matches!(
            decide(&p, AttemptOutcome::InDoubt, 1),
            Decision::Retry { in_doubt: true, delay, .. } if delay.is_zero()
        ));
        let wait = p.after_attempt(
            AttemptOutcome::InDoubt,
            1,
            at(0),
            at(3600),
            InDoubtPolicy::WaitForReceipt { wait_secs: 60 },
            0,
        );
        assert_eq!(
            wait,
            Decision::AwaitSettlement {
                wait: Duration::from_secs(60)
            }
        );
        let fail = p.after_attempt(
            AttemptOutcome::InDoubt,
            1,
            at(0),
            at(3600),
            InDoubtPolicy::Fail,
            0,
        );
        assert!(matches!(fail, Decision::Fail(r) if r.code == "in_doubt"));
    }

    #[test]
    fn receipts_are_classified_like_the_house_table() {
        let mut p = RetryPolicy::default();
        assert_eq!(
            p.classify_receipt(&ReceiptStat::Delivered, None, true),
            ReceiptClass::Delivered
        );
        assert_eq!(
            p.classify_receipt(&ReceiptStat::Expired, None, true),
            ReceiptClass::Transient
        );
        assert_eq!(
            p.classify_receipt(&ReceiptStat::Undeliverable, Some("027"), true),
            ReceiptClass::Permanent
        );
        p.retryable_receipt_errors = vec!["27".into()];
        assert_eq!(
            p.classify_receipt(&ReceiptStat::Undeliverable, Some("027"), true),
            ReceiptClass::Transient
        );
        assert_eq!(
            p.classify_receipt(&ReceiptStat::Rejected, None, true),
            ReceiptClass::Permanent
        );
        assert_eq!(
            p.classify_receipt(&ReceiptStat::Accepted, None, false),
            ReceiptClass::Pending
        );
        assert_eq!(
            p.classify_receipt(&ReceiptStat::Other("ACKED".into()), None, true),
            ReceiptClass::Pending
        );
    }
}
