//! The store on disk: accepting messages, idempotency keys, suppressions, reads and paging.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smppd::sms::Encoding;
use smppd::store::{
    AcceptOutcome, FinalState, ListQuery, ManualClock, MessageId, MessageState, NewMessage,
    Priority, Reason, SplitMix64, SqliteConfig, SqliteStore, Store, StoreError, SuppressionSource,
    Timestamp, Update, UpdateOutcome,
};

const T0: i64 = 1_700_000_000_000;

fn message(to: &str) -> NewMessage {
    NewMessage {
        idempotency_key: None,
        to: to.into(),
        from: "Brand".into(),
        body: "hello".into(),
        encoding: Encoding::Gsm7,
        parts: 1,
        priority: Priority::default(),
        expires_at: Timestamp::from_millis(T0 + 86_400_000),
        not_before: None,
        callback_url: None,
        carrier: None,
        tags: None,
    }
}

fn keyed(to: &str, key: &str) -> NewMessage {
    NewMessage {
        idempotency_key: Some(key.into()),
        ..message(to)
    }
}

async fn open(dir: &Path, clock: &ManualClock) -> SqliteStore {
    SqliteStore::open_with(
        SqliteConfig::in_dir(dir),
        Arc::new(clock.clone()),
        Box::new(SplitMix64::new(7)),
    )
    .await
    .expect("open store")
}

fn inserted(outcome: &AcceptOutcome) -> MessageId {
    match outcome {
        AcceptOutcome::Inserted(id) => *id,
        other => panic!("expected an insert, got {other:?}"),
    }
}

#[tokio::test]
async fn an_accepted_message_reads_back_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let new = NewMessage {
        idempotency_key: Some("order-17".into()),
        to: "+447700900123".into(),
        from: "MyBrand".into(),
        body: "Your code is 1234 — ünïcödé".into(),
        encoding: Encoding::Ucs2,
        parts: 2,
        priority: Priority::MAX,
        expires_at: Timestamp::from_millis(T0 + 3_600_000),
        not_before: Some(Timestamp::from_millis(T0 + 5_000)),
        callback_url: Some("https://example.test/cb".into()),
        carrier: Some("vodafone".into()),
        tags: Some(r#"{"campaign":"x"}"#.into()),
    };
    let out = store.accept(vec![new.clone()]).await.unwrap();
    let id = inserted(&out[0]);
    assert_eq!(id.timestamp(), Timestamp::from_millis(T0));

    let got = store.get(id).await.unwrap().expect("stored");
    let m = got.message;
    assert_eq!(m.id, id);
    assert_eq!(m.idempotency_key, new.idempotency_key);
    assert_eq!(m.to, new.to);
    assert_eq!(m.from, new.from);
    assert_eq!(m.body, new.body);
    assert_eq!(m.encoding, Encoding::Ucs2);
    assert_eq!(m.parts, 2);
    assert_eq!(m.priority, Priority::MAX);
    assert_eq!(m.expires_at, new.expires_at);
    assert_eq!(m.callback_url, new.callback_url);
    assert_eq!(m.carrier, new.carrier);
    assert_eq!(m.tags, new.tags);
    assert_eq!(m.state, MessageState::Accepted);
    assert_eq!(m.reason, None);
    assert_eq!(m.created_at, Timestamp::from_millis(T0));
    assert_eq!(m.updated_at, Timestamp::from_millis(T0));
    assert_eq!(m.next_attempt_at, Some(Timestamp::from_millis(T0 + 5_000)));
    assert_eq!((m.attempts, m.in_doubt_resubmits), (0, 0));
    assert!(got.parts.is_empty() && got.attempts.is_empty() && got.receipts.is_empty());

    let missing = MessageId::from_u128(id.as_u128() + 1);
    assert_eq!(store.get(missing).await.unwrap(), None);
}

#[tokio::test]
async fn a_batch_answers_each_message_in_order_with_increasing_ids() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let batch: Vec<_> = (0..1000)
        .map(|i| message(&format!("+4470000{i:05}")))
        .collect();
    let out = store.accept(batch).await.unwrap();
    assert_eq!(out.len(), 1000);
    let ids: Vec<_> = out.iter().map(inserted).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let last = store.get(ids[999]).await.unwrap().unwrap();
    assert_eq!(last.message.to, "+447000000999");
    assert_eq!(
        store.counts().await.unwrap().get(MessageState::Accepted),
        1000
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_original_message() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let first = inserted(&store.accept(vec![keyed("+1555", "k1")]).await.unwrap()[0]);
    clock.advance(Duration::from_secs(3600));
    let again = store
        .accept(vec![keyed("+1999", "k1"), keyed("+1555", "k2")])
        .await
        .unwrap();
    assert_eq!(again[0], AcceptOutcome::Duplicate(first));
    assert!(matches!(again[1], AcceptOutcome::Inserted(_)));
    // The duplicate stored nothing: the original is untouched.
    let m = store.get(first).await.unwrap().unwrap().message;
    assert_eq!(m.to, "+1555");
    assert_eq!(store.counts().await.unwrap().get(MessageState::Accepted), 2);
}

#[tokio::test]
async fn a_key_repeated_within_one_batch_inserts_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let out = store
        .accept(vec![
            keyed("+1", "same"),
            message("+2"),
            keyed("+3", "same"),
            keyed("+4", "same"),
        ])
        .await
        .unwrap();
    let id = inserted(&out[0]);
    assert_eq!(out[2], AcceptOutcome::Duplicate(id));
    assert_eq!(out[3], AcceptOutcome::Duplicate(id));
    assert_eq!(store.counts().await.unwrap().get(MessageState::Accepted), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_with_one_key_make_exactly_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut batch: Vec<_> = (0..50).map(|i| message(&format!("+{t}{i}"))).collect();
            batch.insert(t % 50, keyed("+999", "contended"));
            let out = store.accept(batch).await.unwrap();
            out[t % 50].id().unwrap()
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "every batch saw the same message");
    assert_eq!(
        store.counts().await.unwrap().get(MessageState::Accepted),
        16 * 50 + 1
    );
}

#[tokio::test]
async fn a_key_is_free_again_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let first = inserted(&store.accept(vec![keyed("+1", "k")]).await.unwrap()[0]);
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        store.accept(vec![keyed("+1", "k")]).await.unwrap()[0],
        AcceptOutcome::Duplicate(first),
        "exactly 24 h later is still within the window"
    );
    clock.advance(Duration::from_millis(1));
    let second = inserted(&store.accept(vec![keyed("+1", "k")]).await.unwrap()[0]);
    assert_ne!(first, second);
    assert_eq!(
        store.accept(vec![keyed("+1", "k")]).await.unwrap()[0],
        AcceptOutcome::Duplicate(second)
    );
}

#[tokio::test]
async fn a_suppressed_destination_is_refused_at_accept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let s = store
        .put_suppression("+1666".into(), "STOP".into(), SuppressionSource::MoKeyword)
        .await
        .unwrap();
    let out = store
        .accept(vec![
            message("+1666"),
            keyed("+1666", "k"),
            message("+1777"),
        ])
        .await
        .unwrap();
    assert_eq!(out[0], AcceptOutcome::Suppressed(s.clone()));
    assert_eq!(out[1], AcceptOutcome::Suppressed(s));
    assert!(matches!(out[2], AcceptOutcome::Inserted(_)));
    // A suppressed message records no idempotency key.
    store.delete_suppression("+1666".into()).await.unwrap();
    assert!(matches!(
        store.accept(vec![keyed("+1666", "k")]).await.unwrap()[0],
        AcceptOutcome::Inserted(_)
    ));
}

#[tokio::test]
async fn suppressions_are_put_read_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    for n in ["+3", "+1", "+2"] {
        store
            .put_suppression(n.into(), "complaint".into(), SuppressionSource::Api)
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(10));
    let replaced = store
        .put_suppression("+2".into(), "STOP".into(), SuppressionSource::MoKeyword)
        .await
        .unwrap();
    assert_eq!(replaced.created_at, Timestamp::from_millis(T0 + 10_000));

    assert!(store.is_suppressed("+1".into()).await.unwrap());
    assert!(!store.is_suppressed("+4".into()).await.unwrap());
    assert_eq!(
        store.get_suppression("+2".into()).await.unwrap(),
        Some(replaced)
    );

    let page = store.list_suppressions(None, 2).await.unwrap();
    let numbers: Vec<_> = page.iter().map(|s| s.number.as_str()).collect();
    assert_eq!(numbers, ["+1", "+2"]);
    let rest = store.list_suppressions(Some("+2".into()), 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].number, "+3");
    assert_eq!(rest[0].source, SuppressionSource::Api);

    assert!(store.delete_suppression("+1".into()).await.unwrap());
    assert!(!store.delete_suppression("+1".into()).await.unwrap());
    assert!(!store.is_suppressed("+1".into()).await.unwrap());
}

#[tokio::test]
async fn a_batch_over_the_limit_or_with_zero_parts_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let big: Vec<_> = (0..1001).map(|_| message("+1")).collect();
    let err = store.accept(big).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::TooMany {
            len: 1001,
            max: 1000,
            ..
        }
    ));
    assert!(err.is_caller_error());

    let zero = NewMessage {
        parts: 0,
        ..message("+2")
    };
    let err = store.accept(vec![message("+1"), zero]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "parts", .. }));
    assert_eq!(store.counts().await.unwrap().open(), 0);
    assert_eq!(store.accept(Vec::new()).await.unwrap(), Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_visits_every_message_once_while_new_ones_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let mut expected = Vec::new();
    for round in 0..5 {
        let batch: Vec<_> = (0..47).map(|i| message(&format!("+{round}{i}"))).collect();
        expected.extend(store.accept(batch).await.unwrap().iter().map(inserted));
        clock.advance(Duration::from_millis(3));
    }
    expected.reverse(); // newest first

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(ListQuery {
                cursor: cursor.clone(),
                limit: 20,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.messages.len() <= 20);
        seen.extend(page.messages.iter().map(|m| m.id));
        // Newer messages arriving mid-way do not disturb the pages still to come.
        store.accept(vec![message("+new")]).await.unwrap();
        match page.next {
            Some(next) => {
                // A cursor survives a round trip through its string form (an API client).
                cursor = Some(smppd::store::Cursor::parse(&next.to_string()).unwrap());
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 12); // 235 messages in pages of 20
}

#[tokio::test]
async fn list_filters_by_state_destination_and_creation_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let early = inserted(&store.accept(vec![message("+100")]).await.unwrap()[0]);
    clock.advance(Duration::from_secs(60));
    let out = store
        .accept(vec![message("+100"), message("+200"), message("+200")])
        .await
        .unwrap();
    let ids: Vec<_> = out.iter().map(inserted).collect();
    // Claim the oldest two so there are two states.
    let claimed = store.claim(2).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        [early, ids[0]]
    );

    let q = |state, to: Option<&str>, since| ListQuery {
        state,
        to: to.map(str::to_owned),
        since,
        cursor: None,
        limit: 100,
    };
    let page_ids = |p: smppd::store::Page| p.messages.iter().map(|m| m.id).collect::<Vec<_>>();

    let to_100 = store.list(q(None, Some("+100"), None)).await.unwrap();
    assert_eq!(page_ids(to_100), [ids[0], early]);
    let submitting = store
        .list(q(Some(MessageState::Submitting), None, None))
        .await
        .unwrap();
    assert_eq!(page_ids(submitting), [ids[0], early]);
    let accepted_to_200 = store
        .list(q(Some(MessageState::Accepted), Some("+200"), None))
        .await
        .unwrap();
    assert_eq!(page_ids(accepted_to_200), [ids[2], ids[1]]);
    let recent = store
        .list(q(None, None, Some(Timestamp::from_millis(T0 + 60_000))))
        .await
        .unwrap();
    assert_eq!(page_ids(recent), [ids[2], ids[1], ids[0]]);
    let none = store
        .list(q(Some(MessageState::Delivered), None, None))
        .await
        .unwrap();
    assert!(none.messages.is_empty() && none.next.is_none());

    // Delivered is found by walking the ids, the other final states through their index.
    let outcomes = store
        .apply(vec![
            Update::Finish {
                id: ids[0],
                state: FinalState::Delivered,
                reason: Reason::new("DELIVRD", "delivered"),
            },
            Update::Cancel {
                id: ids[1],
                reason: Reason::new("cancelled", "by the producer"),
            },
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, [UpdateOutcome::Applied, UpdateOutcome::Applied]);
    for (state, want) in [
        (MessageState::Delivered, vec![ids[0]]),
        (MessageState::Cancelled, vec![ids[1]]),
        (MessageState::Submitting, vec![early]),
        (MessageState::Failed, vec![]),
    ] {
        let page = store.list(q(Some(state), None, None)).await.unwrap();
        assert_eq!(page_ids(page), want, "{state}");
    }

    let err = store
        .list(ListQuery {
            limit: 5000,
            ..ListQuery::default()
        })
        .await
        .unwrap_err();
    assert!(err.is_caller_error());
}

/// A store on `dir` with the destination index on or off.
async fn open_indexing(dir: &Path, clock: &ManualClock, on: bool) -> SqliteStore {
    let mut config = SqliteConfig::in_dir(dir);
    config.index_destinations = on;
    SqliteStore::open_with(
        config,
        Arc::new(clock.clone()),
        Box::new(SplitMix64::new(7)),
    )
    .await
    .expect("open store")
}

/// Every message to `to` (in `state`, since `since`), newest first, read in pages of `limit`.
async fn all_to(
    store: &SqliteStore,
    to: &str,
    state: Option<MessageState>,
    since: Option<Timestamp>,
    limit: usize,
) -> Vec<MessageId> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(ListQuery {
                state,
                to: Some(to.into()),
                since,
                cursor,
                limit,
            })
            .await
            .unwrap();
        ids.extend(page.messages.iter().map(|m| m.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

/// Whether the file holds the destination index, read from the file itself.
fn has_destination_index(dir: &Path) -> bool {
    let conn = rusqlite::Connection::open(dir.join("smppd.db")).unwrap();
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dest'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

#[tokio::test]
async fn queries_by_destination_answer_alike_with_the_index_dropped_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));

    let store = open_indexing(dir.path(), &clock, true).await;
    let batch: Vec<_> = (0..9)
        .map(|i| message(if i % 3 == 0 { "+300" } else { "+400" }))
        .collect();
    let ids: Vec<_> = store
        .accept(batch)
        .await
        .unwrap()
        .iter()
        .map(inserted)
        .collect();
    store.claim(1).await.unwrap();
    let to_300 = [ids[6], ids[3], ids[0]];
    assert_eq!(all_to(&store, "+300", None, None, 2).await, to_300);
    assert_eq!(
        all_to(&store, "+300", Some(MessageState::Accepted), None, 2).await,
        [ids[6], ids[3]]
    );
    store.close().await.unwrap();
    assert!(has_destination_index(dir.path()));

    let store = open_indexing(dir.path(), &clock, false).await;
    assert!(!has_destination_index(dir.path()));
    assert_eq!(all_to(&store, "+300", None, None, 2).await, to_300);
    assert_eq!(
        all_to(&store, "+300", Some(MessageState::Accepted), None, 2).await,
        [ids[6], ids[3]]
    );
    assert_eq!(all_to(&store, "+400", None, None, 2).await.len(), 6);
    let more = inserted(&store.accept(vec![message("+300")]).await.unwrap()[0]);
    store.close().await.unwrap();

    // Turned on again, the index is built with the message accepted while it was off.
    let store = open_indexing(dir.path(), &clock, true).await;
    assert!(has_destination_index(dir.path()));
    assert_eq!(
        all_to(&store, "+300", None, None, 2).await,
        [more, ids[6], ids[3], ids[0]]
    );
}

#[tokio::test]
async fn queries_by_destination_span_complete_buckets_and_the_newest_messages() {
    // The destination index takes messages in buckets of 16 384 row numbers; these fill two
    // buckets and start a third.
    const TOTAL: usize = 2 * 16_384 + 700;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));

    let store = open_indexing(dir.path(), &clock, true).await;
    // Every 4 000th message goes to +777, the rest to 500 other numbers; a minute passes
    // between batches of 1 000.
    let mut to_777 = Vec::new();
    let mut minute_of_10_000 = None;
    for first in (0..TOTAL).step_by(1_000) {
        if first == 10_000 {
            minute_of_10_000 = Some(smppd::store::Clock::now(&clock));
        }
        let batch: Vec<_> = (first..TOTAL.min(first + 1_000))
            .map(|i| {
                message(&if i % 4_000 == 1_234 {
                    "+777".to_owned()
                } else {
                    format!("+5{:03}", i % 500)
                })
            })
            .collect();
        let out = store.accept(batch).await.unwrap();
        for (k, outcome) in out.iter().enumerate() {
            if (first + k) % 4_000 == 1_234 {
                to_777.push(inserted(outcome));
            }
        }
        clock.advance(Duration::from_secs(60));
    }
    to_777.reverse();
    assert_eq!(to_777.len(), 9);
    assert_eq!(all_to(&store, "+777", None, None, 3).await, to_777);
    // Since the batch of message 10 000: the ones from 13 234 on.
    let since = all_to(&store, "+777", None, minute_of_10_000, 3).await;
    assert_eq!(since, to_777[..6]);
    assert_eq!(all_to(&store, "+5007", None, None, 3).await.len(), 67);
    store.close().await.unwrap();
    // Two complete buckets are in the index (row numbers start at 1); the rest is not yet.
    let conn = rusqlite::Connection::open(dir.path().join("smppd.db")).unwrap();
    let (buckets, entries): (i64, i64) = conn
        .query_row(
            "SELECT count(DISTINCT bucket), count(*) FROM dest",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((buckets, entries), (2, 2 * 16_384 - 1));
    drop(conn);

    // Without the index the walk finds the same; turned on again, it is rebuilt.
    let store = open_indexing(dir.path(), &clock, false).await;
    assert_eq!(all_to(&store, "+777", None, None, 3).await, to_777);
    store.close().await.unwrap();
    let store = open_indexing(dir.path(), &clock, true).await;
    assert_eq!(all_to(&store, "+777", None, None, 3).await, to_777);
    assert_eq!(
        all_to(&store, "+777", None, minute_of_10_000, 3).await,
        to_777[..6]
    );
}

#[tokio::test]
async fn get_many_and_messages_answer_each_id_in_order_and_refuse_an_oversized_request() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let out = store
        .accept(vec![message("+441"), message("+442"), message("+443")])
        .await
        .unwrap();
    let ids: Vec<_> = out.iter().map(inserted).collect();
    let forged = MessageId::from_u128(ids[1].as_u128() ^ (0xFFFF_u128 << 80));
    let asked = vec![ids[2], forged, ids[0], ids[2]];
    let got = store.get_many(asked).await.unwrap();
    let to: Vec<Option<&str>> = got
        .iter()
        .map(|d| d.as_ref().map(|d| d.message.to.as_str()))
        .collect();
    assert_eq!(to, [Some("+443"), None, Some("+441"), Some("+443")]);
    for (detail, id) in got.iter().zip([ids[2], forged, ids[0], ids[2]]) {
        if let Some(detail) = detail {
            assert_eq!(detail.message.id, id);
            assert_eq!(Some(detail), store.get(id).await.unwrap().as_ref());
        }
    }
    // The rows alone, the same way.
    let rows = store
        .messages(vec![ids[2], forged, ids[0], ids[2]])
        .await
        .unwrap();
    let from_details: Vec<_> = got.into_iter().map(|d| d.map(|d| d.message)).collect();
    assert_eq!(rows, from_details);
    assert_eq!(store.get_many(Vec::new()).await.unwrap(), Vec::new());
    assert_eq!(store.messages(Vec::new()).await.unwrap(), Vec::new());
    let too_many = vec![ids[0]; 1001];
    assert!(matches!(
        store.get_many(too_many.clone()).await,
        Err(StoreError::TooMany { len: 1001, .. })
    ));
    assert!(matches!(
        store.messages(too_many).await,
        Err(StoreError::TooMany { len: 1001, .. })
    ));
}

#[tokio::test]
async fn an_id_that_names_a_row_but_not_its_message_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let id = inserted(&store.accept(vec![message("+1")]).await.unwrap()[0]);
    // Same sequence (row number), different time and salt.
    let forged = MessageId::from_u128(id.as_u128() ^ (0xFFFF_u128 << 80));
    assert_eq!(forged.sequence(), id.sequence());
    assert_eq!(store.get(forged).await.unwrap(), None);
    let out = store
        .apply(vec![smppd::store::Update::Cancel {
            id: forged,
            reason: smppd::store::Reason::new("x", "x"),
        }])
        .await
        .unwrap();
    assert_eq!(out, [smppd::store::UpdateOutcome::NotFound]);
    // An id whose sequence is no row number at all.
    let wild = MessageId::from_u128(u128::MAX >> 3);
    assert_eq!(store.get(wild).await.unwrap(), None);
    assert_eq!(
        store.get(id).await.unwrap().unwrap().message.state,
        MessageState::Accepted
    );
}

#[tokio::test]
async fn a_repeat_of_an_accepted_request_gets_its_message_even_after_a_suppression() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let id = inserted(&store.accept(vec![keyed("+1666", "k")]).await.unwrap()[0]);
    store
        .put_suppression("+1666".into(), "STOP".into(), SuppressionSource::MoKeyword)
        .await
        .unwrap();
    assert_eq!(
        store.accept(vec![keyed("+1666", "k")]).await.unwrap()[0],
        AcceptOutcome::Duplicate(id)
    );
    assert!(matches!(
        store.accept(vec![keyed("+1666", "other")]).await.unwrap()[0],
        AcceptOutcome::Suppressed(_)
    ));
}

#[tokio::test]
async fn list_by_final_and_by_open_states_without_a_destination() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store = open(dir.path(), &clock).await;
    let ids: Vec<_> = store
        .accept((0..6).map(|i| message(&format!("+{i}"))).collect())
        .await
        .unwrap()
        .iter()
        .map(inserted)
        .collect();
    let cancel = |id| smppd::store::Update::Cancel {
        id,
        reason: smppd::store::Reason::new("cancelled", "by test"),
    };
    store
        .apply(vec![cancel(ids[1]), cancel(ids[4])])
        .await
        .unwrap();
    let by_state = |state| ListQuery {
        state: Some(state),
        limit: 10,
        ..ListQuery::default()
    };
    let cancelled = store.list(by_state(MessageState::Cancelled)).await.unwrap();
    let got: Vec<_> = cancelled.messages.iter().map(|m| m.id).collect();
    assert_eq!(got, [ids[4], ids[1]]);
    assert!(
        cancelled
            .messages
            .iter()
            .all(|m| m.reason.as_ref().is_some_and(|r| r.code == "cancelled"))
    );
    let accepted = store.list(by_state(MessageState::Accepted)).await.unwrap();
    let got: Vec<_> = accepted.messages.iter().map(|m| m.id).collect();
    assert_eq!(got, [ids[5], ids[3], ids[2], ids[0]]);
}

#[tokio::test]
async fn the_store_works_behind_a_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let store: Arc<dyn Store> = Arc::new(open(dir.path(), &clock).await);
    let id = store.accept(vec![message("+1")]).await.unwrap()[0]
        .id()
        .unwrap();
    assert!(store.get(id).await.unwrap().is_some());
    assert_eq!(store.backlog().queued_rows, 0);
}
