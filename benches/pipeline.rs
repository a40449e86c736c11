//! Pipeline bench: smsc-sim, the engine and the load generator (`smppd::load`) in one
//! process on loopback, a fresh temporary data directory per scenario, receipts on.
//!
//! ```sh
//! cargo bench --bench pipeline              # the real scenarios (~10 s of sending each)
//! cargo bench --bench pipeline -- --quick   # seconds; `cargo test` runs it this way (CI)
//! PIPELINE_CASES=batch,single PIPELINE_SECS=20 cargo bench --bench pipeline
//! PIPELINE_CASES=batch PIPELINE_RATE=5000 PIPELINE_SYNC=normal cargo bench --bench pipeline
//! ```
//!
//! `PIPELINE_RATE` paces the scenarios that otherwise send as fast as they can (to find the
//! highest rate that still drains), `PIPELINE_SYNC` sets `[store] synchronous` (default
//! `full`), `PIPELINE_RECENT` sets `[store] recent_parts` (default 500 000),
//! `PIPELINE_TO_INDEX` `[store] index_destinations` (`true`, the default, or `false`),
//! `PIPELINE_CLAIM` `[dispatch] claim_batch` (default 1 000), `PIPELINE_WINDOW` the bind
//! window (default 100), `PIPELINE_IDS` the simulator's message id format (`hex`, the
//! default, `decimal` or `uuid`), `PIPELINE_WORKERS` the engine's `[engine] worker_threads`
//! (default 0: one fewer than the cores, at least one).
//!
//! Scenarios (each bounded: sending for a fixed time, at most a fixed count in quick mode,
//! then at most a drain cap for the pipeline to finish):
//!
//! - `loadgen-single`, `loadgen-batch`: the load generator alone against a trivial HTTP
//!   target that answers at once, to show what it can offer on its one thread.
//! - `batch`: batches of 200 over 8 connections, as fast as possible.
//! - `single`: single POSTs over 64 connections, as fast as possible.
//! - `latency`: single POSTs at a fixed rate, the mix of GSM, long GSM and UCS2.
//!
//! Columns: messages accepted; accepted per second while sending; messages through the
//! pipeline per second (accepted until every part was submitted, receipted and its receipt
//! acknowledged, as smsc-sim counts it); accept latency per request; accept-to-submit_sm_resp
//! and accept-to-final latency of a sample of 2 000 (the engine's created_at to the ended_at
//! of the attempt the carrier accepted, and to updated_at); CPU per message of the
//! engine (the process's CPU time less the simulator's threads and the load thread; in
//! brackets the store writer thread's share of it), of the simulator and of the load
//! generator, from /proc; and peak RSS (VmHWM, reset before each
//! scenario) of the whole process. The load generator runs on one thread of its own, the
//! simulator on one, the engine on its worker threads as `smppd run` sizes them (besides the
//! store's own threads), all on the machine's cores.
//!
//! The bind-level scenarios (pool and session against the simulator, no HTTP and no store)
//! are `cargo bench --bench binds`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use axum::body::Bytes;
use smppd::config::ConfigFile;
use smppd::engine::Engine;
use smppd::load::{LoadOptions, Mix, Sent, Summary, Target, procfs};
use smppd::store::MessageState;
use smsc_sim::config::{AccountConfig, DelayRange, SimConfig};
use smsc_sim::ids::MessageIdFormat;
use smsc_sim::{Sim, SimHandle};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

// The allocator `smppd run` uses (see src/main.rs), so the bench measures what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &str = "bench-key-123";

struct Settings {
    quick: bool,
    /// Sending time per scenario.
    secs: f64,
    /// At most this many messages per scenario (quick mode), else unbounded by count.
    max_count: Option<u64>,
    /// How long the pipeline may take to finish after the sending stops.
    drain_cap: Duration,
    synchronous: String,
    only: Option<Vec<String>>,
    /// A rate (messages per second) for the scenarios that otherwise send as fast as they
    /// can: the sustained rate is the highest that still drains.
    rate: Option<f64>,
}

impl Settings {
    fn read() -> Settings {
        let args: Vec<String> = std::env::args().collect();
        // `cargo bench` passes --bench; `cargo test` runs this target without it: quick.
        let quick = args.iter().any(|a| a == "--quick")
            || !args.iter().any(|a| a == "--bench")
            || std::env::var("PIPELINE_QUICK").is_ok_and(|v| v == "1");
        let secs = std::env::var("PIPELINE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 1.0 } else { 10.0 });
        Settings {
            quick,
            secs,
            max_count: quick.then_some(2_000),
            drain_cap: Duration::from_secs(if quick { 30 } else { 60 }),
            synchronous: std::env::var("PIPELINE_SYNC").unwrap_or_else(|_| "full".into()),
            rate: std::env::var("PIPELINE_RATE")
                .ok()
                .and_then(|v| v.parse().ok()),
            only: std::env::var("PIPELINE_CASES")
                .ok()
                .map(|v| v.split(',').map(str::to_owned).collect()),
        }
    }
}

#[derive(Clone, Copy)]
enum Target2 {
    Trivial,
    Engine,
}

struct Scenario {
    name: &'static str,
    target: Target2,
    batch: usize,
    concurrency: usize,
    rate: Option<f64>,
    mix: &'static str,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "loadgen-single",
        target: Target2::Trivial,
        batch: 1,
        concurrency: 64,
        rate: None,
        mix: "gsm=100",
    },
    Scenario {
        name: "loadgen-batch",
        target: Target2::Trivial,
        batch: 200,
        concurrency: 8,
        rate: None,
        mix: "gsm=100",
    },
    Scenario {
        name: "batch",
        target: Target2::Engine,
        batch: 200,
        concurrency: 8,
        rate: None,
        mix: "gsm=100",
    },
    Scenario {
        name: "single",
        target: Target2::Engine,
        batch: 1,
        concurrency: 64,
        rate: None,
        mix: "gsm=100",
    },
    Scenario {
        name: "latency",
        target: Target2::Engine,
        batch: 1,
        concurrency: 16,
        rate: Some(2_000.0),
        mix: "gsm=70,long=20,ucs2=10",
    },
];

struct Runtimes {
    engine: Runtime,
    sim: Runtime,
    target: Runtime,
}

#[derive(Default)]
struct Row {
    summary: Summary,
    /// Messages through the whole pipeline per second (None for the trivial target).
    through: Option<f64>,
    drained: bool,
    /// Messages left `submitted` with every part receipted (see the README).
    left_submitted: u64,
    engine_cpu: Option<Duration>,
    /// Of the engine's, the store writer thread's.
    writer_cpu: Option<Duration>,
    sim_cpu: Option<Duration>,
    load_cpu: Duration,
    /// Wall time the load thread ran.
    load_wall: Duration,
    peak_rss: Option<u64>,
}

/// Sends on a thread of its own (named `load`) with a one-thread runtime, and returns what
/// it sent with that thread's CPU time and wall time.
fn send_on_load_thread(options: LoadOptions) -> (Sent, Duration, Duration) {
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let started = Instant::now();
            let cpu = procfs::current_thread_cpu();
            let sent = rt
                .block_on(smppd::load::send(&options))
                .expect("the load runs");
            (
                sent,
                procfs::current_thread_cpu().saturating_sub(cpu),
                started.elapsed(),
            )
        })
        .expect("a thread")
        .join()
        .expect("the load thread finished")
}

fn options(s: &Scenario, target: Target, settings: &Settings) -> LoadOptions {
    LoadOptions {
        count: settings.max_count,
        duration: Some(Duration::from_secs_f64(settings.secs)),
        rate: s
            .rate
            .map(|r| if settings.quick { r.min(500.0) } else { r })
            .or(settings.rate),
        concurrency: s.concurrency,
        batch: s.batch,
        mix: s.mix.parse::<Mix>().expect("a valid mix"),
        numbers: "447700000000-447700999999".parse().expect("a valid range"),
        from: "Bench".into(),
        track: 2_000,
        ..LoadOptions::new(target, KEY)
    }
}

/// A target that answers every submit at once with a canned body (batch answers sized for
/// `batch`), on the `target` runtime.
fn trivial_target(rt: &Runtime, batch: usize) -> (std::net::SocketAddr, CancellationToken) {
    use axum::http::StatusCode;
    use axum::routing::post;
    let one = r#"{"id":"01M80RFJYT68FG000000000097","status":"accepted","parts":1,"encoding":"gsm7","duplicate":false}"#;
    let items: Vec<String> = (0..batch)
        .map(|i| {
            format!(
                r#"{{"index":{i},"id":"01M80RFJYT68FG{i:012}","status":"accepted","parts":1,"encoding":"gsm7","duplicate":false}}"#
            )
        })
        .collect();
    let many = Bytes::from(format!(
        r#"{{"accepted":{batch},"rejected":0,"results":[{}]}}"#,
        items.join(",")
    ));
    let app = axum::Router::new()
        .route(
            "/messages",
            post(move |_body: Bytes| async move { (StatusCode::ACCEPTED, one) }),
        )
        .route(
            "/messages/batch",
            post(move |_body: Bytes| {
                let many = many.clone();
                async move { (StatusCode::OK, many) }
            }),
        );
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let stop = CancellationToken::new();
    let until = stop.clone();
    rt.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(until.cancelled_owned())
            .await;
    });
    (addr, stop)
}

fn loadgen(rts: &Runtimes, s: &Scenario, settings: &Settings) -> Row {
    let (addr, stop) = trivial_target(&rts.target, s.batch);
    let mut options = options(s, Target::Tcp(addr), settings);
    options.track = 0;
    procfs::reset_peak_rss();
    let (sent, load_cpu, load_wall) = send_on_load_thread(options);
    stop.cancel();
    Row {
        summary: sent.summary().clone(),
        load_cpu,
        load_wall,
        peak_rss: procfs::peak_rss(),
        drained: true,
        ..Row::default()
    }
}

fn start_sim(rt: &Runtime) -> (SimHandle, std::net::SocketAddr, CancellationToken) {
    let mut account = AccountConfig::new("bench", "pw");
    account.max_binds = 16;
    account.receipts.delay = DelayRange {
        min_ms: 1,
        max_ms: 10,
    };
    let message_id_format = match std::env::var("PIPELINE_IDS").as_deref() {
        Ok("decimal") => MessageIdFormat::Decimal,
        Ok("uuid") => MessageIdFormat::Uuid,
        _ => MessageIdFormat::Hex,
    };
    let sim = Sim::new(SimConfig {
        accounts: vec![account],
        message_id_format,
        ..SimConfig::default()
    })
    .expect("a valid simulator config");
    let handle = sim.handle();
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let stop = CancellationToken::new();
    rt.spawn(sim.run(listener, stop.clone().cancelled_owned()));
    (handle, addr, stop)
}

fn start_engine(
    rt: &Runtime,
    sim: std::net::SocketAddr,
    dir: &std::path::Path,
    sync: &str,
) -> Engine {
    let toml = format!(
        r#"
[engine]
data_dir = "{data}"
shutdown_grace_secs = 2

[api]
keys = [{{ name = "bench", key = "{KEY}" }}]

[metrics]
listen = ""

[store]
synchronous = "{sync}"
recent_parts = {recent}
index_destinations = {to_index}

[dispatch]
claim_batch = {claim}

[[carriers]]
name = "sim"
hosts = ["{sim}"]
system_id = "bench"
password = "pw"
binds = [{{ type = "transceiver", count = 4 }}]
window = {window}
tps = 0
max_pending_inbound = 2000
"#,
        data = dir.display(),
        claim = std::env::var("PIPELINE_CLAIM").unwrap_or_else(|_| "1000".into()),
        recent = std::env::var("PIPELINE_RECENT").unwrap_or_else(|_| "500000".into()),
        to_index = std::env::var("PIPELINE_TO_INDEX").unwrap_or_else(|_| "true".into()),
        window = std::env::var("PIPELINE_WINDOW").unwrap_or_else(|_| "100".into()),
    );
    let config = ConfigFile::parse(&toml)
        .expect("a valid config")
        .validate(dir)
        .expect("a valid config");
    let engine = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        Engine::start(config, Some(listener))
            .await
            .expect("the engine starts")
    });
    // Wait (bounded) until every bind is up.
    for _ in 0..400 {
        if engine.carriers.iter().all(|c| c.pool.binds_up() >= 4) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    engine
}

fn pipeline(rts: &Runtimes, s: &Scenario, settings: &Settings) -> Row {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (sim, sim_addr, stop_sim) = start_sim(&rts.sim);
    let engine = start_engine(&rts.engine, sim_addr, dir.path(), &settings.synchronous);
    let options = options(s, Target::Tcp(engine.api_addr), settings);

    procfs::reset_peak_rss();
    // The engine's CPU is the process's less the simulator's and the load thread's: threads
    // come and go (blocking pools, a previous engine's), and the process total keeps the
    // time of threads that ended while a per-thread sum loses it.
    let groups = ["sim", "target", "smppd-store-wri"];
    let cpu_start = procfs::thread_cpu(&groups);
    let process_start = procfs::process_cpu();
    let started = Instant::now();
    let (sent, load_cpu, load_wall) = send_on_load_thread(options);
    let parts = sent.summary().parts;

    // The pipeline is through when the dispatcher has nothing left to send and smsc-sim has
    // accepted every part and had every receipt acknowledged.
    let deadline = Instant::now() + settings.drain_cap;
    let mut drained = false;
    while Instant::now() < deadline {
        let stats = sim.stats();
        let waiting = rts
            .engine
            .block_on(engine.store.counts())
            .map(|c| {
                c.get(MessageState::Accepted)
                    + c.get(MessageState::Submitting)
                    + c.get(MessageState::Retrying)
            })
            .unwrap_or(u64::MAX);
        if waiting == 0 && stats.messages_accepted >= parts && stats.receipts_acked >= parts {
            drained = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let through_secs = started.elapsed().as_secs_f64();
    let cpu_end = procfs::thread_cpu(&groups);
    let process = procfs::process_cpu().saturating_sub(process_start);
    let peak_rss = procfs::peak_rss();
    let accepted = sent.summary().accepted;
    let summary = rts.engine.block_on(sent.follow(Duration::ZERO));
    let left_submitted = rts
        .engine
        .block_on(engine.store.counts())
        .map_or(0, |c| c.get(MessageState::Submitted));
    rts.engine.block_on(engine.shutdown());
    stop_sim.cancel();
    let sim_cpu = cpu_end[0].saturating_sub(cpu_start[0]);
    let writer_cpu = cpu_end[2].saturating_sub(cpu_start[2]);
    let target_cpu = cpu_end[1].saturating_sub(cpu_start[1]);
    Row {
        summary,
        through: Some(accepted as f64 / through_secs),
        drained,
        left_submitted,
        sim_cpu: Some(sim_cpu),
        writer_cpu: Some(writer_cpu),
        engine_cpu: Some(
            process
                .saturating_sub(sim_cpu)
                .saturating_sub(target_cpu)
                .saturating_sub(load_cpu),
        ),
        load_cpu,
        load_wall,
        peak_rss,
    }
}

fn per_message(cpu: Option<Duration>, messages: u64) -> String {
    match cpu {
        Some(c) if messages > 0 => format!("{:.1} µs", c.as_secs_f64() * 1e6 / messages as f64),
        _ => "–".into(),
    }
}

fn print_row(s: &Scenario, row: &Row) {
    let m = &row.summary;
    let how = format!(
        "{}, {} conns{}",
        if s.batch == 1 {
            "single".to_owned()
        } else {
            format!("batch {}", s.batch)
        },
        s.concurrency,
        s.rate.map(|r| format!(", {r:.0}/s")).unwrap_or_default()
    );
    let ms = |p: &smppd::load::Percentiles| format!("{:.1} / {:.1} ms", p.p50, p.p99);
    let (submits, finals) = m.final_states.as_ref().map_or_else(
        || ("–".to_owned(), "–".to_owned()),
        |f| (ms(&f.submit_latency_ms), ms(&f.latency_ms)),
    );
    let mut notes = Vec::new();
    if m.rejected > 0 {
        notes.push(format!("{} rejected {:?}", m.rejected, m.rejected_by_code));
    }
    if m.errors > 0 {
        notes.push(format!("{} errors {:?}", m.errors, m.errors_by_kind));
    }
    if !row.drained {
        notes.push("drain cap reached".into());
    }
    if row.left_submitted > 0 {
        notes.push(format!("{} left submitted", row.left_submitted));
    }
    if row.through.is_none() {
        notes.push(format!(
            "load thread {:.2} cores",
            row.load_cpu.as_secs_f64() / row.load_wall.as_secs_f64().max(1e-9)
        ));
    }
    println!(
        "| {} | {how} | {} | {:.0} | {} | {:.2} / {:.2} ms | {submits} | {finals} | {} | {} | {} | {} | {} |",
        s.name,
        m.accepted,
        m.accepted_per_sec,
        row.through.map_or("–".to_owned(), |r| format!("{r:.0}")),
        m.accept_latency_ms.p50,
        m.accept_latency_ms.p99,
        match row.writer_cpu {
            Some(w) => format!(
                "{} ({})",
                per_message(row.engine_cpu, m.accepted),
                per_message(Some(w), m.accepted)
            ),
            None => per_message(row.engine_cpu, m.accepted),
        },
        per_message(row.sim_cpu, m.accepted),
        per_message(Some(row.load_cpu), m.accepted),
        row.peak_rss
            .map_or("–".to_owned(), |b| format!("{} MiB", b / (1 << 20))),
        notes.join("; "),
    );
}

fn main() {
    let settings = Settings::read();
    let runtime = |name: &str, workers: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let rts = Runtimes {
        // As `smppd run` sizes it (`engine.worker_threads`, 0 for its default).
        engine: runtime(
            "engine",
            smppd::config::worker_threads(
                std::env::var("PIPELINE_WORKERS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
        ),
        sim: runtime("sim", 1),
        target: runtime("target", 1),
    };
    println!(
        "pipeline bench ({}; {} s of sending per scenario{}; store synchronous = {})",
        if settings.quick { "quick" } else { "full" },
        settings.secs,
        settings
            .max_count
            .map(|c| format!(", at most {c} messages"))
            .unwrap_or_default(),
        settings.synchronous,
    );
    println!();
    println!(
        "| scenario | how | accepted | accepted/s | through pipeline/s | accept p50 / p99 | accept→submit_sm_resp p50 / p99 | accept→final p50 / p99 | engine CPU/msg (store writer) | sim CPU/msg | load CPU/msg | peak RSS | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut broken = Vec::new();
    for s in &SCENARIOS {
        if settings
            .only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == s.name))
        {
            continue;
        }
        let row = match s.target {
            Target2::Trivial => loadgen(&rts, s, &settings),
            Target2::Engine => pipeline(&rts, s, &settings),
        };
        print_row(s, &row);
        if row.summary.accepted == 0 || row.summary.errors > 0 || !row.drained {
            broken.push(s.name);
        }
    }
    // In CI (quick mode) a scenario that sent nothing, lost requests or never drained fails
    // the run, so the bench cannot rot unnoticed.
    if settings.quick && !broken.is_empty() {
        eprintln!("pipeline bench: scenarios failed: {broken:?}");
        std::process::exit(1);
    }
}
