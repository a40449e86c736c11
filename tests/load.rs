//! `smppd load` against the real thing: the engine and smsc-sim started in this process on
//! port 0, the built `smppd` binary as the load tool, its `--json` summary checked against
//! what the simulator received.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use smppd::config::ConfigFile;
use smppd::engine::Engine;
use smsc_sim::config::{AccountConfig, SimConfig};
use smsc_sim::{Sim, SimHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "load-test-key-1";

struct Setup {
    engine: Engine,
    sim: SimHandle,
    url: String,
    stop_sim: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with("").await
}

/// `api` is added to the `[api]` section.
async fn setup_with(api: &str) -> Setup {
    let mut account = AccountConfig::new("esme", "pw");
    account.receipts.delay.max_ms = 20;
    let sim = Sim::new(SimConfig {
        accounts: vec![account],
        ..SimConfig::default()
    })
    .unwrap();
    let handle = sim.handle();
    let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = sim_listener.local_addr().unwrap();
    let stop_sim = CancellationToken::new();
    tokio::spawn(sim.run(sim_listener, stop_sim.clone().cancelled_owned()));

    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[engine]
data_dir = "{data}"
shutdown_grace_secs = 2

[api]
keys = [{{ name = "load", key = "{KEY}" }}]
{api}

[metrics]
listen = ""

[store]
synchronous = "normal"

[[carriers]]
name = "sim"
hosts = ["{sim_addr}"]
system_id = "esme"
password = "pw"
binds = [{{ type = "transceiver", count = 2 }}]
window = 50
tps = 0
"#,
        data = dir.path().display()
    );
    let toml = toml.replace("DATA_DIR", &dir.path().display().to_string());
    let config = ConfigFile::parse(&toml)
        .unwrap()
        .validate(dir.path())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let engine = Engine::start(config, Some(listener)).await.unwrap();
    let url = format!("http://{}", engine.api_addr);
    // Wait (bounded) for a bind, so the first messages do not wait for a reconnect.
    for _ in 0..200 {
        if engine.carriers.iter().any(|c| c.pool.binds_up() > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Setup {
        engine,
        sim: handle,
        url,
        stop_sim,
        _dir: dir,
    }
}

/// Runs the `smppd` binary with `args` and returns its JSON summary.
async fn smppd_load(args: Vec<String>) -> Value {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_smppd"))
            .arg("load")
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "smppd load failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn args(url: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["--url", url, "--key", KEY, "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Every followed message was delivered, each after an attempt the carrier accepted, and the
/// engine's times of both are in the summary.
fn assert_delivered(summary: &Value) {
    let finals = &summary["final"];
    let tracked = n(finals, "tracked");
    assert_eq!(n(finals, "pending"), 0, "{summary}");
    assert_eq!(n(finals, "delivered"), tracked, "{summary}");
    assert_eq!(n(&finals["latency_ms"], "count"), tracked, "{summary}");
    assert_eq!(
        n(&finals["submit_latency_ms"], "count"),
        tracked,
        "{summary}"
    );
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_the_load_tool_counts_as_accepted_reaches_the_simulator_once() {
    let s = setup().await;
    let single = smppd_load(args(
        &s.url,
        &[
            "--count",
            "150",
            "--concurrency",
            "8",
            "--mix",
            "gsm=50,long=30,ucs2=20",
            "--to",
            "447700900000-447700900999",
            "--settle",
            "10s",
        ],
    ))
    .await;
    let batch = smppd_load(args(
        &s.url,
        &[
            "--count",
            "150",
            "--batch",
            "40",
            "--concurrency",
            "2",
            "--mix",
            "gsm=50,long=30,ucs2=20",
            "--to",
            "447700901000-447700901999",
            "--settle",
            "10s",
        ],
    ))
    .await;

    let mut total_accepted = 0;
    let mut total_parts = 0;
    for (summary, requests) in [(&single, 150), (&batch, 4)] {
        assert_eq!(n(summary, "sent"), 150, "{summary}");
        assert_eq!(n(summary, "requests"), requests, "{summary}");
        assert_eq!(n(summary, "accepted"), 150, "{summary}");
        assert_eq!(n(summary, "rejected"), 0, "{summary}");
        assert_eq!(n(summary, "errors"), 0, "{summary}");
        assert_eq!(n(summary, "duplicates"), 0, "{summary}");
        assert_eq!(summary["sent_by_kind"]["gsm"], 75, "{summary}");
        assert_eq!(summary["sent_by_kind"]["long"], 45, "{summary}");
        assert_eq!(summary["sent_by_kind"]["ucs2"], 30, "{summary}");
        // Two parts for each long message.
        assert_eq!(n(summary, "parts"), 150 + 45, "{summary}");
        let latency = &summary["accept_latency_ms"];
        assert_eq!(n(latency, "count"), requests, "{summary}");
        assert!(latency["p50"].as_f64().unwrap() > 0.0, "{summary}");
        assert!(
            latency["p99"].as_f64() <= latency["max"].as_f64(),
            "{summary}"
        );
        // Fewer than the sample size: every message was followed.
        assert_eq!(n(&summary["final"], "tracked"), 150, "{summary}");
        assert_delivered(summary);
        total_accepted += n(summary, "accepted");
        total_parts += n(summary, "parts");
    }

    // The simulator saw every accepted message exactly once: as many submit_sm accepted as
    // parts, as many reassembled handset messages as messages, no id twice, no number twice.
    let stats = s.sim.stats();
    assert_eq!(stats.messages_accepted, total_parts, "{stats:?}");
    let handset = s.sim.messages(None, 10_000);
    assert_eq!(handset.len() as u64, total_accepted);
    let ids: HashSet<&String> = handset.iter().flat_map(|m| &m.message_ids).collect();
    assert_eq!(ids.len() as u64, total_parts, "a part id repeats");
    let numbers: HashSet<&String> = handset.iter().map(|m| &m.to).collect();
    assert_eq!(
        numbers.len(),
        handset.len(),
        "a destination got two messages"
    );
    let long = handset.iter().filter(|m| m.parts == 2).count();
    assert_eq!(long, 90);
    s.engine.shutdown().await;
    s.stop_sim.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_bound_run_at_a_fixed_rate_stops_by_itself() {
    let s = setup().await;
    let summary = smppd_load(args(
        &s.url,
        &[
            "--duration",
            "1s",
            "--rate",
            "200",
            "--concurrency",
            "4",
            "--track",
            "20",
            "--settle",
            "10s",
        ],
    ))
    .await;
    let sent = n(&summary, "sent");
    // 200 per second for one second: never more, and not much less unless the machine is
    // very busy.
    assert!((100..=200).contains(&sent), "{summary}");
    assert_eq!(n(&summary, "accepted"), sent, "{summary}");
    assert!(summary["elapsed_secs"].as_f64().unwrap() < 3.0, "{summary}");
    assert_eq!(n(&summary["final"], "tracked"), 20, "{summary}");
    assert_delivered(&summary);
    s.engine.shutdown().await;
    s.stop_sim.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_by_code() {
    let s = setup().await;
    let mut a = args(&s.url, &["--count", "10", "--track", "0"]);
    // A wrong key: every request is refused with invalid_api_key.
    let key = a.iter().position(|x| x == KEY).unwrap();
    a[key] = "not-the-key".into();
    let summary = smppd_load(a).await;
    assert_eq!(n(&summary, "accepted"), 0, "{summary}");
    assert_eq!(n(&summary, "rejected"), 10, "{summary}");
    assert_eq!(
        summary["rejected_by_code"]["invalid_api_key"], 10,
        "{summary}"
    );
    assert!(summary["final"].is_null(), "{summary}");

    // Nothing listening: a clear error and a failure status, not a hang.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_smppd"))
        .args([
            "load",
            "--url",
            "http://127.0.0.1:1",
            "--count",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot reach"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    s.engine.shutdown().await;
    s.stop_sim.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_can_be_loaded_through_its_unix_socket() {
    let s = setup_with(r#"unix_socket = "DATA_DIR/api.sock""#).await;
    let socket = s._dir.path().join("api.sock");
    let mut a = args(&s.url, &["--count", "30", "--batch", "10", "--track", "30"]);
    // --unix replaces --url.
    a.drain(0..2);
    a.extend([
        "--unix".into(),
        socket.display().to_string(),
        "--settle".into(),
        "10s".into(),
    ]);
    let summary = smppd_load(a).await;
    assert_eq!(n(&summary, "accepted"), 30, "{summary}");
    assert!(
        summary["target"].as_str().unwrap().starts_with("unix:"),
        "{summary}"
    );
    assert_delivered(&summary);
    assert_eq!(s.sim.stats().messages_accepted, 30);
    s.engine.shutdown().await;
    s.stop_sim.cancel();
}
