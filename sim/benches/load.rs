//! Load bench: the simulator in-process on loopback, driven by N ESME connections that each
//! keep W submit_sm outstanding, receipts on (registered_delivery 1) and answered.
//!
//! ```text
//! cargo bench -p smsc-sim --bench load
//! LOAD_CONNS=4 LOAD_WINDOW=100 LOAD_MAX=2000000 LOAD_SECS=20 cargo bench -p smsc-sim --bench load
//! ```
//!
//! Settings (environment, or `--conns N --window W --max M --secs S` after `--`):
//! `LOAD_CONNS` connections (default 4), `LOAD_WINDOW` outstanding submits per connection
//! (default 100), `LOAD_MAX` submits in all (default 2 000 000), `LOAD_SECS` seconds at most
//! (default 20), `LOAD_MAX_MESSAGES` the simulator's message table bound (default its own).
//!
//! Prints submits/s, receipts/s, CPU time per message (the whole process, and the simulator's
//! and the clients' threads apart, from /proc), and RSS at start, every few seconds, and at
//! the end. The clients are cheap on purpose: the submit_sm is encoded once and only its
//! sequence number patched, every write carries a batch, and reads are parsed by header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use smppd::pdu::{
    Bind, Body, COctetString, CommandId, CommandStatus, InterfaceVersion, Npi, Pdu,
    RegisteredDelivery, ShortMessage, SubmitSm, Ton,
};
use smsc_sim::Sim;
use smsc_sim::config::{AccountConfig, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct Settings {
    conns: usize,
    window: usize,
    max: u64,
    secs: f64,
    max_messages: Option<usize>,
}

fn setting<T: std::str::FromStr>(args: &[String], flag: &str, env: &str, default: T) -> T {
    let from_args = args
        .iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.replace('_', "").parse().ok());
    from_args
        .or_else(|| {
            std::env::var(env)
                .ok()
                .and_then(|v| v.replace('_', "").parse().ok())
        })
        .unwrap_or(default)
}

impl Settings {
    fn read() -> Settings {
        let args: Vec<String> = std::env::args().collect();
        Settings {
            conns: setting(&args, "--conns", "LOAD_CONNS", 4usize).max(1),
            window: setting(&args, "--window", "LOAD_WINDOW", 100usize).max(1),
            max: setting(&args, "--max", "LOAD_MAX", 2_000_000u64),
            secs: setting(&args, "--secs", "LOAD_SECS", 20.0f64),
            max_messages: std::env::var("LOAD_MAX_MESSAGES")
                .ok()
                .and_then(|v| v.replace('_', "").parse().ok()),
        }
    }
}

#[derive(Default)]
struct Counters {
    /// Submits written (handed out to the connections).
    issued: AtomicU64,
    /// submit_sm_resp ESME_ROK.
    accepted: AtomicU64,
    /// submit_sm_resp with another status.
    refused: AtomicU64,
    /// deliver_sm received (and answered).
    receipts: AtomicU64,
}

/// CPU time (user + system) in seconds: the process, and per thread name prefix.
fn cpu_seconds() -> (f64, f64, f64) {
    // USER_HZ is 100 on every Linux ABI in use.
    const TICKS: f64 = 100.0;
    let ticks = |stat: &str| -> Option<f64> {
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / TICKS)
    };
    let process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .unwrap_or(0.0);
    let (mut sim, mut clients) = (0.0, 0.0);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let t = std::fs::read_to_string(path.join("stat"))
                .ok()
                .and_then(|s| ticks(&s))
                .unwrap_or(0.0);
            if name.starts_with("sim") {
                sim += t;
            } else if name.starts_with("esme") {
                clients += t;
            }
        }
    }
    (process, sim, clients)
}

/// Resident set size in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One encoded submit_sm; the sequence number sits at octets 12..16.
fn submit_template() -> Vec<u8> {
    let sm = SubmitSm {
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::try_from("447700900001").unwrap(),
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::try_from("447700900123").unwrap(),
        registered_delivery: RegisteredDelivery::FINAL,
        short_message: ShortMessage::new(&b"Load test message, hello!"[..]).unwrap(),
        ..SubmitSm::default()
    };
    Pdu::new(0, Body::SubmitSm(sm)).to_bytes().to_vec()
}

const DELIVER_SM_RESP_LEN: u32 = 17;

/// One ESME: bind, then keep `window` submits outstanding until told to stop, answering
/// every deliver_sm; then wait (bounded) for what is still outstanding.
async fn esme(
    addr: SocketAddr,
    window: usize,
    max: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let bind = Pdu::new(
        1,
        Body::BindTransceiver(Bind {
            system_id: COctetString::try_from("load").unwrap(),
            password: COctetString::try_from("pw").unwrap(),
            interface_version: InterfaceVersion::V34,
            ..Bind::default()
        }),
    );
    stream.write_all(&bind.to_bytes()).await?;
    let template = submit_template();
    let mut rbuf = BytesMut::with_capacity(1 << 20);
    let mut wbuf = BytesMut::with_capacity(1 << 20);
    let mut bound = false;
    let mut outstanding = 0usize;
    let mut seq: u32 = 1;
    let mut draining_since: Option<Instant> = None;
    loop {
        if bound && draining_since.is_none() {
            if stop.load(Relaxed) {
                draining_since = Some(Instant::now());
            } else {
                // Refill the window in one batch.
                while outstanding < window {
                    if counters.issued.fetch_add(1, Relaxed) >= max {
                        stop.store(true, Relaxed);
                        break;
                    }
                    seq = if seq >= 0x7FFF_FFFF { 1 } else { seq + 1 };
                    let at = wbuf.len();
                    wbuf.extend_from_slice(&template);
                    wbuf[at + 12..at + 16].copy_from_slice(&seq.to_be_bytes());
                    outstanding += 1;
                }
            }
        }
        if let Some(since) = draining_since
            && (outstanding == 0 || since.elapsed() > Duration::from_secs(3))
        {
            return Ok(());
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        let read = if draining_since.is_some() {
            match tokio::time::timeout(Duration::from_millis(200), stream.read_buf(&mut rbuf)).await
            {
                Ok(r) => r?,
                Err(_) => continue,
            }
        } else {
            stream.read_buf(&mut rbuf).await?
        };
        if read == 0 {
            return Ok(());
        }
        // Parse by header only.
        let (mut ok, mut refused, mut receipts) = (0u64, 0u64, 0u64);
        while rbuf.len() >= 16 {
            let len = u32::from_be_bytes([rbuf[0], rbuf[1], rbuf[2], rbuf[3]]) as usize;
            if rbuf.len() < len {
                break;
            }
            let id = CommandId(u32::from_be_bytes([rbuf[4], rbuf[5], rbuf[6], rbuf[7]]));
            let status = u32::from_be_bytes([rbuf[8], rbuf[9], rbuf[10], rbuf[11]]);
            let their_seq = u32::from_be_bytes([rbuf[12], rbuf[13], rbuf[14], rbuf[15]]);
            match id {
                CommandId::SUBMIT_SM_RESP => {
                    outstanding = outstanding.saturating_sub(1);
                    if status == CommandStatus::ESME_ROK.0 {
                        ok += 1;
                    } else {
                        refused += 1;
                    }
                }
                CommandId::DELIVER_SM => {
                    receipts += 1;
                    wbuf.put_u32(DELIVER_SM_RESP_LEN);
                    wbuf.put_u32(CommandId::DELIVER_SM_RESP.0);
                    wbuf.put_u32(0);
                    wbuf.put_u32(their_seq);
                    wbuf.put_u8(0);
                }
                CommandId::ENQUIRE_LINK => {
                    wbuf.put_u32(16);
                    wbuf.put_u32(CommandId::ENQUIRE_LINK_RESP.0);
                    wbuf.put_u32(0);
                    wbuf.put_u32(their_seq);
                }
                CommandId::BIND_TRANSCEIVER_RESP => {
                    if status != 0 {
                        return Err(std::io::Error::other(format!("bind refused: {status:#x}")));
                    }
                    bound = true;
                }
                CommandId::UNBIND => return Ok(()),
                _ => {}
            }
            rbuf.advance(len);
        }
        counters.accepted.fetch_add(ok, Relaxed);
        counters.refused.fetch_add(refused, Relaxed);
        counters.receipts.fetch_add(receipts, Relaxed);
    }
}

fn main() {
    let settings = Settings::read();
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sim")
        .enable_all()
        .build()
        .expect("the simulator's runtime");
    let esme_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("esme")
        .enable_all()
        .build()
        .expect("the clients' runtime");

    let mut account = AccountConfig::new("load", "pw");
    account.max_binds = settings.conns.max(8);
    let mut config = SimConfig {
        accounts: vec![account],
        enquire_link_interval_ms: 0,
        ..SimConfig::default()
    };
    if let Some(max) = settings.max_messages {
        config.max_messages = max;
    }
    let max_messages = config.max_messages;
    let sim = Sim::new(config).expect("valid config");
    let handle = sim.handle();
    let shutdown = CancellationToken::new();
    let (addr, sim_task) = sim_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(sim.run(listener, shutdown.clone().cancelled_owned()));
        (addr, task)
    });

    println!(
        "smsc-sim load: {} connections x {} outstanding, receipts on, at most {} submits or {} s \
         (message table bound {})",
        settings.conns, settings.window, settings.max, settings.secs, max_messages
    );
    let rss_start = rss_mib();
    println!("RSS at start: {rss_start:.1} MiB");

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let clients: Vec<_> = (0..settings.conns)
        .map(|_| {
            esme_rt.spawn(esme(
                addr,
                settings.window,
                settings.max,
                stop.clone(),
                counters.clone(),
            ))
        })
        .collect();

    let limit = Duration::from_secs_f64(settings.secs.max(0.1));
    let mut last = (Instant::now(), 0u64, 0u64);
    while started.elapsed() < limit && !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(100).min(limit.saturating_sub(started.elapsed())));
        if last.0.elapsed() >= Duration::from_secs(5) {
            let (a, r) = (
                counters.accepted.load(Relaxed),
                counters.receipts.load(Relaxed),
            );
            let dt = last.0.elapsed().as_secs_f64();
            println!(
                "  {:>5.1} s: {:>9.0} submits/s {:>9.0} receipts/s  RSS {:.1} MiB",
                started.elapsed().as_secs_f64(),
                (a - last.1) as f64 / dt,
                (r - last.2) as f64 / dt,
                rss_mib()
            );
            last = (Instant::now(), a, r);
        }
    }
    let sending_for = started.elapsed();
    let accepted_at_stop = counters.accepted.load(Relaxed);
    let receipts_at_stop = counters.receipts.load(Relaxed);
    let cpu_at_stop = cpu_seconds();
    stop.store(true, Relaxed);
    esme_rt.block_on(async {
        for c in clients {
            match c.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("client error: {e}"),
                Err(e) => eprintln!("client task: {e}"),
            }
        }
    });
    let rss_end = rss_mib();
    let secs = sending_for.as_secs_f64();
    let per = |cpu: f64| {
        if accepted_at_stop == 0 {
            0.0
        } else {
            cpu * 1e6 / accepted_at_stop as f64
        }
    };
    let process = cpu_at_stop.0 - cpu_before.0;
    let sim_cpu = cpu_at_stop.1 - cpu_before.1;
    let client_cpu = cpu_at_stop.2 - cpu_before.2;
    println!("sent for {secs:.2} s");
    println!(
        "submits accepted: {accepted_at_stop} ({:.0}/s), refused: {}",
        accepted_at_stop as f64 / secs,
        counters.refused.load(Relaxed)
    );
    println!(
        "receipts received: {receipts_at_stop} ({:.0}/s)",
        receipts_at_stop as f64 / secs
    );
    println!(
        "CPU per message: {:.2} us (process), {:.2} us (simulator threads), {:.2} us (clients)",
        per(process),
        per(sim_cpu),
        per(client_cpu)
    );
    println!("RSS at end: {rss_end:.1} MiB (start {rss_start:.1} MiB)");

    shutdown.cancel();
    let stats = sim_rt.block_on(sim_task).expect("the simulator stops");
    println!(
        "simulator: {} accepted, {} receipts sent, {} acked, {} stored, {} in the handset view",
        stats.messages_accepted,
        stats.receipts_sent,
        stats.receipts_acked,
        stats.messages_stored,
        stats.handset_messages
    );
    drop(handle);
}
