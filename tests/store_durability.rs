//! The store on disk across restarts and under pressure: what resolved is on disk, in-doubt
//! messages are reported after a restart, a full queue pushes back, retention prunes.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use smppd::sms::{Encoding, IdFormat, ReceiptStat, normalize_message_id};
use smppd::store::{
    AcceptOutcome, FinalState, ManualClock, MessageId, MessageState, NewMessage, NewMo, NewReceipt,
    Priority, Reason, ReceiptOutcome, SplitMix64, SqliteConfig, SqliteStore, Store, StoreError,
    Synchronous, Timestamp, Update,
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

async fn open_with(config: SqliteConfig, clock: &ManualClock) -> SqliteStore {
    SqliteStore::open_with(
        config,
        Arc::new(clock.clone()),
        Box::new(SplitMix64::new(9)),
    )
    .await
    .expect("open store")
}

async fn open(dir: &Path, clock: &ManualClock) -> SqliteStore {
    open_with(SqliteConfig::in_dir(dir), clock).await
}

fn ids(out: &[AcceptOutcome]) -> Vec<MessageId> {
    out.iter().map(|o| o.id().unwrap()).collect()
}

fn reason(code: &str) -> Reason {
    Reason::new(code, code)
}

#[tokio::test]
async fn after_an_unclean_stop_everything_committed_is_there_and_in_doubt_messages_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let batch: Vec<_> = (0..10)
        .map(|i| message(&format!("+{i}"), (i % 4) as u8))
        .collect();
    let all = ids(&store.accept(batch).await.unwrap());
    let claimed: Vec<_> = store
        .claim(3)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    // One in-doubt message had its part accepted before the stop.
    store
        .apply(vec![Update::PartSubmitted {
            id: claimed[0],
            part: 0,
            carrier: "acme".into(),
            bind: "acme-1".into(),
            carrier_message_id: "F00D".into(),
            key: normalize_message_id("F00D", IdFormat::Hex),
        }])
        .await
        .unwrap();
    let finished = all
        .iter()
        .copied()
        .find(|id| !claimed.contains(id))
        .unwrap();
    store
        .apply(vec![Update::Cancel {
            id: finished,
            reason: reason("cancelled"),
        }])
        .await
        .unwrap();
    let counts = store.counts().await.unwrap();
    drop(store); // no close()

    let store = open(dir.path(), &clock).await;
    for id in &all {
        assert!(store.get(*id).await.unwrap().is_some(), "{id} lost");
    }
    assert_eq!(store.counts().await.unwrap(), counts);
    let rec = store.recover().await.unwrap();
    let mut in_doubt: Vec<_> = rec.in_doubt.iter().map(|d| d.message.id).collect();
    in_doubt.sort();
    let mut want = claimed.clone();
    want.sort();
    assert_eq!(in_doubt, want);
    let with_part = rec
        .in_doubt
        .iter()
        .find(|d| d.message.id == claimed[0])
        .unwrap();
    assert_eq!(
        with_part.parts[0].carrier_message_id.as_deref(),
        Some("F00D")
    );
    assert!(
        rec.in_doubt
            .iter()
            .all(|d| d.message.state == MessageState::Submitting)
    );
    // The ready ones come in claim order, and claim hands out exactly those.
    assert_eq!(rec.ready.len(), 6);
    let next: Vec<_> = store
        .claim(100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        next,
        rec.ready.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    assert_eq!(rec.awaiting_receipts, 0);
}

const CHILD_DIR: &str = "SMPPD_STORE_TEST_CRASH_DIR";

/// The child half of the crash test: write, print what resolved, die without any cleanup.
fn crash_child(dir: &Path) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The test harness has printed the test's name without a line end.
    println!();
    rt.block_on(async {
        let store = SqliteStore::open(SqliteConfig::in_dir(dir)).await.unwrap();
        for b in 0..3 {
            let batch: Vec<_> = (0..100).map(|i| message(&format!("+{b}{i}"), 1)).collect();
            for id in ids(&store.accept(batch).await.unwrap()) {
                println!("accepted {id}");
            }
        }
        for m in store.claim(10).await.unwrap() {
            println!("claimed {}", m.id);
        }
        let out = store
            .store_receipts(vec![NewReceipt {
                carrier: "acme".into(),
                carrier_message_id: "1".into(),
                key: normalize_message_id("1", IdFormat::Decimal),
                stat: Some(ReceiptStat::Delivered),
                err: None,
                raw: "id:1 stat:DELIVRD".into(),
            }])
            .await
            .unwrap();
        if let ReceiptOutcome::Unmatched { receipt_id } = out[0] {
            println!("receipt {receipt_id}");
        }
        // Keep the store alive: the process dies with the connection open.
        std::mem::forget(store);
    });
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::abort();
}

#[test]
fn a_write_that_resolved_is_on_disk_after_the_process_aborts() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        crash_child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_write_that_resolved_is_on_disk_after_the_process_aborts",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must die, not exit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tagged = |tag: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(tag).map(str::to_owned))
            .collect()
    };
    let accepted: Vec<MessageId> = tagged("accepted ")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let claimed: Vec<MessageId> = tagged("claimed ")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(accepted.len(), 300, "child output: {stdout}");
    assert_eq!(claimed.len(), 10);
    assert_eq!(tagged("receipt ").len(), 1);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(SqliteConfig::in_dir(dir.path()))
            .await
            .unwrap();
        for id in &accepted {
            assert!(store.get(*id).await.unwrap().is_some(), "{id} lost");
        }
        let rec = store.recover().await.unwrap();
        let mut in_doubt: Vec<_> = rec.in_doubt.iter().map(|d| d.message.id).collect();
        in_doubt.sort();
        let mut claimed = claimed;
        claimed.sort();
        assert_eq!(in_doubt, claimed);
        assert_eq!(rec.ready.len(), 290);
        let counts = store.counts().await.unwrap();
        assert_eq!(counts.get(MessageState::Accepted), 290);
        assert_eq!(counts.get(MessageState::Submitting), 10);
        store.close().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_refuses_accepts_with_backlogged_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig {
        queue_rows: 1000,
        // The writer must outwait the blocker however slow the machine is.
        busy_timeout: Duration::from_secs(120),
        ..SqliteConfig::in_dir(dir.path())
    };
    let path = config.path.clone();
    let store = open_with(config, &clock).await;
    // Stall the writer: another connection holds the database's write lock.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let filler = {
        let store = store.clone();
        tokio::spawn(async move {
            let batch: Vec<_> = (0..1000).map(|i| message(&format!("+{i}"), 0)).collect();
            store.accept(batch).await
        })
    };
    for _ in 0..5000 {
        if store.backlog().queued_rows == 1000 {
            break;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(store.backlog().queued_rows, 1000);
    assert_eq!(store.backlog().capacity, 1000);

    let err = store.accept(vec![message("+x", 0)]).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Backlogged { capacity: 1000 }),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(matches!(
        store.writable().await,
        Err(StoreError::Backlogged { .. })
    ));

    blocker.execute_batch("ROLLBACK").unwrap();
    let first = filler.await.unwrap().unwrap();
    assert_eq!(first.len(), 1000);
    assert_eq!(store.backlog().queued_rows, 0);
    store.writable().await.unwrap();
    assert!(store.accept(vec![message("+x", 0)]).await.is_ok());
}

#[tokio::test]
async fn closing_commits_what_was_queued_and_refuses_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let id = ids(&store.accept(vec![message("+1", 0)]).await.unwrap())[0];
    store.writable().await.unwrap();
    let other = store.clone();
    store.close().await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        other.accept(vec![message("+2", 0)]).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(other.claim(1).await, Err(StoreError::Closed)));
    // Reads of what was committed still work until the handles go.
    assert!(other.get(id).await.unwrap().is_some());
}

#[tokio::test]
async fn prune_deletes_finished_messages_after_the_retention_with_everything_kept_about_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig {
        retention: Duration::from_secs(3600),
        unmatched_receipt_retention: Duration::from_secs(600),
        ..SqliteConfig::in_dir(dir.path())
    };
    let store = open_with(config, &clock).await;
    let keyed = NewMessage {
        idempotency_key: Some("k".into()),
        ..message("+1", 0)
    };
    let out = ids(&store
        .accept(vec![keyed.clone(), message("+2", 0), message("+3", 0)])
        .await
        .unwrap());
    let (done, busy, waiting) = (out[0], out[1], out[2]);
    store.claim(2).await.unwrap();
    store
        .apply(vec![
            Update::PartSubmitted {
                id: done,
                part: 0,
                carrier: "acme".into(),
                bind: "b".into(),
                carrier_message_id: "1".into(),
                key: normalize_message_id("1", IdFormat::Decimal),
            },
            Update::Finish {
                id: done,
                state: FinalState::Delivered,
                reason: reason("DELIVRD"),
            },
        ])
        .await
        .unwrap();
    let receipt = |id: &str| NewReceipt {
        carrier: "acme".into(),
        carrier_message_id: id.into(),
        key: normalize_message_id(id, IdFormat::Decimal),
        stat: Some(ReceiptStat::Delivered),
        err: None,
        raw: format!("id:{id} stat:DELIVRD"),
    };
    let matched = store
        .store_receipts(vec![receipt("1"), receipt("2")])
        .await
        .unwrap();
    assert!(matches!(matched[0], ReceiptOutcome::Matched(_)));
    assert!(matches!(matched[1], ReceiptOutcome::Unmatched { .. }));
    store
        .store_mo(NewMo {
            carrier: "acme".into(),
            from: "+9".into(),
            to: "123".into(),
            text: "hi".into(),
        })
        .await
        .unwrap();

    // Nothing is old enough yet.
    assert_eq!(store.prune().await.unwrap(), Default::default());

    clock.advance(Duration::from_secs(3600) + Duration::from_millis(1));
    let r = store.prune().await.unwrap();
    assert_eq!(
        (
            r.messages,
            r.unmatched_receipts,
            r.idempotency_keys,
            r.mo,
            r.more
        ),
        (1, 1, 0, 1, false)
    );
    assert_eq!(store.get(done).await.unwrap(), None);
    assert!(store.get(busy).await.unwrap().is_some(), "not finished");
    assert!(store.get(waiting).await.unwrap().is_some(), "not finished");
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get(MessageState::Delivered), 0);
    assert_eq!(counts.open(), 2);
    assert!(store.list_mo(None, 10).await.unwrap().is_empty());
    // The pruned message's receipt went with it: a new part with its key matches nothing old.
    assert_eq!(
        store.accept(vec![keyed.clone()]).await.unwrap()[0],
        AcceptOutcome::Duplicate(done),
        "the key outlives the message until the window ends"
    );

    clock.advance(Duration::from_secs(23 * 3600));
    let r = store.prune().await.unwrap();
    assert_eq!(r.idempotency_keys, 1);
    assert!(matches!(
        store.accept(vec![keyed]).await.unwrap()[0],
        AcceptOutcome::Inserted(_)
    ));
}

#[tokio::test]
async fn prune_works_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig {
        retention: Duration::from_secs(60),
        prune_limit: 2,
        ..SqliteConfig::in_dir(dir.path())
    };
    let store = open_with(config, &clock).await;
    let batch: Vec<_> = (0..5).map(|i| message(&format!("+{i}"), 0)).collect();
    let all = ids(&store.accept(batch).await.unwrap());
    store
        .apply(
            all.iter()
                .map(|id| Update::Cancel {
                    id: *id,
                    reason: reason("cancelled"),
                })
                .collect(),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let mut steps = Vec::new();
    loop {
        let r = store.prune().await.unwrap();
        steps.push(r.messages);
        if !r.more {
            break;
        }
    }
    assert_eq!(steps, [2, 2, 1]);
    assert_eq!(
        store.counts().await.unwrap().get(MessageState::Cancelled),
        0
    );
}

#[tokio::test]
async fn a_file_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig::in_dir(dir.path());
    let store = open_with(config.clone(), &clock).await;
    store.close().await.unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&config.path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = SqliteStore::open(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 5
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_store_with_normal_sync_works_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig {
        synchronous: Synchronous::Normal,
        ..SqliteConfig::in_dir(dir.path().join("nested/data"))
    };
    let store = open_with(config, &clock).await;
    let id = ids(&store.accept(vec![message("+1", 0)]).await.unwrap())[0];
    assert_eq!(store.claim(1).await.unwrap()[0].id, id);
    store.writable().await.unwrap();
}

#[tokio::test]
async fn an_invalid_config_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        queue_rows: 10,
        ..SqliteConfig::in_dir(dir.path())
    };
    let err = SqliteStore::open(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "queue_rows",
                ..
            }
        ),
        "{err}"
    );
}

/// Accepts `n` single messages at once and returns how long the last answer took.
async fn accept_together(store: &SqliteStore, n: usize, tag: &str) -> Duration {
    let started = std::time::Instant::now();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..n {
        let store = store.clone();
        let to = format!("+{tag}{i}");
        writes.spawn(async move { store.accept(vec![message(&to, 1)]).await });
    }
    while let Some(out) = writes.join_next().await {
        assert!(out.unwrap().unwrap()[0].id().is_some());
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_commits_wait_out_the_spacing_unless_enough_callers_wait() {
    let spacing = Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    // Few callers: a write right after a commit waits for the rest of the spacing.
    let config = SqliteConfig {
        commit_spacing: spacing,
        commit_waiters: 100,
        ..SqliteConfig::in_dir(dir.path())
    };
    let store = open_with(config.clone(), &clock).await;
    accept_together(&store, 1, "1").await;
    let waited = accept_together(&store, 4, "2").await;
    assert!(waited >= spacing / 2, "committed after {waited:?}");
    store.close().await.unwrap();

    // As many callers as `commit_waiters`: committed at once.
    let store = open_with(
        SqliteConfig {
            commit_waiters: 4,
            commit_spacing: Duration::from_secs(1),
            ..config
        },
        &clock,
    )
    .await;
    accept_together(&store, 1, "3").await;
    let waited = accept_together(&store, 4, "4").await;
    assert!(
        waited < Duration::from_millis(900),
        "committed after {waited:?}"
    );
    store.close().await.unwrap();

    let config = SqliteConfig {
        commit_spacing: Duration::from_millis(1001),
        ..SqliteConfig::in_dir(dir.path())
    };
    let err = SqliteStore::open(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "commit_spacing",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_stopped_waiting_is_still_committed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig {
        busy_timeout: Duration::from_secs(120),
        ..SqliteConfig::in_dir(dir.path())
    };
    let path = config.path.clone();
    let store = open_with(config, &clock).await;
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let task = {
        let store = store.clone();
        tokio::spawn(async move { store.accept(vec![message("+1", 0)]).await })
    };
    for _ in 0..5000 {
        if store.backlog().queued_rows > 0 {
            break;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(store.backlog().queued_rows, 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    blocker.execute_batch("ROLLBACK").unwrap();
    // The health write queues behind the abandoned accept, so once it resolves both are in.
    store.writable().await.unwrap();
    assert_eq!(store.counts().await.unwrap().get(MessageState::Accepted), 1);
    assert_eq!(store.claim(10).await.unwrap()[0].to, "+1");
}

#[tokio::test]
async fn oversized_calls_are_refused_as_the_callers_fault() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let store = open(dir.path(), &clock).await;
    let err = store.claim(1001).await.unwrap_err();
    assert!(err.is_caller_error(), "{err}");
    let updates: Vec<_> = (0..1001)
        .map(|i| Update::InDoubtResubmit {
            id: MessageId::from_u128(i),
        })
        .collect();
    assert!(store.apply(updates).await.unwrap_err().is_caller_error());
    assert!(
        store
            .list_suppressions(None, 5000)
            .await
            .unwrap_err()
            .is_caller_error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_blocked_by_another_process_fails_loudly_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig {
        busy_timeout: Duration::from_millis(100),
        ..SqliteConfig::in_dir(dir.path())
    };
    let path = config.path.clone();
    let store = open_with(config, &clock).await;
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (a, b) = tokio::join!(
        store.accept(vec![message("+1", 0)]),
        store.accept(vec![message("+2", 0)])
    );
    for result in [a, b] {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err}");
    }
    assert_eq!(store.counts().await.unwrap().open(), 0);
    blocker.execute_batch("ROLLBACK").unwrap();
    store.accept(vec![message("+3", 0)]).await.unwrap();
    assert_eq!(store.counts().await.unwrap().open(), 1);
}

#[tokio::test]
async fn prune_forgets_a_destination_bucket_once_all_its_messages_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(at(0));
    let config = SqliteConfig {
        retention: Duration::from_secs(60),
        ..SqliteConfig::in_dir(dir.path())
    };
    let store = open_with(config.clone(), &clock).await;
    // Row numbers start at 1: bucket 0 holds rows 1..16 383, bucket 1 rows 16 384..32 767.
    let mut all = Vec::new();
    for first in (0..32_767).step_by(1_000) {
        let batch: Vec<_> = (first..(first + 1_000).min(32_767))
            .map(|i| message(if i % 20_000 == 100 { "+900" } else { "+901" }, 0))
            .collect();
        all.extend(ids(&store.accept(batch).await.unwrap()));
    }
    let (bucket_0, bucket_1) = all.split_at(16_383);
    for chunk in bucket_0.chunks(1_000) {
        let cancels = chunk
            .iter()
            .map(|id| Update::Cancel {
                id: *id,
                reason: reason("cancelled"),
            })
            .collect();
        store.apply(cancels).await.unwrap();
    }
    let to_900 = |store: &SqliteStore| {
        let query = smppd::store::ListQuery {
            to: Some("+900".into()),
            limit: 10,
            ..Default::default()
        };
        let store = store.clone();
        async move {
            let page = store.list(query).await.unwrap();
            page.messages.iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        to_900(&store).await,
        [bucket_1[20_100 - 16_383], bucket_0[100]]
    );

    clock.advance(Duration::from_secs(61));
    while store.prune().await.unwrap().more {}
    assert_eq!(to_900(&store).await, [bucket_1[20_100 - 16_383]]);
    store.close().await.unwrap();
    let conn = rusqlite::Connection::open(&config.path).unwrap();
    let per_bucket: Vec<(i64, i64)> = conn
        .prepare("SELECT bucket, count(*) FROM dest GROUP BY bucket ORDER BY bucket")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(per_bucket, [(1, 16_384)]);
}
