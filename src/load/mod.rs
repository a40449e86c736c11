//! `smppd load`: a load generator for the submit socket.
//!
//! It sends a fixed count of messages, or for a fixed time, or both (whichever ends first),
//! at a fixed rate or as fast as the answers come, over `concurrency` keep-alive HTTP/1.1
//! connections with one request in flight each, as single POSTs or batches. Then it follows
//! a uniform sample of the accepted messages (`GET /messages/{id}`) to their final state.
//!
//! It is built not to be the bottleneck: request bodies are assembled from pre-rendered
//! fragments ([`workload`]), each connection is owned by one task (no pool lock), answers are
//! read with borrowed deserialisation, and latencies go into fixed-bucket histograms
//! ([`histogram`]) merged at the end. On one core it offers several times what the engine
//! sustains (see the README's performance section).
//!
//! - [`options`]: what to send, where, how fast.
//! - [`workload`]: the request bodies.
//! - [`client`]: the connections.
//! - [`histogram`]: latency recording.
//! - [`summary`]: the result, as text or JSON.
//! - [`procfs`]: CPU time and memory from /proc (also used by the pipeline bench).

pub mod client;
pub mod histogram;
pub mod options;
pub mod procfs;
pub mod summary;
pub mod workload;

mod follow;
mod progress;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

pub use client::{Endpoint, RequestError};
pub use histogram::{Histogram, Percentiles};
pub use options::{Kind, LoadOptions, Mix, NumberRange, Target, parse_duration};
pub use summary::{FinalStates, Summary};
use workload::Workload;

/// Why a load run could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An option is invalid or options contradict each other; the text says which.
    #[error("{0}")]
    Option(String),
    /// The target could not be reached at the start.
    #[error("cannot reach {target}: {source}")]
    Unreachable {
        /// The target.
        target: String,
        /// Why.
        source: RequestError,
    },
}

/// The live counters the progress line reads.
#[derive(Default)]
pub(crate) struct Live {
    pub(crate) sent: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// A uniform sample of accepted ids (reservoir sampling, algorithm R) with a fixed seed.
struct Reservoir {
    ids: Vec<String>,
    capacity: usize,
    seen: u64,
    state: u64,
}

impl Reservoir {
    fn new(capacity: usize) -> Reservoir {
        Reservoir {
            ids: Vec::with_capacity(capacity.min(1 << 16)),
            capacity,
            seen: 0,
            state: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// splitmix64: enough for choosing sample slots.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn offer(&mut self, id: &str) {
        if self.capacity == 0 {
            return;
        }
        self.seen += 1;
        if self.ids.len() < self.capacity {
            self.ids.push(id.to_owned());
        } else {
            let j = self.next() % self.seen;
            if let Some(slot) = self.ids.get_mut(j as usize) {
                id.clone_into(slot);
            }
        }
    }
}

/// What every sending task shares.
struct Shared {
    endpoint: Endpoint,
    workload: Workload,
    batch: u64,
    /// Messages to send in all (`u64::MAX`: until the deadline).
    total: u64,
    /// Time between requests when a rate is set.
    interval: Option<f64>,
    start: Instant,
    deadline: Option<Instant>,
    next_ticket: AtomicU64,
    live: Live,
    sample: Mutex<Reservoir>,
}

/// What one sending task counted.
#[derive(Default)]
struct Tally {
    latency: Histogram,
    requests: u64,
    sent: u64,
    sent_by_kind: [u64; 3],
    accepted: u64,
    duplicates: u64,
    parts: u64,
    rejected: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    last_answer: Option<Instant>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latency.merge(&other.latency);
        self.requests += other.requests;
        self.sent += other.sent;
        for (a, b) in self.sent_by_kind.iter_mut().zip(other.sent_by_kind) {
            *a += b;
        }
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.parts += other.parts;
        for (k, v) in other.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.last_answer = self.last_answer.max(other.last_answer);
    }
}

#[derive(Deserialize)]
struct ApiErrorBody<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ErrorAnswer<'a> {
    #[serde(borrow)]
    error: ApiErrorBody<'a>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    parts: u64,
    #[serde(default)]
    duplicate: bool,
    #[serde(borrow, default)]
    error: Option<ApiErrorBody<'a>>,
}

#[derive(Deserialize)]
struct BatchAnswer<'a> {
    #[serde(borrow)]
    results: Vec<Item<'a>>,
}

fn error_code(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorAnswer<'_>>(body) {
        Ok(answer) => answer.error.code.into_owned(),
        Err(_) => format!("http_{}", status.as_u16()),
    }
}

impl Shared {
    /// Counts one answer to a request of `n` messages.
    fn answered(&self, tally: &mut Tally, status: StatusCode, body: &[u8], n: u64) {
        let mut accepted = 0u64;
        let mut rejected = 0u64;
        if self.batch == 1 {
            if status == StatusCode::ACCEPTED {
                accepted = 1;
                if let Ok(item) = serde_json::from_slice::<Item<'_>>(body) {
                    tally.parts += item.parts;
                    tally.duplicates += u64::from(item.duplicate);
                    if let (Some(id), Ok(mut sample)) = (item.id, self.sample.lock()) {
                        sample.offer(&id);
                    }
                }
            } else {
                rejected = 1;
                *tally.rejected.entry(error_code(status, body)).or_default() += 1;
            }
        } else if status == StatusCode::OK {
            match serde_json::from_slice::<BatchAnswer<'_>>(body) {
                Ok(answer) => {
                    let mut sample = self.sample.lock().ok();
                    for item in answer.results.iter().take(n as usize) {
                        match (&item.error, &item.id) {
                            (None, Some(id)) => {
                                accepted += 1;
                                tally.parts += item.parts;
                                tally.duplicates += u64::from(item.duplicate);
                                if let Some(sample) = sample.as_mut() {
                                    sample.offer(id);
                                }
                            }
                            (Some(e), _) => {
                                rejected += 1;
                                *tally
                                    .rejected
                                    .entry(e.code.clone().into_owned())
                                    .or_default() += 1;
                            }
                            (None, None) => {
                                rejected += 1;
                                *tally.rejected.entry("no_id".into()).or_default() += 1;
                            }
                        }
                    }
                    let answered = answer.results.len().min(n as usize) as u64;
                    if answered < n {
                        *tally.errors.entry("short_answer".into()).or_default() += n - answered;
                        self.live.errors.fetch_add(n - answered, Relaxed);
                    }
                }
                Err(_) => {
                    *tally.errors.entry("unreadable_answer".into()).or_default() += n;
                    self.live.errors.fetch_add(n, Relaxed);
                }
            }
        } else {
            rejected = n;
            *tally.rejected.entry(error_code(status, body)).or_default() += n;
        }
        tally.accepted += accepted;
        self.live.accepted.fetch_add(accepted, Relaxed);
        self.live.rejected.fetch_add(rejected, Relaxed);
    }

    fn failed(&self, tally: &mut Tally, error: &RequestError, n: u64) {
        *tally.errors.entry(error.kind().into()).or_default() += n;
        self.live.errors.fetch_add(n, Relaxed);
    }
}

/// One connection's loop: take the next request's ticket, wait for its time (with a rate),
/// send, count. Ends when the tickets run out or the deadline passes; every iteration uses a
/// ticket, so it runs at most `total / batch` times.
async fn send_loop(shared: Arc<Shared>, mut connection: Option<client::Connection>) -> Tally {
    let mut tally = Tally::default();
    let path = if shared.batch == 1 {
        "/messages"
    } else {
        "/messages/batch"
    };
    loop {
        let ticket = shared.next_ticket.fetch_add(1, Relaxed);
        let first = ticket.saturating_mul(shared.batch);
        if first >= shared.total {
            break;
        }
        let n = shared.batch.min(shared.total - first);
        if let Some(interval) = shared.interval {
            let due = shared.start + Duration::from_secs_f64(ticket as f64 * interval);
            if shared.deadline.is_some_and(|d| due >= d) {
                break;
            }
            tokio::time::sleep_until(due).await;
        }
        if shared.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let body: Bytes = if shared.batch == 1 {
            shared.workload.single(first)
        } else {
            shared.workload.batch(first, n as usize)
        };
        for i in first..first + n {
            tally.sent_by_kind[shared.workload.kind(i) as usize] += 1;
        }
        tally.requests += 1;
        tally.sent += n;
        shared.live.sent.fetch_add(n, Relaxed);
        let conn = match connection.as_mut() {
            Some(c) => c,
            None => match shared.endpoint.connect().await {
                Ok(c) => connection.insert(c),
                Err(e) => {
                    shared.failed(&mut tally, &e, n);
                    // Do not spin on a refused port; the next ticket tries again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        match shared.endpoint.send(conn, Method::POST, path, body).await {
            Ok((status, answer)) => {
                let now = Instant::now();
                tally.latency.record_duration(now - started);
                tally.last_answer = Some(now);
                shared.answered(&mut tally, status, &answer, n);
            }
            Err(e) => {
                connection = None;
                shared.failed(&mut tally, &e, n);
            }
        }
    }
    tally
}

/// What the sending phase left: the summary so far (no final states yet) and the sample of
/// accepted ids to follow.
pub struct Sent {
    summary: Summary,
    sample: Vec<String>,
    endpoint: Endpoint,
    parallel: usize,
}

impl Sent {
    /// The summary of the sending phase.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Follows the sample until every message in it is final or `settle` has passed (one
    /// look at least), and completes the summary. May run on another runtime than the
    /// sending did.
    pub async fn follow(self, settle: Duration) -> Summary {
        let mut summary = self.summary;
        if !self.sample.is_empty() {
            summary.final_states =
                Some(follow::follow(&self.endpoint, self.sample, settle, self.parallel).await);
        }
        summary
    }
}

/// Runs a load: sends, then follows the sample to its final states. Spawns its tasks on the
/// current tokio runtime (one thread is enough).
pub async fn run(options: LoadOptions) -> Result<Summary, LoadError> {
    let settle = options.settle;
    Ok(send(&options).await?.follow(settle).await)
}

/// The sending phase alone: returns once every request was answered (or failed).
pub async fn send(options: &LoadOptions) -> Result<Sent, LoadError> {
    options.validate()?;
    let endpoint = Endpoint::new(
        options.target.clone(),
        &options.key,
        options.request_timeout,
    )?;
    // Fail fast, with the reason, when nothing listens there.
    let first_connection = endpoint
        .connect()
        .await
        .map_err(|source| LoadError::Unreachable {
            target: options.target.to_string(),
            source,
        })?;
    let batch = options.batch as u64;
    let start = Instant::now();
    let cpu_start = options.measure_cpu.then(procfs::process_cpu);
    let shared = Arc::new(Shared {
        endpoint: endpoint.clone(),
        workload: Workload::new(&options.mix, &options.from, options.numbers),
        batch,
        total: options.count.unwrap_or(u64::MAX),
        interval: options.rate.map(|r| batch as f64 / r),
        start,
        deadline: options.duration.map(|d| start + d),
        next_ticket: AtomicU64::new(0),
        live: Live::default(),
        sample: Mutex::new(Reservoir::new(options.track)),
    });
    let progress = if options.progress {
        progress::Progress::start(shared.clone(), options.count, options.duration)
    } else {
        None
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut first_connection = Some(first_connection);
    for _ in 0..options.concurrency {
        tasks.spawn(send_loop(shared.clone(), first_connection.take()));
    }
    let mut tally = Tally::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(t) = done {
            tally.merge(t);
        }
    }
    if let Some(p) = progress {
        p.stop().await;
    }
    let elapsed = tally
        .last_answer
        .map_or(Duration::ZERO, |t| t - start)
        .max(Duration::from_micros(1));
    let cpu_secs = cpu_start.map(|c| (procfs::process_cpu() - c).as_secs_f64());
    let secs = elapsed.as_secs_f64();
    let sample = match shared.sample.lock() {
        Ok(mut s) => std::mem::take(&mut s.ids),
        Err(_) => Vec::new(),
    };
    let rejected = tally.rejected.values().sum();
    let errors = tally.errors.values().sum();
    let summary = Summary {
        target: options.target.to_string(),
        batch: options.batch,
        concurrency: options.concurrency,
        rate_target: options.rate,
        mix: options.mix.to_string(),
        elapsed_secs: secs,
        requests: tally.requests,
        sent: tally.sent,
        sent_by_kind: Kind::ALL
            .iter()
            .map(|k| (k.name().to_owned(), tally.sent_by_kind[*k as usize]))
            .collect(),
        accepted: tally.accepted,
        duplicates: tally.duplicates,
        parts: tally.parts,
        rejected,
        rejected_by_code: tally.rejected,
        errors,
        errors_by_kind: tally.errors,
        sent_per_sec: tally.sent as f64 / secs,
        accepted_per_sec: tally.accepted as f64 / secs,
        accept_latency_ms: tally.latency.percentiles_ms(),
        final_states: None,
        cpu_secs,
    };
    Ok(Sent {
        summary,
        sample,
        endpoint,
        parallel: options.concurrency.clamp(1, 16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reservoir_keeps_everything_up_to_its_size_then_a_sample() {
        let mut r = Reservoir::new(10);
        for i in 0..10 {
            r.offer(&i.to_string());
        }
        assert_eq!(r.ids.len(), 10);
        for i in 10..10_000 {
            r.offer(&i.to_string());
        }
        assert_eq!(r.ids.len(), 10);
        // Uniform: most of a sample of 10 from 10 000 comes from after the first 10.
        let late = r
            .ids
            .iter()
            .filter(|id| id.parse::<u32>().unwrap() >= 10)
            .count();
        assert!(late >= 9, "{:?}", r.ids);
        let mut none = Reservoir::new(0);
        none.offer("x");
        assert!(none.ids.is_empty());
    }

    #[test]
    fn error_codes_come_from_the_body_or_the_status() {
        assert_eq!(
            error_code(
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"error":{"code":"overloaded","message":"busy"}}"#
            ),
            "overloaded"
        );
        assert_eq!(error_code(StatusCode::BAD_GATEWAY, b"<html>"), "http_502");
    }
}
