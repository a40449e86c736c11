//! The engine stopped in the middle of a load and restarted on the same data directory, twice
//! (DESIGN promises 1, 3 and 4): killed with SIGKILL, every message that got a 202 is
//! accounted for afterwards, none is lost, and the simulator saw no more duplicates than the
//! in-doubt resubmits the engine counted; stopped with SIGTERM, the windows drain and nothing
//! is in doubt at all.
//!
//! The engine runs as its own process (the `smppd` binary) so that it can be killed; the
//! simulator runs in this test's process, on port 0.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use smsc_sim::config::{AccountConfig, DelayRange, SimConfig};
use smsc_sim::{Sim, SimHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "crash-key-123";
/// Messages in the load.
const TOTAL: usize = 3_000;
/// The engine is stopped once this many were accepted, and again at the second number.
const STOPS: [usize; 2] = [1_000, 2_000];
/// Producers submitting at once.
const PRODUCERS: usize = 8;

const FINAL: [&str; 6] = [
    "delivered",
    "failed",
    "expired",
    "rejected",
    "unknown",
    "cancelled",
];

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The destination of message `i`: one number per message, so the simulator's handset view
/// counts the copies of each.
fn destination(i: usize) -> String {
    format!("44770{i:06}")
}

/// A free loopback port (bound and released; the engine binds it a moment later).
async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// The engine as a child process.
struct EngineProcess {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl EngineProcess {
    /// Writes the configuration (a new API port each time, the same data directory) and
    /// starts `smppd run`; returns once the API answers.
    /// `policy` adds keys to the carrier's `[policies.sim]`.
    async fn start(
        dir: &Path,
        sim: &str,
        policy: &str,
        client: &HttpClient,
        run: usize,
    ) -> EngineProcess {
        let port = free_port().await;
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[engine]
data_dir = "data"
shutdown_grace_secs = 2

[api]
listen = "127.0.0.1:{port}"
keys = [{{ name = "load", key = "{KEY}" }}]

[metrics]
listen = ""

[dispatch]
receipt_scan_ms = 200

[[carriers]]
name = "sim"
hosts = ["{sim}"]
system_id = "esme"
password = "pw"
binds = [{{ type = "transceiver", count = 2 }}]
window = 20
tps = 0
reconnect = {{ initial_ms = 50, max_ms = 500 }}
response_timeout_ms = 3000

[policies.sim]
{policy}
receipt_timeout_secs = 20
retry = {{ initial_backoff_ms = 50, max_backoff_ms = 500 }}
"#
            ),
        )
        .unwrap();
        let log = dir.join(format!("engine-{run}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_smppd"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut engine = EngineProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = engine.child.try_wait() {
                panic!("smppd exited with {status}:\n{}", engine.log_text());
            }
            if let Ok((200, _)) = call(client, &engine.base, "GET", "/healthz", None).await {
                return engine;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "smppd did not come up:\n{}",
                engine.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no unbind, no flush.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit status once the engine has shut down.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn call(
    client: &HttpClient,
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Every stored message, by id, through the API's paged list.
async fn all_messages(client: &HttpClient, base: &str) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut path = "/messages?limit=1000".to_owned();
    loop {
        let (status, page) = call(client, base, "GET", &path, None).await.unwrap();
        assert_eq!(status, 200, "{page}");
        for m in page["messages"].as_array().unwrap() {
            all.insert(m["id"].as_str().unwrap().to_owned(), m.clone());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/messages?limit=1000&cursor={c}"),
            None => return all,
        }
    }
}

async fn start_sim() -> (SimHandle, String, CancellationToken) {
    let mut account = AccountConfig::new("esme", "pw");
    // Responses and receipts take a little while, so the kill finds messages in every
    // stage: claimed, awaiting responses, awaiting receipts.
    account.faults.latency = DelayRange {
        min_ms: 1,
        max_ms: 20,
    };
    account.receipts.delay = DelayRange {
        min_ms: 50,
        max_ms: 1_000,
    };
    let sim = Sim::new(SimConfig {
        accounts: vec![account],
        ..SimConfig::default()
    })
    .unwrap();
    let handle = sim.handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    tokio::spawn(sim.run(listener, stop.clone().cancelled_owned()));
    (handle, addr, stop)
}

/// How the engine is stopped in the middle of the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: no shutdown at all.
    Kill,
    /// SIGTERM: the graceful shutdown (stop intake, drain the windows, unbind).
    Terminate,
}

/// What the load came to once every message settled.
struct Settled {
    /// Messages per final state.
    states: HashMap<String, usize>,
    /// Failed messages per reason code.
    failures: HashMap<String, usize>,
    /// Copies at the simulator beyond the first, over all messages.
    duplicates: u64,
    /// In-doubt resubmits the engine recorded, over all messages.
    counted: u64,
}

/// Runs the load of [`TOTAL`] messages, stopping the engine the [`Stop`] way once each number
/// of [`STOPS`] was accepted and starting it again on the same data directory; then waits for
/// every message to settle and checks each one (promises 1, 3 and 4).
async fn load_through_stops(stop: Stop, policy: &str) -> Settled {
    let (sim, sim_addr, stop_sim) = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut engine = EngineProcess::start(dir.path(), &sim_addr, policy, &client, 1).await;
    let base = Arc::new(RwLock::new(engine.base.clone()));

    // Producers take the next message and submit it until it gets a 202, retrying through
    // the stops with the same idempotency key.
    let next = Arc::new(AtomicUsize::new(0));
    let accepted: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let (next, accepted, base, client) =
            (next.clone(), accepted.clone(), base.clone(), client.clone());
        producers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= TOTAL {
                    return;
                }
                let message = json!({
                    "to": format!("+{}", destination(i)),
                    "from": "Load",
                    "body": format!("message {i}"),
                    "id": format!("load-{i}"),
                });
                loop {
                    let base = base.read().unwrap().clone();
                    match call(&client, &base, "POST", "/messages", Some(message.clone())).await {
                        Ok((202, answer)) => {
                            let id = answer["id"].as_str().unwrap().to_owned();
                            let mut accepted = accepted.lock().unwrap();
                            // A retried request names the message it made the first time.
                            if let Some(earlier) = accepted.insert(i, id.clone()) {
                                assert_eq!(earlier, id);
                            }
                            break;
                        }
                        Ok((503, _)) | Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Ok((status, answer)) => panic!("{status}: {answer}"),
                    }
                }
            }
        }));
    }

    // Stop the engine in the middle of the load, start it again on the same data directory,
    // and do it again; the producers carry on.
    for (run, stop_after) in STOPS.into_iter().enumerate() {
        while accepted.lock().unwrap().len() < stop_after {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match stop {
            Stop::Kill => engine.kill(),
            Stop::Terminate => {
                let status = engine.terminate().await;
                assert!(status.success(), "{status}:\n{}", engine.log_text());
            }
        }
        let at_stop = accepted.lock().unwrap().len();
        let taken = sim.stats().messages_accepted;
        eprintln!("{stop:?} with {at_stop} accepted, {taken} taken by the simulator");
        assert!(at_stop < TOTAL, "the load was over before the stop");
        engine = EngineProcess::start(dir.path(), &sim_addr, policy, &client, run + 2).await;
        *base.write().unwrap() = engine.base.clone();
    }
    for p in producers {
        p.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), TOTAL);

    // Wait until every message is final, two minutes at most.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let stored = loop {
        let stored = all_messages(&client, &engine.base).await;
        let open = stored
            .values()
            .filter(|m| !FINAL.contains(&m["status"].as_str().unwrap_or("")))
            .count();
        if open == 0 || tokio::time::Instant::now() >= deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Nothing lost, nothing made twice: each accepted message is there, and only those.
    assert_eq!(stored.len(), TOTAL, "one message per idempotency key");
    let mut settled = Settled {
        states: HashMap::new(),
        failures: HashMap::new(),
        duplicates: 0,
        counted: 0,
    };
    for (i, id) in &accepted {
        let m = stored
            .get(id)
            .unwrap_or_else(|| panic!("message {i} ({id}) was accepted and is gone"));
        let status = m["status"].as_str().unwrap().to_owned();
        // Promise 3: final with a reason, or still progressing with a next step.
        if FINAL.contains(&status.as_str()) {
            assert!(m["reason"]["code"].is_string(), "{m}");
        } else {
            assert!(
                m["next_attempt_at"].is_string() || status == "submitting",
                "{m}"
            );
        }
        let copies = sim.messages(Some(&destination(*i)), 100).len() as u64;
        let resubmits = m["in_doubt_resubmits"].as_u64().unwrap();
        if status == "delivered" {
            assert!(copies >= 1, "delivered but never sent: {m}");
        }
        // Promise 4: a second copy at the SMSC only where the engine counted a resubmit.
        assert!(
            copies <= 1 + resubmits,
            "{copies} copies of message {i} but {resubmits} in-doubt resubmits: {m}"
        );
        settled.duplicates += copies.saturating_sub(1);
        settled.counted += resubmits;
        if status == "failed" {
            let code = m["reason"]["code"].as_str().unwrap_or_default().to_owned();
            *settled.failures.entry(code).or_default() += 1;
        }
        *settled.states.entry(status).or_default() += 1;
    }
    eprintln!(
        "after the restarts: {:?} (failures {:?}); {} duplicates at the simulator, {} in-doubt \
         resubmits counted",
        settled.states, settled.failures, settled.duplicates, settled.counted
    );
    drop(engine);
    stop_sim.cancel();
    settled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_loses_no_accepted_message_and_counts_every_duplicate() {
    let settled = load_through_stops(Stop::Kill, "").await;
    assert!(settled.duplicates <= settled.counted);
    assert_eq!(
        settled.states.get("delivered").copied(),
        Some(TOTAL),
        "every message is delivered in the end: {:?}",
        settled.states
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_engine_drains_its_windows_and_resumes_without_doubt() {
    let settled = load_through_stops(Stop::Terminate, "").await;
    assert_eq!(
        (settled.duplicates, settled.counted),
        (0, 0),
        "a graceful stop leaves nothing in doubt"
    );
    assert_eq!(
        settled.states.get("delivered").copied(),
        Some(TOTAL),
        "{:?}",
        settled.states
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_under_the_fail_policy_never_sends_a_message_twice() {
    let settled = load_through_stops(Stop::Kill, r#"in_doubt = { policy = "fail" }"#).await;
    assert_eq!(
        (settled.duplicates, settled.counted),
        (0, 0),
        "the fail policy never resubmits: {:?}",
        settled.states
    );
    // What was in doubt at a kill failed with that reason; everything else was delivered.
    let failed = settled.states.get("failed").copied().unwrap_or(0);
    let delivered = settled.states.get("delivered").copied().unwrap_or(0);
    assert_eq!(failed + delivered, TOTAL, "{:?}", settled.states);
    assert_eq!(
        settled.failures.keys().collect::<Vec<_>>(),
        if failed > 0 { vec!["in_doubt"] } else { vec![] },
        "{:?}",
        settled.failures
    );
}
