//! Load bench: one submitter drives a carrier pool against smsc-sim in the same process over
//! loopback, receipts off then on, at (binds x window) = 1x10, 1x100, 4x100, 1x1000.
//!
//! Prints submit_sm per second, the median and 99th percentile submit round trip, and CPU per
//! message: for the whole process (engine plus simulator, which share it) and for the engine's
//! threads alone (the simulator runs on its own runtime, on threads named `sim`). Run it in
//! release:
//!
//! ```sh
//! cargo bench --bench binds
//! cargo bench --bench binds -- --quick   # seconds; `cargo test` runs it this way (CI)
//! ```
//!
//! Each case runs a bounded number of messages (or stops at a time cap), after a warm-up.
//! `BINDS_CASES=off:1x100,on:4x100` runs only the cases named; `BINDS_MESSAGES=1000000`
//! measures more messages per case (default 200 000); `BINDS_SIM_WORKERS` gives the
//! simulator more worker threads (default 1).
//!
//! The submitter is one task: it submits through `CarrierPool::submit` (waiting while every
//! window is full) and, after each submit, takes the outcomes that have arrived, in order; a
//! round trip runs from `submit` returning to the outcome being seen. It counts as engine CPU,
//! so it is kept lean: no second task or channel for the outcomes, round-trip samples stored in
//! memory touched before the measurement starts, the time cap looked at every 1 024 messages.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use smppd::carrier::config::CarrierConfig;
use smppd::carrier::{CarrierPool, MessageOutcome, PoolOptions, Submission};
use smppd::conn::PartOutcome;
use smppd::pdu::{
    Body, COctetString, CommandStatus, Npi, RegisteredDelivery, ShortMessage, SubmitSm, Ton,
};
use smsc_sim::Sim;
use smsc_sim::config::{AccountConfig, SimConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const MESSAGES: u64 = 200_000;
/// Measured messages per case in quick mode.
const QUICK_MESSAGES: u64 = 5_000;
/// How often (in messages) the submitter looks at the clock for the time cap.
const CAP_CHECK_EVERY: u64 = 1024;
const WARMUP: u64 = 5_000;
const TIME_CAP: Duration = Duration::from_secs(8);

/// CPU time (user + system) of the process's threads, split into the simulator's (threads
/// named `sim`) and everything else (the engine, the submitter, the main thread). Read from
/// /proc/self/task/*/stat in clock ticks (USER_HZ = 100 on Linux).
fn cpu_times() -> (Duration, Duration) {
    let (mut sim, mut engine) = (0u64, 0u64);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (Duration::ZERO, Duration::ZERO);
    };
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let t = ticks(11) + ticks(12);
        if comm.starts_with("sim") {
            sim += t;
        } else {
            engine += t;
        }
    }
    (
        Duration::from_millis(sim * 10),
        Duration::from_millis(engine * 10),
    )
}

fn message(receipts: bool) -> Body {
    Body::SubmitSm(SubmitSm {
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::new("447700900001").unwrap(),
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::new("447700900123").unwrap(),
        registered_delivery: if receipts {
            RegisteredDelivery::FINAL
        } else {
            RegisteredDelivery::default()
        },
        short_message: ShortMessage::new(&b"A load test message of ordinary length"[..]).unwrap(),
        ..SubmitSm::default()
    })
}

struct Row {
    rate: f64,
    p50: Duration,
    p99: Duration,
    process_cpu: Duration,
    engine_cpu: Duration,
    not_accepted: u64,
    sent: u64,
}

/// `cargo bench` passes --bench; `cargo test` runs this target without it: a quick run of
/// every case (seconds), so the bench cannot rot. `--quick` asks for that under cargo bench.
fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench")
}

fn messages() -> u64 {
    std::env::var("BINDS_MESSAGES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(if quick() { QUICK_MESSAGES } else { MESSAGES })
}

async fn case(addr: std::net::SocketAddr, binds: usize, window: usize, receipts: bool) -> Row {
    let messages = messages();
    let mut config = CarrierConfig {
        name: "bench".into(),
        hosts: vec![addr.to_string()],
        system_id: "bench".into(),
        password: "pw".into(),
        window,
        tps: 0.0,
        max_pending_inbound: 4096,
        ..CarrierConfig::default()
    };
    config.binds[0].count = binds;
    let spec = config.validate().unwrap();
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (inbound_tx, mut inbound) = mpsc::channel(8192);
    let (pool, _events) =
        CarrierPool::start(spec, PoolOptions::new(Some(inbound_tx)), &tracker, &cancel);
    // The receipt handler answers at once (a real one commits a batch to the store first).
    let answering = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(1024);
        while inbound.recv_many(&mut batch, 1024).await > 0 {
            for d in batch.drain(..) {
                let _ = d.responder.try_respond(CommandStatus::ESME_ROK);
            }
        }
    });
    while pool.binds_up() < binds {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The submitter keeps its submissions in order and, after each submit, records those
    // that have their outcome (polled without registering for a wake-up: it looks again after
    // the next submit anyway, and waits for the rest at the end).
    let mut pending: VecDeque<(Instant, Submission)> = VecDeque::with_capacity(binds * window);
    // Written through once here, so the page faults of a fresh allocation do not land in
    // the measurement.
    let mut rtts = vec![Duration::MAX; (messages + WARMUP) as usize];
    rtts.clear();
    let mut not_accepted = 0u64;
    let mut record = |at: Instant, now: Instant, outcome: MessageOutcome| {
        rtts.push(now - at);
        if !matches!(outcome.parts[0], PartOutcome::Accepted { .. }) {
            not_accepted += 1;
        }
    };

    let template = message(receipts);
    let mut sent = 0u64;
    let mut started = Instant::now();
    let mut cpu_start = cpu_times();
    let total = WARMUP + messages;
    for i in 0..total {
        if i == WARMUP {
            started = Instant::now();
            cpu_start = cpu_times();
        }
        if i > WARMUP && i % CAP_CHECK_EVERY == 0 && started.elapsed() > TIME_CAP {
            break;
        }
        let mut parts = vec![template.clone()];
        let submission = pool.submit(&mut parts, i).await.expect("the pool takes it");
        let now = Instant::now();
        pending.push_back((now, submission));
        sent += 1;
        while let Some((at, submission)) = pending.front_mut() {
            // Unconstrained: an outcome that is there is taken even when the task's
            // cooperative budget is spent (it would look pending until the task yields).
            let mut look = Context::from_waker(Waker::noop());
            let mut peek = tokio::task::unconstrained(submission);
            let Poll::Ready(outcome) = Pin::new(&mut peek).poll(&mut look) else {
                break;
            };
            record(*at, now, outcome);
            pending.pop_front();
        }
    }
    while let Some((at, submission)) = pending.pop_front() {
        let outcome = submission.await;
        record(at, Instant::now(), outcome);
    }
    let elapsed = started.elapsed();
    let cpu_end = cpu_times();
    let sim_cpu = cpu_end.0.saturating_sub(cpu_start.0);
    let engine_cpu = cpu_end.1.saturating_sub(cpu_start.1);
    let measured = sent.saturating_sub(WARMUP).max(1);
    let mut samples = rtts.split_off(WARMUP.min(rtts.len() as u64) as usize);
    samples.sort_unstable();
    let quantile = |q: usize| {
        samples
            .get(samples.len().saturating_sub(1) * q / 100)
            .copied()
            .unwrap_or_default()
    };
    let (p50, p99) = (quantile(50), quantile(99));
    pool.shutdown(Duration::from_secs(10)).await;
    answering.abort();
    Row {
        rate: measured as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
        process_cpu: (sim_cpu + engine_cpu) / measured as u32,
        engine_cpu: engine_cpu / measured as u32,
        not_accepted,
        sent: measured,
    }
}

fn main() {
    // Two cores: the engine (pool, drivers, submitter, collector) on one worker, the simulator
    // on another, so each side's CPU can be told apart.
    let engine = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("engine")
        .enable_all()
        .build()
        .expect("a runtime");
    let sim_workers = std::env::var("BINDS_SIM_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let sim_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(sim_workers)
        .thread_name("sim")
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "| receipts | binds x window | messages | submit_sm/s | p50 round trip | p99 round trip | process CPU/msg | engine CPU/msg | not accepted |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // BINDS_CASES=off:1x100,on:4x100 runs only those cases.
    let only = std::env::var("BINDS_CASES").ok();
    for receipts in [false, true] {
        for (binds, window) in [(1, 10), (1, 100), (4, 100), (1, 1000)] {
            let name = format!("{}:{binds}x{window}", if receipts { "on" } else { "off" });
            if only
                .as_ref()
                .is_some_and(|o| !o.split(',').any(|c| c == name))
            {
                continue;
            }
            let sim = Sim::new(SimConfig {
                accounts: vec![AccountConfig {
                    max_binds: 16,
                    ..AccountConfig::new("bench", "pw")
                }],
                max_messages: 100_000,
                ..SimConfig::default()
            })
            .expect("a valid simulator config");
            let listener = sim_runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("a port");
            let addr = listener.local_addr().expect("an address");
            let sim_stop = CancellationToken::new();
            let sim_task = sim_runtime.spawn(sim.run(listener, sim_stop.clone().cancelled_owned()));
            let row = engine
                .block_on(engine.spawn(case(addr, binds, window, receipts)))
                .expect("the case ran");
            sim_stop.cancel();
            let _ = sim_runtime.block_on(sim_task);
            println!(
                "| {} | {binds} x {window} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} µs | {:.2} µs | {} |",
                if receipts { "on" } else { "off" },
                row.sent,
                row.rate,
                row.p50.as_secs_f64() * 1e3,
                row.p99.as_secs_f64() * 1e3,
                row.process_cpu.as_secs_f64() * 1e6,
                row.engine_cpu.as_secs_f64() * 1e6,
                row.not_accepted,
            );
        }
    }
}
