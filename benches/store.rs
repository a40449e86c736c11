//! The store's full per-message write cycle on the real disk, with `synchronous=FULL`:
//! accept (batches of 1000) -> claim -> part submitted + attempt finished -> receipt stored
//! and matched, and the message finished in the same commit (as the receipt handler's roll-up
//! rule does for a delivered message). Several pipelines run at once, as the API, the dispatcher and
//! the receipt handler would, so the writer's group commit has company to batch.
//!
//! Run: `cargo bench --bench store` (set `STORE_BENCH_DIR` to measure another disk,
//! `STORE_BENCH_PIPELINES` for the concurrency, `STORE_BENCH_PREFILL=N` to first run N
//! messages through the cycle untimed, so the indexes start large).
//! Prints the median, min and max messages/s over the rounds, then each stage alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smppd::pdu::CommandStatus;
use smppd::sms::{Encoding, IdFormat, ReceiptStat, normalize_message_id};
use smppd::store::{
    AfterAttempt, AttemptOutcome, FinalState, Message, NewAttempt, NewMessage, NewReceipt,
    Priority, Reason, ReceiptMatch, ReceiptOutcome, RollUp, SqliteConfig, SqliteStore, Store,
    Timestamp, Update,
};

const BATCH: usize = 1000;
/// Concurrent pipelines (override with `STORE_BENCH_PIPELINES`).
const PIPELINES: usize = 8;
const CYCLES_PER_ROUND: usize = 5; // per pipeline
const ROUNDS: usize = 7;

fn new_message(n: u64) -> NewMessage {
    NewMessage {
        idempotency_key: Some(format!("producer-1:{n}")),
        to: format!("+4477009{:05}", n % 100_000),
        from: "MyBrand".into(),
        body: "Your verification code is 123456. It expires in 10 minutes. Do not share it \
               with anyone; we will never ask for it. Reply STOP to opt out of messages."
            .into(),
        encoding: Encoding::Gsm7,
        parts: 1,
        priority: Priority::new((n % 4) as u8).unwrap_or_default(),
        expires_at: Timestamp::now().saturating_add(Duration::from_secs(86_400)),
        not_before: None,
        callback_url: None,
        carrier: None,
        tags: None,
    }
}

fn carrier_id(m: &Message) -> String {
    // A hex id per message, as a carrier's submit_sm_resp would give.
    format!("{:x}", m.id.as_u128() & 0xFFFF_FFFF_FFFF_FFFF)
}

/// One pipeline cycle over `BATCH` messages; returns the messages finished.
async fn cycle(store: &SqliteStore, seq: &mut u64) -> usize {
    let batch: Vec<_> = (0..BATCH)
        .map(|_| {
            *seq += 1;
            new_message(*seq)
        })
        .collect();
    store.accept(batch).await.expect("accept");

    let claimed = store.claim(BATCH).await.expect("claim");
    let now = Timestamp::now();
    let mut submitted = Vec::with_capacity(claimed.len() * 2);
    for m in &claimed {
        let raw = carrier_id(m);
        submitted.push(Update::PartSubmitted {
            id: m.id,
            part: 0,
            carrier: "acme".into(),
            bind: "acme-1".into(),
            key: normalize_message_id(&raw, IdFormat::Hex),
            carrier_message_id: raw,
        });
        submitted.push(Update::AttemptFinished {
            id: m.id,
            attempt: NewAttempt {
                carrier: "acme".into(),
                bind: "acme-1".into(),
                parts: 1,
                command_status: Some(CommandStatus::ESME_ROK),
                outcome: AttemptOutcome::Accepted,
                detail: None,
                started_at: now,
                ended_at: now,
            },
            next: AfterAttempt::Submitted {
                receipt_deadline: now.saturating_add(Duration::from_secs(72 * 3600)),
            },
        });
    }
    for chunk in submitted.chunks(BATCH) {
        store.apply(chunk.to_vec()).await.expect("apply");
    }

    let receipts: Vec<_> = claimed
        .iter()
        .map(|m| {
            let raw = carrier_id(m);
            NewReceipt {
                carrier: "acme".into(),
                key: normalize_message_id(&raw, IdFormat::Hex),
                raw: format!(
                    "id:{raw} sub:001 dlvrd:001 submit date:2401151230 done date:2401151231 \
                     stat:DELIVRD err:000 Text:Your verification"
                ),
                carrier_message_id: raw,
                stat: Some(ReceiptStat::Delivered),
                err: Some("000".into()),
            }
        })
        .collect();
    let rule: RollUp = Arc::new(|_: &str, m: &ReceiptMatch| {
        m.all_parts_final()
            .then(|| (FinalState::Delivered, Reason::new("DELIVRD", "delivered")))
    });
    let matched = store
        .store_receipts_rolling_up(receipts, Some(rule))
        .await
        .expect("receipts");
    let n = matched
        .iter()
        .filter(|r| matches!(r, ReceiptOutcome::Matched(m) if m.finished.is_some()))
        .count();
    assert_eq!(
        n,
        claimed.len(),
        "every receipt matched and finished its message"
    );
    n
}

/// CPU time (ns) used so far by the store's writer thread, from /proc (Linux); `None`
/// elsewhere. Wall-clock rates depend on what else runs on the machine; this does not much.
fn writer_cpu_ns() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with("smppd-store-wri") {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            return stat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then just check it runs.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = std::env::var_os("STORE_BENCH_DIR");
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let store = rt
        .block_on(SqliteStore::open(SqliteConfig::in_dir(dir.path())))
        .expect("open");
    // One write first: the writer thread names itself when it starts running.
    rt.block_on(store.writable()).expect("writable");
    let store = Arc::new(store);
    let (rounds, cycles) = if quick {
        (1, 1)
    } else {
        (ROUNDS, CYCLES_PER_ROUND)
    };
    let pipelines: usize = std::env::var("STORE_BENCH_PIPELINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PIPELINES);

    println!(
        "store full cycle: {pipelines} pipelines x {cycles} cycles x {BATCH} messages per round, \
         synchronous=FULL, {}",
        dir.path().display()
    );
    let prefill: usize = std::env::var("STORE_BENCH_PREFILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if prefill > 0 {
        let start = Instant::now();
        let done: usize = rt.block_on(async {
            let mut tasks = Vec::new();
            for p in 0..pipelines {
                let store = Arc::clone(&store);
                let share = prefill.div_ceil(pipelines * BATCH);
                tasks.push(tokio::spawn(async move {
                    let mut seq = ((1000 + p) as u64) << 32;
                    let mut n = 0;
                    for _ in 0..share {
                        n += cycle(&store, &mut seq).await;
                    }
                    n
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("prefill");
            }
            total
        });
        println!(
            "  prefilled {done} messages in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
    let mut rates = Vec::new();
    let mut costs = Vec::new();
    for round in 0..rounds {
        let cpu_before = writer_cpu_ns();
        let start = Instant::now();
        let done: usize = rt.block_on(async {
            let mut tasks = Vec::new();
            for p in 0..pipelines {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    let mut seq = ((round * pipelines + p) as u64) << 32;
                    let mut n = 0;
                    for _ in 0..cycles {
                        n += cycle(&store, &mut seq).await;
                    }
                    n
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("pipeline");
            }
            total
        });
        let secs = start.elapsed().as_secs_f64();
        let rate = done as f64 / secs;
        let cost = match (cpu_before, writer_cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1000.0 / done as f64,
            _ => f64::NAN,
        };
        println!(
            "  round {round}: {done} messages in {secs:.3} s = {rate:.0} msg/s; \
             writer CPU {cost:.1} us/msg"
        );
        rates.push(rate);
        costs.push(cost);
    }
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0, f64::max);
    println!(
        "store/full_cycle: median {:.0} msg/s (min {min:.0}, max {max:.0})",
        median(&mut rates)
    );
    let cost = median(&mut costs);
    println!(
        "store/full_cycle: writer CPU median {cost:.1} us/msg (one writer core: {:.0} msg/s)",
        1e6 / cost
    );

    if !quick {
        stages(&rt, &store);
    }
    rt.block_on(store.close()).expect("close");
}

/// The same cycle with one caller, stage by stage: where the writer's time goes.
fn stages(rt: &tokio::runtime::Runtime, store: &SqliteStore) {
    const NAMES: [&str; 5] = ["accept", "claim", "submitted", "receipt", "final"];
    let mut cpu = [0u64; 5];
    let mut wall = [0f64; 5];
    let mut seq = 9u64 << 40;
    let mut total = 0usize;
    rt.block_on(async {
        for _ in 0..10 {
            let mut mark = |stage: usize, t: Instant, c: Option<u64>| {
                wall[stage] += t.elapsed().as_secs_f64();
                if let (Some(a), Some(b)) = (c, writer_cpu_ns()) {
                    cpu[stage] += b.saturating_sub(a);
                }
            };
            let batch: Vec<_> = (0..BATCH)
                .map(|_| {
                    seq += 1;
                    new_message(seq)
                })
                .collect();
            let (t, c) = (Instant::now(), writer_cpu_ns());
            store.accept(batch).await.expect("accept");
            mark(0, t, c);

            let (t, c) = (Instant::now(), writer_cpu_ns());
            let claimed = store.claim(BATCH).await.expect("claim");
            mark(1, t, c);
            total += claimed.len();

            let now = Timestamp::now();
            let updates: Vec<_> = claimed
                .iter()
                .flat_map(|m| {
                    let raw = carrier_id(m);
                    [
                        Update::PartSubmitted {
                            id: m.id,
                            part: 0,
                            carrier: "acme".into(),
                            bind: "acme-1".into(),
                            key: normalize_message_id(&raw, IdFormat::Hex),
                            carrier_message_id: raw,
                        },
                        Update::AttemptFinished {
                            id: m.id,
                            attempt: NewAttempt {
                                carrier: "acme".into(),
                                bind: "acme-1".into(),
                                parts: 1,
                                command_status: Some(CommandStatus::ESME_ROK),
                                outcome: AttemptOutcome::Accepted,
                                detail: None,
                                started_at: now,
                                ended_at: now,
                            },
                            next: AfterAttempt::Submitted {
                                receipt_deadline: now,
                            },
                        },
                    ]
                })
                .collect();
            let (t, c) = (Instant::now(), writer_cpu_ns());
            for chunk in updates.chunks(BATCH) {
                store.apply(chunk.to_vec()).await.expect("apply");
            }
            mark(2, t, c);

            let receipts: Vec<_> = claimed
                .iter()
                .map(|m| {
                    let raw = carrier_id(m);
                    NewReceipt {
                        carrier: "acme".into(),
                        key: normalize_message_id(&raw, IdFormat::Hex),
                        raw: format!("id:{raw} stat:DELIVRD err:000"),
                        carrier_message_id: raw,
                        stat: Some(ReceiptStat::Delivered),
                        err: Some("000".into()),
                    }
                })
                .collect();
            let (t, c) = (Instant::now(), writer_cpu_ns());
            store.store_receipts(receipts).await.expect("receipts");
            mark(3, t, c);

            let finals = claimed
                .iter()
                .map(|m| Update::Finish {
                    id: m.id,
                    state: FinalState::Delivered,
                    reason: Reason::new("DELIVRD", "delivered"),
                })
                .collect();
            let (t, c) = (Instant::now(), writer_cpu_ns());
            store.apply(finals).await.expect("finish");
            mark(4, t, c);
        }
    });
    let n = total.max(1) as f64;
    for (i, name) in NAMES.iter().enumerate() {
        println!(
            "store/stage {name:9} (1 caller): writer CPU {:5.1} us/msg, wall {:5.1} us/msg",
            cpu[i] as f64 / 1000.0 / n,
            wall[i] * 1e6 / n
        );
    }
}
