//! The store on disk as the receipt handler uses it: receipts matched to parts in either
//! order, roll-up information, MO messages.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smppd::pdu::CommandStatus;
use smppd::sms::{
    Encoding, IdFormat, IdNormalizer, MessageIdKey, ReceiptStat, normalize_message_id,
};
use smppd::store::{
    AfterAttempt, AttemptOutcome, FinalState, ManualClock, MessageId, MessageState, NewAttempt,
    NewMessage, NewMo, NewReceipt, PartState, Priority, Reason, ReceiptMatch, ReceiptOutcome,
    RollUp, SplitMix64, SqliteConfig, SqliteStore, Store, Timestamp, Update, UpdateOutcome,
};

const T0: i64 = 1_700_000_000_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

async fn open(dir: &Path, clock: &ManualClock) -> SqliteStore {
    open_holding(dir, clock, SqliteConfig::in_dir(dir).recent_parts).await
}

/// A store that holds at most `recent_parts` parts in memory for receipt correlation.
async fn open_holding(dir: &Path, clock: &ManualClock, recent_parts: usize) -> SqliteStore {
    let mut config = SqliteConfig::in_dir(dir);
    config.recent_parts = recent_parts;
    SqliteStore::open_with(
        config,
        Arc::new(clock.clone()),
        Box::new(SplitMix64::new(5)),
    )
    .await
    .expect("open store")
}

/// The parts in the on-disk correlation index, read from the file itself.
fn indexed_parts(dir: &Path) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("smppd.db")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM parts WHERE indexed = 1 AND id_key IS NOT NULL",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Stores one DELIVRD receipt from `acme` for carrier id `raw` (hex): what it matched.
async fn delivered_receipt(store: &SqliteStore, raw: &str) -> Vec<ReceiptOutcome> {
    store
        .store_receipts(vec![receipt("acme", raw, hex(raw), ReceiptStat::Delivered)])
        .await
        .unwrap()
}

/// The message a receipt matched; panics on anything else.
fn matched(outcome: &ReceiptOutcome) -> MessageId {
    match outcome {
        ReceiptOutcome::Matched(m) => m.message_id,
        other => panic!("expected a match, got {other:?}"),
    }
}

/// Finishes a message as delivered, as the receipt handler does after a final receipt.
fn delivered(id: MessageId) -> Update {
    Update::Finish {
        id,
        state: FinalState::Delivered,
        reason: Reason::new("DELIVRD", "the carrier reported delivery"),
    }
}

/// Records an accepted attempt: the message waits for its receipts.
fn attempt_accepted(id: MessageId, parts: u16) -> Update {
    Update::AttemptFinished {
        id,
        attempt: NewAttempt {
            carrier: "acme".into(),
            bind: "acme-1".into(),
            parts,
            command_status: Some(CommandStatus::ESME_ROK),
            outcome: AttemptOutcome::Accepted,
            detail: None,
            started_at: at(0),
            ended_at: at(0),
        },
        next: AfterAttempt::Submitted {
            receipt_deadline: at(1_000_000),
        },
    }
}

/// Accepts and claims a message of `parts` parts.
async fn claimed(store: &SqliteStore, parts: u16) -> MessageId {
    let m = NewMessage {
        idempotency_key: None,
        to: "+447700900123".into(),
        from: "Brand".into(),
        body: "x".repeat(200),
        encoding: Encoding::Gsm7,
        parts,
        priority: Priority::default(),
        expires_at: at(86_400_000),
        not_before: None,
        callback_url: None,
        carrier: None,
        tags: None,
    };
    let id = store.accept(vec![m]).await.unwrap()[0].id().unwrap();
    let got = store.claim(1).await.unwrap();
    assert_eq!(got[0].id, id);
    id
}

fn submitted(id: MessageId, part: u16, carrier: &str, raw: &str, key: MessageIdKey) -> Update {
    Update::PartSubmitted {
        id,
        part,
        carrier: carrier.into(),
        bind: format!("{carrier}-1"),
        carrier_message_id: raw.into(),
        key,
    }
}

/// Records part 0 of a one-part message as accepted under carrier id `raw`, and its attempt.
async fn sent(store: &SqliteStore, id: MessageId, raw: &str) {
    store
        .apply(vec![
            submitted(id, 0, "acme", raw, hex(raw)),
            attempt_accepted(id, 1),
        ])
        .await
        .unwrap();
}

/// Schedules a submitted message again at once and claims it.
async fn claimed_again(store: &SqliteStore, id: MessageId) {
    let retry = Update::ScheduleRetry {
        id,
        at: at(0),
        reason: Reason::new("EXPIRED", "expired"),
    };
    store.apply(vec![retry]).await.unwrap();
    assert_eq!(store.claim(1).await.unwrap().len(), 1);
}

fn receipt(carrier: &str, raw_id: &str, key: MessageIdKey, stat: ReceiptStat) -> NewReceipt {
    NewReceipt {
        carrier: carrier.into(),
        carrier_message_id: raw_id.into(),
        key,
        raw: format!(
            "id:{raw_id} sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
             stat:{stat} err:000 Text:hello"
        ),
        stat: Some(stat),
        err: Some("000".into()),
    }
}

fn hex(id: &str) -> MessageIdKey {
    normalize_message_id(id, IdFormat::Hex)
}

#[tokio::test]
async fn a_receipt_after_the_response_matches_the_part_and_reports_the_rollup() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    store
        .apply(vec![
            submitted(id, 0, "acme", "1A2B", hex("1A2B")),
            Update::AttemptFinished {
                id,
                attempt: NewAttempt {
                    carrier: "acme".into(),
                    bind: "acme-1".into(),
                    parts: 1,
                    command_status: Some(CommandStatus::ESME_ROK),
                    outcome: AttemptOutcome::Accepted,
                    detail: None,
                    started_at: at(0),
                    ended_at: at(0),
                },
                next: AfterAttempt::Submitted {
                    receipt_deadline: at(1_000_000),
                },
            },
        ])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(4));

    let out = delivered_receipt(&store, "1a2b").await;
    let ReceiptOutcome::Matched(m) = &out[0] else {
        panic!("expected a match, got {out:?}");
    };
    assert_eq!(m.message_id, id);
    assert_eq!(m.part, 0);
    assert_eq!(m.message_state, MessageState::Submitted);
    assert_eq!(m.parts_total, 1);
    assert_eq!(m.parts.len(), 1);
    assert_eq!(m.parts[0].state, PartState::Delivered);
    assert_eq!(m.parts[0].stat, Some(ReceiptStat::Delivered));
    assert_eq!(m.parts[0].err.as_deref(), Some("000"));
    assert!(m.all_parts_final());

    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.parts[0].state, PartState::Delivered);
    assert_eq!(d.parts[0].receipt_at, Some(at(4_000)));
    assert_eq!(d.receipts.len(), 1);
    let r = &d.receipts[0];
    assert_eq!(r.id, m.receipt_id);
    assert_eq!(r.part, Some(0));
    assert_eq!(r.carrier, "acme");
    assert_eq!(r.carrier_message_id, "1a2b");
    assert_eq!(r.key, hex("1A2B").as_str());
    assert_eq!(r.stat, Some(ReceiptStat::Delivered));
    assert!(r.raw.contains("stat:DELIVRD"));
    assert_eq!(r.received_at, at(4_000));
}

#[tokio::test]
async fn a_receipt_before_the_response_is_matched_when_the_response_lands() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    // The carrier writes hex in submit_sm_resp and decimal in receipts.
    let ids = IdNormalizer {
        submit_resp: IdFormat::Hex,
        receipt: IdFormat::Decimal,
    };
    let out = store
        .store_receipts(vec![receipt(
            "acme",
            "0439041101",
            ids.receipt_key("0439041101"),
            ReceiptStat::Delivered,
        )])
        .await
        .unwrap();
    let ReceiptOutcome::Unmatched { receipt_id } = out[0] else {
        panic!("nothing to match yet, got {out:?}");
    };
    assert!(store.get(id).await.unwrap().unwrap().receipts.is_empty());

    let out = store
        .apply(vec![submitted(
            id,
            0,
            "acme",
            "1A2B3C4D",
            ids.submit_resp_key("1A2B3C4D"),
        )])
        .await
        .unwrap();
    let UpdateOutcome::ReceiptMatched(m) = &out[0] else {
        panic!("the stored receipt should match, got {out:?}");
    };
    assert_eq!(m.receipt_id, receipt_id);
    assert_eq!(m.message_id, id);
    assert_eq!(m.parts[0].state, PartState::Delivered);
    assert!(m.all_parts_final());

    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.parts[0].state, PartState::Delivered);
    assert_eq!(d.receipts.len(), 1);
    assert_eq!(d.receipts[0].part, Some(0));

    // Matched once: a later part with the same key does not take it again.
    let other = claimed(&store, 1).await;
    let out = store
        .apply(vec![submitted(
            other,
            0,
            "acme",
            "1A2B3C4D",
            ids.submit_resp_key("1A2B3C4D"),
        )])
        .await
        .unwrap();
    assert_eq!(out[0], UpdateOutcome::Applied);
}

#[tokio::test]
async fn a_receipt_stored_before_a_restart_is_matched_when_the_response_lands_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    let out = delivered_receipt(&store, "9F").await;
    let ReceiptOutcome::Unmatched { receipt_id } = out[0] else {
        panic!("nothing to match yet, got {out:?}");
    };
    store.close().await.unwrap();

    // The reopened store knows a receipt is waiting, so the response still finds it.
    let store = open(dir.path(), &clock).await;
    let out = store
        .apply(vec![submitted(id, 0, "acme", "9F", hex("9F"))])
        .await
        .unwrap();
    let UpdateOutcome::ReceiptMatched(m) = &out[0] else {
        panic!("the stored receipt should match, got {out:?}");
    };
    assert_eq!(m.receipt_id, receipt_id);
    assert_eq!(m.parts[0].state, PartState::Delivered);

    // Once matched, nothing waits: the next response records its part alone.
    let other = claimed(&store, 1).await;
    let out = store
        .apply(vec![submitted(other, 0, "acme", "A0", hex("A0"))])
        .await
        .unwrap();
    assert_eq!(out[0], UpdateOutcome::Applied);
    let d = store.get(other).await.unwrap().unwrap();
    assert_eq!(d.parts[0].state, PartState::Submitted);
    assert!(d.receipts.is_empty());
}

#[tokio::test]
async fn receipts_match_parts_that_left_memory_through_the_index_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    // Memory holds one part: the older ones go to the index on disk.
    let store = open_holding(dir.path(), &clock, 1).await;
    let a = claimed(&store, 1).await;
    let b = claimed(&store, 1).await;
    let c = claimed(&store, 1).await;
    for (id, raw) in [(a, "A1"), (b, "B1"), (c, "C1")] {
        store
            .apply(vec![
                submitted(id, 0, "acme", raw, hex(raw)),
                attempt_accepted(id, 1),
            ])
            .await
            .unwrap();
    }
    assert_eq!(
        indexed_parts(dir.path()),
        2,
        "a and b left memory unreceipted"
    );

    let out = store
        .store_receipts(vec![
            receipt("acme", "a1", hex("a1"), ReceiptStat::Delivered),
            receipt("acme", "b1", hex("b1"), ReceiptStat::Delivered),
            receipt("acme", "c1", hex("c1"), ReceiptStat::Delivered),
            receipt("globex", "c1", hex("c1"), ReceiptStat::Delivered),
        ])
        .await
        .unwrap();
    assert_eq!(matched(&out[0]), a);
    assert_eq!(matched(&out[1]), b);
    assert_eq!(matched(&out[2]), c);
    assert!(matches!(out[3], ReceiptOutcome::Unmatched { .. }));

    // A reused id: the old part is on disk, the new one in memory; the new one matches.
    let old = claimed(&store, 1).await;
    store
        .apply(vec![submitted(old, 0, "acme", "77", hex("77"))])
        .await
        .unwrap();
    let filler = claimed(&store, 1).await;
    store
        .apply(vec![submitted(filler, 0, "acme", "F0", hex("F0"))])
        .await
        .unwrap();
    let new = claimed(&store, 1).await;
    store
        .apply(vec![submitted(new, 0, "acme", "77", hex("77"))])
        .await
        .unwrap();
    let out = delivered_receipt(&store, "77").await;
    assert_eq!(matched(&out[0]), new);
}

#[tokio::test]
async fn with_no_memory_every_part_is_matched_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open_holding(dir.path(), &clock, 0).await;
    let old = claimed(&store, 1).await;
    let new = claimed(&store, 1).await;
    store
        .apply(vec![
            submitted(old, 0, "acme", "7", hex("7")),
            submitted(new, 0, "acme", "7", hex("7")),
        ])
        .await
        .unwrap();
    assert_eq!(indexed_parts(dir.path()), 2);
    let out = delivered_receipt(&store, "7").await;
    assert_eq!(matched(&out[0]), new);
}

#[tokio::test]
async fn parts_of_finished_messages_never_reach_the_index_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open_holding(dir.path(), &clock, 2).await;
    for n in 0..6 {
        let id = claimed(&store, 1).await;
        let raw = format!("E{n}");
        store
            .apply(vec![
                submitted(id, 0, "acme", &raw, hex(&raw)),
                attempt_accepted(id, 1),
            ])
            .await
            .unwrap();
        let out = delivered_receipt(&store, &raw).await;
        assert_eq!(matched(&out[0]), id);
        assert_eq!(
            store.apply(vec![delivered(id)]).await.unwrap()[0],
            UpdateOutcome::Applied
        );
    }
    // Receipted but not finished (an intermediate receipt): that part goes to disk when it
    // leaves memory.
    let waiting = claimed(&store, 1).await;
    sent(&store, waiting, "AA").await;
    store
        .store_receipts(vec![receipt("acme", "AA", hex("AA"), ReceiptStat::Enroute)])
        .await
        .unwrap();
    for n in 0..2 {
        let id = claimed(&store, 1).await;
        let raw = format!("F{n}");
        store
            .apply(vec![submitted(id, 0, "acme", &raw, hex(&raw))])
            .await
            .unwrap();
    }
    assert_eq!(indexed_parts(dir.path()), 1, "only the part still waiting");
    let out = store
        .store_receipts(vec![
            receipt("acme", "AA", hex("AA"), ReceiptStat::Delivered),
            // A receipt after its message finished, once the part has left memory, finds
            // nothing.
            receipt("acme", "E0", hex("E0"), ReceiptStat::Delivered),
        ])
        .await
        .unwrap();
    assert_eq!(matched(&out[0]), waiting);
    assert!(matches!(out[1], ReceiptOutcome::Unmatched { .. }));
}

#[tokio::test]
async fn parts_sent_before_a_restart_are_matched_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    // Waiting for receipts, and still submitting (its attempt not yet recorded).
    let waiting = claimed(&store, 2).await;
    let submitting = claimed(&store, 1).await;
    let receipted = claimed(&store, 1).await;
    store
        .apply(vec![
            submitted(waiting, 0, "acme", "10", hex("10")),
            submitted(waiting, 1, "acme", "11", hex("11")),
            attempt_accepted(waiting, 2),
            submitted(submitting, 0, "acme", "20", hex("20")),
            submitted(receipted, 0, "acme", "30", hex("30")),
            attempt_accepted(receipted, 1),
        ])
        .await
        .unwrap();
    delivered_receipt(&store, "30").await;
    store.apply(vec![delivered(receipted)]).await.unwrap();
    store.close().await.unwrap();
    assert_eq!(indexed_parts(dir.path()), 0, "all held in memory");

    // Reopened with room for one part: the others go to the index on disk.
    let store = open_holding(dir.path(), &clock, 1).await;
    assert_eq!(indexed_parts(dir.path()), 2);
    let out = store
        .store_receipts(vec![
            receipt("acme", "10", hex("10"), ReceiptStat::Delivered),
            receipt("acme", "11", hex("11"), ReceiptStat::Delivered),
        ])
        .await
        .unwrap();
    assert_eq!(matched(&out[0]), waiting);
    assert_eq!(matched(&out[1]), waiting);
    store.close().await.unwrap();

    // The part held in memory is taken back in at the next start.
    let store = open(dir.path(), &clock).await;
    assert_eq!(indexed_parts(dir.path()), 2);
    let out = delivered_receipt(&store, "20").await;
    assert_eq!(matched(&out[0]), submitting);
}

#[tokio::test]
async fn a_receipt_sent_again_after_a_restart_matches_while_its_message_is_unfinished() {
    // The receipt was stored but its roll-up was not (the SMSC was told to send it again),
    // then the engine restarted.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    sent(&store, id, "5E").await;
    let first = delivered_receipt(&store, "5E").await;
    assert_eq!(matched(&first[0]), id);
    store.close().await.unwrap();

    let store = open(dir.path(), &clock).await;
    let again = delivered_receipt(&store, "5E").await;
    let ReceiptOutcome::Matched(m) = &again[0] else {
        panic!("{again:?}");
    };
    assert_eq!(m.message_id, id);
    assert_eq!(m.message_state, MessageState::Submitted);
    assert!(m.all_parts_final());
}

#[tokio::test]
async fn a_multipart_rollup_reports_every_parts_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 3).await;
    store
        .apply(
            (0..3)
                .map(|i| submitted(id, i, "acme", &format!("m{i}"), hex(&format!("a{i}"))))
                .collect(),
        )
        .await
        .unwrap();
    let out = store
        .store_receipts(vec![
            receipt("acme", "a0", hex("a0"), ReceiptStat::Delivered),
            receipt("acme", "a2", hex("a2"), ReceiptStat::Enroute),
        ])
        .await
        .unwrap();
    let ReceiptOutcome::Matched(second) = &out[1] else {
        panic!("{out:?}");
    };
    assert_eq!(second.part, 2);
    assert_eq!(second.parts_total, 3);
    let states: Vec<_> = second.parts.iter().map(|p| (p.index, p.state)).collect();
    assert_eq!(
        states,
        [
            (0, PartState::Delivered),
            (1, PartState::Submitted),
            (2, PartState::Submitted)
        ]
    );
    assert_eq!(second.parts[2].stat, Some(ReceiptStat::Enroute));
    assert!(!second.all_parts_final());

    let out = store
        .store_receipts(vec![
            receipt("acme", "a1", hex("a1"), ReceiptStat::Delivered),
            receipt("acme", "a2", hex("a2"), ReceiptStat::Undeliverable),
        ])
        .await
        .unwrap();
    let ReceiptOutcome::Matched(last) = &out[1] else {
        panic!("{out:?}");
    };
    assert!(last.all_parts_final());
    assert_eq!(last.parts[2].state, PartState::Undelivered);
    assert_eq!(last.parts[2].stat, Some(ReceiptStat::Undeliverable));
    assert_eq!(store.get(id).await.unwrap().unwrap().receipts.len(), 4);
}

/// A roll-up rule that finishes a message once every part has a final receipt: delivered
/// when all were delivered, failed otherwise. It records every match it was asked about.
fn finish_when_all_final(asked: Arc<std::sync::Mutex<Vec<(String, u16)>>>) -> RollUp {
    Arc::new(move |carrier: &str, m: &ReceiptMatch| {
        asked.lock().unwrap().push((carrier.to_owned(), m.part));
        if !m.all_parts_final() {
            return None;
        }
        Some(if m.parts.iter().all(|p| p.state == PartState::Delivered) {
            (FinalState::Delivered, Reason::new("DELIVRD", "delivered"))
        } else {
            (FinalState::Failed, Reason::new("UNDELIV", "a part failed"))
        })
    })
}

#[tokio::test]
async fn a_rollup_rule_finishes_the_message_in_the_receipts_own_commit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 2).await;
    store
        .apply(vec![
            submitted(id, 0, "acme", "b0", hex("b0")),
            submitted(id, 1, "acme", "b1", hex("b1")),
            attempt_accepted(id, 2),
        ])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3));
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rule = finish_when_all_final(Arc::clone(&asked));

    // The first part alone leaves the message waiting.
    let out = store
        .store_receipts_rolling_up(
            vec![receipt("acme", "b0", hex("b0"), ReceiptStat::Delivered)],
            Some(Arc::clone(&rule)),
        )
        .await
        .unwrap();
    let ReceiptOutcome::Matched(first) = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(first.finished, None);
    assert_eq!(first.accepted_at, at(0));
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Submitted);

    // The second part finishes it; the same receipt sent again in the same call finds the
    // message final already and the rule is not asked about it.
    let out = store
        .store_receipts_rolling_up(
            vec![
                receipt("acme", "b1", hex("b1"), ReceiptStat::Delivered),
                receipt("acme", "b1", hex("b1"), ReceiptStat::Delivered),
            ],
            Some(rule),
        )
        .await
        .unwrap();
    let ReceiptOutcome::Matched(last) = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(
        last.finished,
        Some((FinalState::Delivered, Reason::new("DELIVRD", "delivered")))
    );
    let ReceiptOutcome::Matched(again) = &out[1] else {
        panic!("{out:?}");
    };
    assert_eq!(again.message_state, MessageState::Delivered);
    assert_eq!(again.finished, None);
    assert_eq!(
        *asked.lock().unwrap(),
        [("acme".into(), 0), ("acme".into(), 1)]
    );

    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Delivered);
    assert_eq!(
        d.message.reason.as_ref().map(|r| r.code.as_str()),
        Some("DELIVRD")
    );
    assert_eq!(d.message.updated_at, at(3_000));
    assert_eq!(
        store.counts().await.unwrap().get(MessageState::Delivered),
        1
    );
    assert_eq!(
        store.counts().await.unwrap().get(MessageState::Submitted),
        0
    );
}

#[tokio::test]
async fn the_part_of_a_one_part_message_shows_the_receipt_that_finished_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    sent(&store, id, "d0").await;
    clock.advance(Duration::from_secs(2));
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rule = finish_when_all_final(Arc::clone(&asked));
    let mut undeliv = receipt("acme", "d0", hex("d0"), ReceiptStat::Undeliverable);
    undeliv.err = Some("042".into());
    let out = store
        .store_receipts_rolling_up(vec![undeliv], Some(rule))
        .await
        .unwrap();
    let ReceiptOutcome::Matched(m) = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(m.finished.as_ref().map(|f| f.0), Some(FinalState::Failed));
    assert_eq!(m.parts[0].state, PartState::Undelivered);

    // The commit that finished the message left the part's row as the submission wrote it;
    // the part is read with its receipt.
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Failed);
    let p = &d.parts[0];
    assert_eq!(p.state, PartState::Undelivered);
    assert_eq!(p.receipt_stat, Some(ReceiptStat::Undeliverable));
    assert_eq!(p.receipt_err.as_deref(), Some("042"));
    assert_eq!(p.receipt_at, Some(at(2_000)));
    assert_eq!(p.updated_at, at(2_000));

    // A late intermediate receipt changes nothing; it is written onto the part now, and the
    // part still reads the same.
    clock.advance(Duration::from_secs(1));
    store
        .store_receipts(vec![receipt("acme", "d0", hex("d0"), ReceiptStat::Enroute)])
        .await
        .unwrap();
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.parts[0].state, PartState::Undelivered);
    assert_eq!(d.parts[0].receipt_stat, Some(ReceiptStat::Undeliverable));
    assert_eq!(d.receipts.len(), 2);
}

#[tokio::test]
async fn a_part_sent_again_is_not_read_with_the_receipts_of_its_first_submission() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    sent(&store, id, "e0").await;
    // A retryable failure: the rule leaves it to the caller, which schedules a retry.
    store
        .store_receipts_rolling_up(
            vec![receipt("acme", "e0", hex("e0"), ReceiptStat::Expired)],
            Some(Arc::new(|_: &str, _: &ReceiptMatch| None)),
        )
        .await
        .unwrap();
    claimed_again(&store, id).await;
    sent(&store, id, "e1").await;
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Submitted);
    assert_eq!(d.parts[0].state, PartState::Submitted);
    assert_eq!(d.parts[0].receipt_stat, None);
    assert_eq!(d.receipts.len(), 1);
}

#[tokio::test]
async fn a_final_receipt_of_a_parts_first_submission_does_not_finish_it_once_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    sent(&store, id, "f0").await;
    claimed_again(&store, id).await;
    sent(&store, id, "f1").await;
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let rule = finish_when_all_final(Arc::clone(&asked));
    let out = store
        .store_receipts_rolling_up(
            vec![receipt("acme", "f0", hex("f0"), ReceiptStat::Delivered)],
            Some(Arc::clone(&rule)),
        )
        .await
        .unwrap();
    assert!(
        matches!(out[0], ReceiptOutcome::Unmatched { .. }),
        "{out:?}"
    );
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Submitted);
    // The receipt of the submission the part is now under finishes it.
    let out = store
        .store_receipts_rolling_up(
            vec![receipt("acme", "f1", hex("f1"), ReceiptStat::Delivered)],
            Some(rule),
        )
        .await
        .unwrap();
    let ReceiptOutcome::Matched(m) = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(
        m.finished.as_ref().map(|f| f.0),
        Some(FinalState::Delivered)
    );
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Delivered);
    assert_eq!(d.parts[0].carrier_message_id.as_deref(), Some("f1"));
    assert_eq!(d.parts[0].receipt_stat, Some(ReceiptStat::Delivered));
}

#[tokio::test]
async fn a_late_response_written_over_a_part_takes_the_part_from_its_later_submission() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    sent(&store, id, "g1").await;
    // A response that came late, after the message was recorded submitted, rewrites the part.
    store
        .apply(vec![submitted(id, 0, "acme", "g0", hex("g0"))])
        .await
        .unwrap();
    let rule = finish_when_all_final(Arc::new(std::sync::Mutex::new(Vec::new())));
    let out = store
        .store_receipts_rolling_up(
            vec![receipt("acme", "g1", hex("g1"), ReceiptStat::Delivered)],
            Some(Arc::clone(&rule)),
        )
        .await
        .unwrap();
    assert!(
        matches!(out[0], ReceiptOutcome::Unmatched { .. }),
        "{out:?}"
    );
    assert_eq!(
        store.get(id).await.unwrap().unwrap().message.state,
        MessageState::Submitted
    );
    let out = store
        .store_receipts_rolling_up(
            vec![receipt("acme", "g0", hex("g0"), ReceiptStat::Delivered)],
            Some(rule),
        )
        .await
        .unwrap();
    assert!(matches!(out[0], ReceiptOutcome::Matched(_)), "{out:?}");
    assert_eq!(
        store.get(id).await.unwrap().unwrap().message.state,
        MessageState::Delivered
    );
}

#[tokio::test]
async fn a_rollup_rule_is_not_asked_about_a_message_still_being_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    // The response is recorded, the attempt not yet: the message is still submitting.
    store
        .apply(vec![submitted(id, 0, "acme", "c0", hex("c0"))])
        .await
        .unwrap();
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = store
        .store_receipts_rolling_up(
            vec![receipt("acme", "c0", hex("c0"), ReceiptStat::Delivered)],
            Some(finish_when_all_final(Arc::clone(&asked))),
        )
        .await
        .unwrap();
    let ReceiptOutcome::Matched(m) = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(m.message_state, MessageState::Submitting);
    assert_eq!(m.finished, None);
    assert!(asked.lock().unwrap().is_empty());
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.message.state, MessageState::Submitting);
}

#[tokio::test]
async fn a_late_intermediate_receipt_does_not_undo_a_final_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    store
        .apply(vec![submitted(id, 0, "acme", "9", hex("9"))])
        .await
        .unwrap();
    store
        .store_receipts(vec![
            receipt("acme", "9", hex("9"), ReceiptStat::Delivered),
            receipt("acme", "9", hex("9"), ReceiptStat::Enroute),
        ])
        .await
        .unwrap();
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.parts[0].state, PartState::Delivered);
    assert_eq!(d.parts[0].receipt_stat, Some(ReceiptStat::Delivered));
    assert_eq!(d.receipts.len(), 2, "both receipts are kept");
}

#[tokio::test]
async fn receipts_match_only_parts_of_the_same_carrier() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let a = claimed(&store, 1).await;
    let b = claimed(&store, 1).await;
    store
        .apply(vec![
            submitted(a, 0, "acme", "55", hex("55")),
            submitted(b, 0, "globex", "55", hex("55")),
        ])
        .await
        .unwrap();
    let out = store
        .store_receipts(vec![
            receipt("globex", "55", hex("55"), ReceiptStat::Delivered),
            receipt("initech", "55", hex("55"), ReceiptStat::Delivered),
        ])
        .await
        .unwrap();
    match &out[0] {
        ReceiptOutcome::Matched(m) => assert_eq!(m.message_id, b),
        other => panic!("{other:?}"),
    }
    assert!(matches!(out[1], ReceiptOutcome::Unmatched { .. }));
    let pa = &store.get(a).await.unwrap().unwrap().parts[0];
    assert_eq!(pa.state, PartState::Submitted);
}

#[tokio::test]
async fn a_reused_carrier_id_matches_the_most_recent_part() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let old = claimed(&store, 1).await;
    store
        .apply(vec![submitted(old, 0, "acme", "7", hex("7"))])
        .await
        .unwrap();
    let new = claimed(&store, 1).await;
    store
        .apply(vec![submitted(new, 0, "acme", "7", hex("7"))])
        .await
        .unwrap();
    let out = delivered_receipt(&store, "7").await;
    match &out[0] {
        ReceiptOutcome::Matched(m) => assert_eq!(m.message_id, new),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_receipt_without_a_stat_is_kept_and_leaves_the_part_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = claimed(&store, 1).await;
    store
        .apply(vec![submitted(id, 0, "acme", "3", hex("3"))])
        .await
        .unwrap();
    let out = store
        .store_receipts(vec![NewReceipt {
            stat: None,
            err: None,
            raw: "garbled".into(),
            ..receipt("acme", "3", hex("3"), ReceiptStat::Delivered)
        }])
        .await
        .unwrap();
    assert!(matches!(out[0], ReceiptOutcome::Matched(_)));
    let d = store.get(id).await.unwrap().unwrap();
    assert_eq!(d.parts[0].state, PartState::Submitted);
    assert_eq!(d.parts[0].receipt_stat, None);
    assert_eq!(d.receipts[0].raw, "garbled");
}

#[tokio::test]
async fn mo_messages_are_stored_and_listed_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        clock.advance(Duration::from_millis(10));
        ids.push(
            store
                .store_mo(NewMo {
                    carrier: "acme".into(),
                    from: format!("+4470000000{i}"),
                    to: "12345".into(),
                    text: if i == 3 {
                        "STOP".into()
                    } else {
                        format!("hi {i}")
                    },
                })
                .await
                .unwrap(),
        );
    }
    let first = store.list_mo(None, 3).await.unwrap();
    assert_eq!(first.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..3]);
    assert_eq!(first[0].mo.from, "+44700000000");
    assert_eq!(first[0].received_at, at(10));
    let rest = store.list_mo(Some(ids[2]), 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].mo.text, "STOP");
    assert_eq!(rest[0].mo.carrier, "acme");
}
