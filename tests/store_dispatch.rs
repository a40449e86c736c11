//! The store on disk as the dispatcher uses it: claims, attempts, retries, final states.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use smppd::pdu::CommandStatus;
use smppd::sms::{Encoding, IdFormat, normalize_message_id};
use smppd::store::{
    AfterAttempt, AttemptOutcome, FinalState, FreshClaims, ManualClock, Message, MessageId,
    MessageState, NewAttempt, NewMessage, PartState, Priority, Reason, SplitMix64, SqliteConfig,
    SqliteStore, Store, Timestamp, Update, UpdateOutcome,
};

const T0: i64 = 1_700_000_000_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

fn message(to: &str, priority: u8) -> NewMessage {
    NewMessage {
        idempotency_key: None,
        to: to.into(),
        from: "Brand".into(),
        body: "hello".into(),
        encoding: Encoding::Gsm7,
        parts: 1,
        priority: Priority::new(priority).unwrap(),
        expires_at: at(86_400_000),
        not_before: None,
        callback_url: None,
        carrier: None,
        tags: None,
    }
}

async fn open(dir: &Path, clock: &ManualClock) -> SqliteStore {
    SqliteStore::open_with(
        SqliteConfig::in_dir(dir),
        Arc::new(clock.clone()),
        Box::new(SplitMix64::new(11)),
    )
    .await
    .expect("open store")
}

async fn accept_one(store: &SqliteStore, m: NewMessage) -> MessageId {
    store.accept(vec![m]).await.unwrap()[0].id().unwrap()
}

async fn state(store: &SqliteStore, id: MessageId) -> MessageState {
    store.get(id).await.unwrap().unwrap().message.state
}

async fn apply1(store: &SqliteStore, u: Update) -> UpdateOutcome {
    store.apply(vec![u]).await.unwrap().remove(0)
}

fn attempt(outcome: AttemptOutcome, status: Option<CommandStatus>) -> NewAttempt {
    NewAttempt {
        carrier: "acme".into(),
        bind: "acme-1".into(),
        parts: 1,
        command_status: status,
        outcome,
        detail: None,
        started_at: at(10),
        ended_at: at(20),
    }
}

fn reason(code: &str) -> Reason {
    Reason::new(code, format!("because {code}"))
}

#[tokio::test]
async fn claims_take_higher_priority_first_then_the_earliest_attempt_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let mut expect = Vec::new();
    // Accepted in an order that is neither priority nor time order.
    let low_late = accept_one(
        &store,
        NewMessage {
            not_before: Some(at(-5)),
            ..message("+1", 0)
        },
    )
    .await;
    let high_late = accept_one(
        &store,
        NewMessage {
            not_before: Some(at(-1)),
            ..message("+2", 3)
        },
    )
    .await;
    let high_early = accept_one(
        &store,
        NewMessage {
            not_before: Some(at(-9)),
            ..message("+3", 3)
        },
    )
    .await;
    let mid = accept_one(&store, message("+4", 1)).await;
    let low_early = accept_one(
        &store,
        NewMessage {
            not_before: Some(at(-50)),
            ..message("+5", 0)
        },
    )
    .await;
    expect.extend([high_early, high_late, mid, low_early, low_late]);

    let first = store.claim(2).await.unwrap();
    let rest = store.claim(10).await.unwrap();
    let got: Vec<_> = first.iter().chain(&rest).map(|m| m.id).collect();
    assert_eq!(got, expect);
    assert!(
        first
            .iter()
            .all(|m| m.state == MessageState::Submitting && m.updated_at == at(0))
    );
    assert!(store.claim(10).await.unwrap().is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get(MessageState::Submitting), 5);
    assert_eq!(counts.get(MessageState::Accepted), 0);
}

#[tokio::test]
async fn a_message_scheduled_for_later_is_claimed_only_when_its_time_comes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let later = accept_one(
        &store,
        NewMessage {
            not_before: Some(at(60_000)),
            ..message("+1", 3)
        },
    )
    .await;
    assert!(store.claim(10).await.unwrap().is_empty());
    clock.advance(Duration::from_millis(59_999));
    assert!(store.claim(10).await.unwrap().is_empty());
    clock.advance(Duration::from_millis(1));
    let claimed = store.claim(10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, later);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_get_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let mut all = HashSet::new();
    for b in 0..3 {
        let batch: Vec<_> = (0..1000)
            .map(|i| message(&format!("+{b}{i}"), (i % 4) as u8))
            .collect();
        all.extend(
            store
                .accept(batch)
                .await
                .unwrap()
                .iter()
                .map(|o| o.id().unwrap()),
        );
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(37).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "{id} claimed twice");
        }
    }
    assert_eq!(total, 3000);
    assert_eq!(seen, all);
}

#[tokio::test]
async fn an_accepted_attempt_moves_to_submitted_and_its_deadline_is_reported_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 0)).await;
    store.claim(1).await.unwrap();
    let key = normalize_message_id("ab12", IdFormat::Hex);
    let out = store
        .apply(vec![
            Update::PartSubmitted {
                id,
                part: 0,
                carrier: "acme".into(),
                bind: "acme-1".into(),
                carrier_message_id: "AB12".into(),
                key: key.clone(),
            },
            Update::AttemptFinished {
                id,
                attempt: attempt(AttemptOutcome::Accepted, Some(CommandStatus::ESME_ROK)),
                next: AfterAttempt::Submitted {
                    receipt_deadline: at(72 * 3600 * 1000),
                },
            },
        ])
        .await
        .unwrap();
    assert_eq!(out, [UpdateOutcome::Applied, UpdateOutcome::Applied]);

    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Submitted);
    assert_eq!(d.message.attempts, 1);
    assert_eq!(d.message.next_attempt_at, Some(at(72 * 3600 * 1000)));
    assert_eq!(d.parts.len(), 1);
    let p = &d.parts[0];
    assert_eq!(p.state, PartState::Submitted);
    assert_eq!((p.carrier.as_str(), p.bind.as_str()), ("acme", "acme-1"));
    assert_eq!(p.carrier_message_id.as_deref(), Some("AB12"));
    assert_eq!(p.message_id_key.as_deref(), Some(key.as_str()));
    assert_eq!(p.command_status, CommandStatus::ESME_ROK);
    assert_eq!(p.submitted_at, Some(at(0)));
    assert_eq!(d.attempts.len(), 1);
    assert_eq!(d.attempts[0].number, 1);
    assert_eq!(
        d.attempts[0].attempt,
        attempt(AttemptOutcome::Accepted, Some(CommandStatus::ESME_ROK))
    );

    assert!(store.receipt_overdue(10).await.unwrap().is_empty());
    clock.set(at(72 * 3600 * 1000));
    assert_eq!(store.receipt_overdue(10).await.unwrap(), [id]);
    apply1(
        &store,
        Update::Finish {
            id,
            state: FinalState::Unknown,
            reason: reason("receipt_timeout"),
        },
    )
    .await;
    assert!(store.receipt_overdue(10).await.unwrap().is_empty());
    let m = store.get(id).await.unwrap().unwrap().message;
    assert_eq!(m.state, MessageState::Unknown);
    assert_eq!(m.reason, Some(reason("receipt_timeout")));
    assert_eq!(m.next_attempt_at, None);
}

#[tokio::test]
async fn a_transient_failure_schedules_a_retry_that_is_claimed_at_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 0)).await;
    store.claim(1).await.unwrap();
    let sys = CommandStatus::ESME_RSYSERR;
    let out = store
        .apply(vec![
            Update::PartRejected {
                id,
                part: 0,
                carrier: "acme".into(),
                bind: "acme-1".into(),
                status: sys,
            },
            Update::AttemptFinished {
                id,
                attempt: attempt(AttemptOutcome::Transient, Some(sys)),
                next: AfterAttempt::Retry {
                    at: at(30_000),
                    reason: Reason::from_status(sys, "System error"),
                },
            },
        ])
        .await
        .unwrap();
    assert_eq!(out, [UpdateOutcome::Applied, UpdateOutcome::Applied]);
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Retrying);
    assert_eq!(d.message.next_attempt_at, Some(at(30_000)));
    assert_eq!(
        d.message.reason,
        Some(Reason::new("ESME_RSYSERR", "System error"))
    );
    assert_eq!(d.parts[0].state, PartState::Rejected);
    assert_eq!(d.parts[0].command_status, sys);
    assert_eq!(d.parts[0].carrier_message_id, None);

    assert!(store.claim(5).await.unwrap().is_empty());
    clock.set(at(30_000));
    let again = store.claim(5).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    // The second attempt succeeds: the part record is replaced, both attempts are kept.
    store
        .apply(vec![
            Update::PartSubmitted {
                id,
                part: 0,
                carrier: "globex".into(),
                bind: "globex-2".into(),
                carrier_message_id: "77".into(),
                key: normalize_message_id("77", IdFormat::Decimal),
            },
            Update::AttemptFinished {
                id,
                attempt: NewAttempt {
                    carrier: "globex".into(),
                    ..attempt(AttemptOutcome::Accepted, Some(CommandStatus::ESME_ROK))
                },
                next: AfterAttempt::Submitted {
                    receipt_deadline: at(100_000),
                },
            },
        ])
        .await
        .unwrap();
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Submitted);
    assert_eq!(d.message.attempts, 2);
    assert_eq!(
        d.attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(d.attempts[0].attempt.outcome, AttemptOutcome::Transient);
    assert_eq!(d.attempts[1].attempt.carrier, "globex");
    assert_eq!(d.parts[0].state, PartState::Submitted);
    assert_eq!(d.parts[0].carrier, "globex");
    assert_eq!(d.parts[0].command_status, CommandStatus::ESME_ROK);
}

#[tokio::test]
async fn a_permanent_failure_ends_the_message_with_the_status_as_reason() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 0)).await;
    store.claim(1).await.unwrap();
    let bad = CommandStatus::ESME_RINVDSTADR;
    let out = apply1(
        &store,
        Update::AttemptFinished {
            id,
            attempt: attempt(AttemptOutcome::Permanent, Some(bad)),
            next: AfterAttempt::Final {
                state: FinalState::Failed,
                reason: Reason::from_status(bad, "Invalid destination address"),
            },
        },
    )
    .await;
    assert_eq!(out, UpdateOutcome::Applied);
    let m = store.get(id).await.unwrap().unwrap().message;
    assert_eq!(m.state, MessageState::Failed);
    assert_eq!(m.reason.unwrap().code, "ESME_RINVDSTADR");
    assert_eq!(m.next_attempt_at, None);
    assert_eq!(store.counts().await.unwrap().get(MessageState::Failed), 1);

    // Final is final.
    for u in [
        Update::Finish {
            id,
            state: FinalState::Delivered,
            reason: reason("DELIVRD"),
        },
        Update::ScheduleRetry {
            id,
            at: at(5),
            reason: reason("again"),
        },
        Update::InDoubtResubmit { id },
        Update::Cancel {
            id,
            reason: reason("cancelled"),
        },
    ] {
        assert_eq!(
            apply1(&store, u).await,
            UpdateOutcome::NotAllowed {
                state: MessageState::Failed
            }
        );
    }
}

#[tokio::test]
async fn an_attempt_can_only_finish_on_a_claimed_message() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 0)).await;
    let finish = Update::AttemptFinished {
        id,
        attempt: attempt(AttemptOutcome::Accepted, None),
        next: AfterAttempt::Submitted {
            receipt_deadline: at(1),
        },
    };
    assert_eq!(
        apply1(&store, finish.clone()).await,
        UpdateOutcome::NotAllowed {
            state: MessageState::Accepted
        }
    );
    assert!(store.get(id).await.unwrap().unwrap().attempts.is_empty());
    let unknown = MessageId::from_u128(42);
    assert_eq!(
        apply1(&store, Update::InDoubtResubmit { id: unknown }).await,
        UpdateOutcome::NotFound
    );
}

#[tokio::test]
async fn in_doubt_resubmits_are_counted_on_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 0)).await;
    store.claim(1).await.unwrap();
    let out = store
        .apply(vec![
            Update::InDoubtResubmit { id },
            Update::InDoubtResubmit { id },
            Update::AttemptFinished {
                id,
                attempt: attempt(AttemptOutcome::NoResponse, None),
                next: AfterAttempt::Retry {
                    at: at(1),
                    reason: reason("response_timeout"),
                },
            },
        ])
        .await
        .unwrap();
    assert!(out.iter().all(|o| *o == UpdateOutcome::Applied));
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.in_doubt_resubmits, 2);
    assert_eq!(d.attempts[0].attempt.outcome, AttemptOutcome::NoResponse);
    assert_eq!(d.attempts[0].attempt.command_status, None);
}

#[tokio::test]
async fn cancel_succeeds_only_before_submission() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let waiting = accept_one(&store, message("+1", 0)).await;
    let cancel = |id| Update::Cancel {
        id,
        reason: reason("cancelled_by_producer"),
    };
    assert_eq!(
        apply1(&store, cancel(waiting)).await,
        UpdateOutcome::Applied
    );
    let m = store.get(waiting).await.unwrap().unwrap().message;
    assert_eq!(m.state, MessageState::Cancelled);
    assert_eq!(m.reason, Some(reason("cancelled_by_producer")));
    assert!(store.claim(10).await.unwrap().is_empty());

    let busy = accept_one(&store, message("+2", 0)).await;
    store.claim(1).await.unwrap();
    assert_eq!(
        apply1(&store, cancel(busy)).await,
        UpdateOutcome::NotAllowed {
            state: MessageState::Submitting
        }
    );

    // Retrying (nothing in flight) may be cancelled.
    apply1(
        &store,
        Update::AttemptFinished {
            id: busy,
            attempt: attempt(
                AttemptOutcome::Throttled,
                Some(CommandStatus::ESME_RTHROTTLED),
            ),
            next: AfterAttempt::Retry {
                at: at(1000),
                reason: reason("ESME_RTHROTTLED"),
            },
        },
    )
    .await;
    assert_eq!(apply1(&store, cancel(busy)).await, UpdateOutcome::Applied);
    assert_eq!(
        store.counts().await.unwrap().get(MessageState::Cancelled),
        2
    );
}

#[tokio::test]
async fn a_released_message_becomes_ready_again_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 2)).await;
    store.claim(1).await.unwrap();
    assert_eq!(
        apply1(&store, Update::Release { id, at: at(500) }).await,
        UpdateOutcome::Applied
    );
    let m = store.get(id).await.unwrap().unwrap().message;
    assert_eq!(m.state, MessageState::Accepted, "no attempt was made");
    assert_eq!(m.next_attempt_at, Some(at(500)));
    assert_eq!(
        apply1(&store, Update::Release { id, at: at(0) }).await,
        UpdateOutcome::NotAllowed {
            state: MessageState::Accepted
        }
    );
    clock.set(at(500));
    assert_eq!(store.claim(1).await.unwrap()[0].id, id);

    // After an attempt, a release goes back to retrying and keeps the last reason.
    apply1(
        &store,
        Update::AttemptFinished {
            id,
            attempt: attempt(AttemptOutcome::Transient, Some(CommandStatus::ESME_RSYSERR)),
            next: AfterAttempt::Retry {
                at: at(600),
                reason: reason("ESME_RSYSERR"),
            },
        },
    )
    .await;
    clock.set(at(600));
    store.claim(1).await.unwrap();
    apply1(&store, Update::Release { id, at: at(700) }).await;
    let m = store.get(id).await.unwrap().unwrap().message;
    assert_eq!(m.state, MessageState::Retrying);
    assert_eq!(m.reason, Some(reason("ESME_RSYSERR")));
}

#[tokio::test]
async fn a_receipt_driven_retry_moves_a_submitted_message_back_to_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 0)).await;
    store.claim(1).await.unwrap();
    apply1(
        &store,
        Update::AttemptFinished {
            id,
            attempt: attempt(AttemptOutcome::Accepted, Some(CommandStatus::ESME_ROK)),
            next: AfterAttempt::Submitted {
                receipt_deadline: at(1_000_000),
            },
        },
    )
    .await;
    assert_eq!(
        apply1(
            &store,
            Update::ScheduleRetry {
                id,
                at: at(5_000),
                reason: reason("UNDELIV"),
            },
        )
        .await,
        UpdateOutcome::Applied
    );
    let m = store.get(id).await.unwrap().unwrap().message;
    assert_eq!(m.state, MessageState::Retrying);
    assert_eq!(m.next_attempt_at, Some(at(5_000)));
    assert!(store.receipt_overdue(10).await.unwrap().is_empty());
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get(MessageState::Retrying), 1);
    assert_eq!(counts.get(MessageState::Submitted), 0);
}

#[tokio::test]
async fn counts_follow_every_transition() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let batch: Vec<_> = (0..6).map(|i| message(&format!("+{i}"), 0)).collect();
    let ids: Vec<_> = store
        .accept(batch)
        .await
        .unwrap()
        .iter()
        .map(|o| o.id().unwrap())
        .collect();
    store.claim(4).await.unwrap();
    let fin = |id, state| Update::Finish {
        id,
        state,
        reason: reason("x"),
    };
    store
        .apply(vec![
            fin(ids[0], FinalState::Delivered),
            fin(ids[1], FinalState::Expired),
            fin(ids[2], FinalState::Rejected),
            Update::Cancel {
                id: ids[4],
                reason: reason("c"),
            },
        ])
        .await
        .unwrap();
    let c = store.counts().await.unwrap();
    let expect = [
        (MessageState::Accepted, 1),
        (MessageState::Submitting, 1),
        (MessageState::Delivered, 1),
        (MessageState::Expired, 1),
        (MessageState::Rejected, 1),
        (MessageState::Cancelled, 1),
    ];
    for (s, n) in c.iter() {
        let want = expect.iter().find(|(e, _)| *e == s).map_or(0, |(_, n)| *n);
        assert_eq!(n, want, "{s}");
    }
    assert_eq!(c.open(), 2);
    assert_eq!(state(&store, ids[3]).await, MessageState::Submitting);

    // The counts are rebuilt from the file on open.
    drop(store);
    let store = open(dir.path(), &clock).await;
    assert_eq!(store.counts().await.unwrap(), c);
}

/// The updates of an attempt whose one part the carrier accepted as `carrier_id` (decimal).
fn accepted_attempt(id: MessageId, carrier_id: &str) -> Vec<Update> {
    vec![
        Update::PartSubmitted {
            id,
            part: 0,
            carrier: "acme".into(),
            bind: "acme-1".into(),
            carrier_message_id: carrier_id.into(),
            key: normalize_message_id(carrier_id, IdFormat::Decimal),
        },
        Update::AttemptFinished {
            id,
            attempt: attempt(AttemptOutcome::Accepted, Some(CommandStatus::ESME_ROK)),
            next: AfterAttempt::Submitted {
                receipt_deadline: at(72 * 3600 * 1000),
            },
        },
    ]
}

#[tokio::test]
async fn a_retry_claimed_after_newer_messages_is_in_doubt_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let old = accept_one(&store, message("+1", 0)).await;
    store.claim(1).await.unwrap();
    let retry = Update::AttemptFinished {
        id: old,
        attempt: attempt(AttemptOutcome::Transient, Some(CommandStatus::ESME_RSYSERR)),
        next: AfterAttempt::Retry {
            at: at(60_000),
            reason: reason("transient"),
        },
    };
    assert_eq!(apply1(&store, retry).await, UpdateOutcome::Applied);
    // Newer messages go out and are submitted; then the old one is claimed again, below them.
    let newer: Vec<MessageId> = store
        .accept((2..6).map(|i| message(&format!("+{i}"), 0)).collect())
        .await
        .unwrap()
        .iter()
        .map(|o| o.id().unwrap())
        .collect();
    assert_eq!(store.claim(10).await.unwrap().len(), 4);
    for (i, id) in newer.iter().enumerate() {
        let out = store
            .apply(accepted_attempt(*id, &i.to_string()))
            .await
            .unwrap();
        assert_eq!(out, [UpdateOutcome::Applied, UpdateOutcome::Applied]);
    }
    clock.set(at(60_000));
    let again = store.claim(10).await.unwrap();
    assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), [old]);
    drop(store); // no close()

    let store = open(dir.path(), &clock).await;
    let rec = store.recover().await.unwrap();
    let in_doubt: Vec<_> = rec.in_doubt.iter().map(|d| d.message.id).collect();
    assert_eq!(in_doubt, [old]);
    assert_eq!(rec.awaiting_receipts, 4);
    // Its second attempt is recorded as the second, and a part of it may be written.
    let out = store.apply(accepted_attempt(old, "99")).await.unwrap();
    assert_eq!(out, [UpdateOutcome::Applied, UpdateOutcome::Applied]);
    let d = store.get(old).await.unwrap().unwrap();
    assert_eq!(
        d.attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(d.parts[0].carrier_message_id.as_deref(), Some("99"));
    // Submitted, it is no longer in doubt at the next start.
    store.close().await.unwrap();
    let store = open(dir.path(), &clock).await;
    assert!(store.recover().await.unwrap().in_doubt.is_empty());
}

#[tokio::test]
async fn a_part_of_a_message_that_is_not_submitting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = accept_one(&store, message("+1", 0)).await;
    store.claim(1).await.unwrap();
    let finish = Update::Finish {
        id,
        state: FinalState::Failed,
        reason: reason("no_route"),
    };
    assert_eq!(apply1(&store, finish).await, UpdateOutcome::Applied);
    // A late response for a finished message is not recorded.
    let part = Update::PartSubmitted {
        id,
        part: 0,
        carrier: "acme".into(),
        bind: "acme-1".into(),
        carrier_message_id: "5".into(),
        key: normalize_message_id("5", IdFormat::Decimal),
    };
    assert_eq!(
        apply1(&store, part).await,
        UpdateOutcome::NotAllowed {
            state: MessageState::Failed
        }
    );
    assert!(store.get(id).await.unwrap().unwrap().parts.is_empty());
}

/// What the store hands on as it accepts, with the room it was given.
fn fresh(store: &SqliteStore, room: usize) -> tokio::sync::mpsc::UnboundedReceiver<Vec<Message>> {
    let (to, rx) = tokio::sync::mpsc::unbounded_channel();
    store.claim_fresh(FreshClaims {
        room: Arc::new(AtomicUsize::new(room)),
        to,
    });
    rx
}

fn handed(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<Message>>) -> Vec<Message> {
    let mut all = Vec::new();
    while let Ok(messages) = rx.try_recv() {
        all.extend(messages);
    }
    all
}

#[tokio::test]
async fn fresh_messages_are_claimed_as_they_are_accepted_within_the_room() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let mut rx = fresh(&store, 2);
    let ids: Vec<MessageId> = store
        .accept((1..=3).map(|i| message(&format!("+{i}"), 1)).collect())
        .await
        .unwrap()
        .iter()
        .map(|o| o.id().unwrap())
        .collect();
    // Handed on before the accept was answered.
    let got = handed(&mut rx);
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..2]);
    for m in &got {
        assert_eq!(m.state, MessageState::Submitting);
        assert_eq!(m.attempts, 0);
        assert_eq!(state(&store, m.id).await, MessageState::Submitting);
    }
    assert_eq!(got[1].to, "+2");
    assert_eq!(got[1].created_at, at(0));
    // The room ran out: the third waits for a claim.
    assert_eq!(state(&store, ids[2]).await, MessageState::Accepted);
    assert_eq!(
        store
            .claim(10)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        [ids[2]]
    );
    // A directly claimed message is recorded like any claimed one.
    let out = store.apply(accepted_attempt(ids[0], "a")).await.unwrap();
    assert_eq!(out, [UpdateOutcome::Applied, UpdateOutcome::Applied]);
    assert_eq!(state(&store, ids[0]).await, MessageState::Submitted);
}

#[tokio::test]
async fn a_fresh_message_does_not_overtake_ready_ones_or_go_before_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let waiting = accept_one(&store, message("+1", 0)).await;
    let mut rx = fresh(&store, 10);
    // Something is ready: a new message queues behind it, whatever its priority.
    let urgent = accept_one(&store, message("+2", 3)).await;
    assert!(handed(&mut rx).is_empty());
    assert_eq!(state(&store, urgent).await, MessageState::Accepted);
    let claimed = store.claim(10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        [urgent, waiting]
    );
    // Nothing ready now, but a message for later waits for its time.
    let later = accept_one(
        &store,
        NewMessage {
            not_before: Some(at(60_000)),
            ..message("+3", 1)
        },
    )
    .await;
    assert!(handed(&mut rx).is_empty());
    assert_eq!(state(&store, later).await, MessageState::Accepted);
    let now = accept_one(&store, message("+4", 1)).await;
    assert_eq!(
        handed(&mut rx).iter().map(|m| m.id).collect::<Vec<_>>(),
        [now]
    );
}

#[tokio::test]
async fn a_fresh_message_claimed_as_it_was_accepted_is_in_doubt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let mut rx = fresh(&store, 10);
    let id = accept_one(&store, message("+1", 0)).await;
    assert_eq!(handed(&mut rx).len(), 1);
    drop(store); // no close()

    let store = open(dir.path(), &clock).await;
    let rec = store.recover().await.unwrap();
    let in_doubt: Vec<_> = rec.in_doubt.iter().map(|d| d.message.id).collect();
    assert_eq!(in_doubt, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_room_closes_a_write_is_answered_after_every_message_claimed_before() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = Arc::new(open(dir.path(), &clock).await);
    let room = Arc::new(AtomicUsize::new(1_000));
    let (to, mut rx) = tokio::sync::mpsc::unbounded_channel();
    store.claim_fresh(FreshClaims {
        room: Arc::clone(&room),
        to,
    });
    // Accepts race the closing of the room, as they do when the dispatcher stops.
    let accepting: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let batch = (0..10).map(|j| message(&format!("+{i}{j}"), 1)).collect();
                store.accept(batch).await.unwrap()
            })
        })
        .collect();
    tokio::task::yield_now().await;
    room.store(0, std::sync::atomic::Ordering::Release);
    store.writable().await.unwrap();
    let handed: HashSet<MessageId> = handed(&mut rx).iter().map(|m| m.id).collect();
    for task in accepting {
        for outcome in task.await.unwrap() {
            let id = outcome.id().unwrap();
            let s = state(&store, id).await;
            // Claimed with its accept and handed on, or left for a claim: never claimed and
            // held back.
            assert_eq!(
                s == MessageState::Submitting,
                handed.contains(&id),
                "{id} is {s:?}"
            );
        }
    }
}
