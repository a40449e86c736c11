//! The whole engine end to end: HTTP in, smsc-sim (in-process, port 0) as the carriers,
//! receipts back, the message's final state out. Each test has its own data directory and its
//! own simulator; carriers are named per test so the metrics of parallel tests stay apart.
//!
//! Every test ends by checking DESIGN promise 3 on everything it stored: each message is final
//! with a reason, or still progressing with a scheduled next step.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use smppd::config::ConfigFile;
use smppd::engine::Engine;
use smppd::webhook::{SIGNATURE_HEADER, verify};
use smsc_sim::config::{
    AccountConfig, DelayRange, Outcome, ReceiptFormat, ReceiptIdStyle, SimConfig,
};
use smsc_sim::{Sim, SimHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const KEY: &str = "test-key-123";
const ADMIN: &str = "admin-key-123";
/// A key allowed one request a second.
const SLOW: &str = "slow-key-1234";
const TO: &str = "+447700900123";

const FINAL: [&str; 6] = [
    "delivered",
    "failed",
    "expired",
    "rejected",
    "unknown",
    "cancelled",
];

/// The metrics recorder of this test binary, installed before any engine builds its pools.
fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
        handle
    })
}

/// The sum of a counter over every series whose labels include `carrier="NAME"`.
fn counter(name: &str, carrier: &str) -> u64 {
    let label = format!("carrier=\"{carrier}\"");
    metrics()
        .render()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A simulator account whose receipts come within 20 ms.
fn account(system_id: &str) -> AccountConfig {
    let mut a = AccountConfig::new(system_id, "pw");
    a.receipts.delay.max_ms = 20;
    a
}

/// A `[[carriers]]` table on the simulator account `system_id`, reconnecting quickly; `extra`
/// adds keys of that table.
fn carrier(name: &str, system_id: &str, extra: &str) -> String {
    format!(
        r#"
[[carriers]]
name = "{name}"
hosts = ["{{sim}}"]
system_id = "{system_id}"
password = "pw"
tps = 0
reconnect = {{ initial_ms = 50, max_ms = 200 }}
{extra}
"#
    )
}

/// A running engine and simulator.
struct Harness {
    engine: Engine,
    sim: SimHandle,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    stop_sim: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// One simulator with these accounts; `config` is the engine's carriers, policies and any
    /// other section, `{sim}` standing for the simulator's address.
    async fn start(accounts: Vec<AccountConfig>, config: &str) -> Harness {
        Harness::start_sim(
            SimConfig {
                accounts,
                ..SimConfig::default()
            },
            config,
        )
        .await
    }

    async fn start_sim(sim_config: SimConfig, config: &str) -> Harness {
        metrics();
        let sim = Sim::new(sim_config).unwrap();
        let handle = sim.handle();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop_sim = CancellationToken::new();
        tokio::spawn(sim.run(listener, stop_sim.clone().cancelled_owned()));

        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            r#"
[engine]
data_dir = "{data}"
shutdown_grace_secs = 2

[api]
keys = [
  {{ name = "test", key = "{KEY}" }},
  {{ name = "ops", key = "{ADMIN}", scope = "admin" }},
  {{ name = "slow", key = "{SLOW}", rate_per_sec = 1 }},
]
max_body_bytes = 65536

[metrics]
listen = ""

[store]
synchronous = "normal"

{config}
"#,
            data = dir.path().display(),
            config = config.replace("{sim}", &addr),
        );
        let config = ConfigFile::parse(&toml)
            .unwrap_or_else(|e| panic!("{e}\n{toml}"))
            .validate(dir.path())
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let engine = Engine::start(config, Some(listener)).await.unwrap();
        let base = format!("http://{}", engine.api_addr);
        Harness {
            engine,
            sim: handle,
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop_sim,
            _dir: dir,
        }
    }

    /// A request with any key (or none) and any body; the answer's status and JSON (or the
    /// body as a string when it is not JSON).
    async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: impl Into<Bytes>,
    ) -> (u16, Value) {
        let (status, value, _) = self.raw_with_headers(method, path, key, body).await;
        (status, value)
    }

    /// [`Harness::raw`], with the answer's headers.
    async fn raw_with_headers(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: impl Into<Bytes>,
    ) -> (u16, Value, hyper::HeaderMap) {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let resp = self
            .client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value, headers)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, Some(KEY), body).await
    }

    /// Submits a message and expects a 202; returns its id.
    async fn submit(&self, message: Value) -> String {
        let (status, resp) = self.call("POST", "/messages", Some(message)).await;
        assert_eq!(status, 202, "{resp}");
        resp["id"].as_str().unwrap().to_owned()
    }

    async fn send(&self, body: &str) -> String {
        self.submit(json!({"to": TO, "from": "Acme", "body": body}))
            .await
    }

    async fn message(&self, id: &str) -> Value {
        let (status, m) = self.call("GET", &format!("/messages/{id}"), None).await;
        assert_eq!(status, 200, "{m}");
        m
    }

    /// Polls the message until it reaches a final state (a minute at most).
    async fn final_state(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.message(id).await;
            if FINAL.contains(&m["status"].as_str().unwrap_or("")) {
                return m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still {}: {m}",
                m["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `check` holds (a minute at most); `what` names it in the failure.
    async fn until(&self, what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the carrier's binds to the simulator account are up.
    async fn bound(&self, system_id: &str, binds: usize) {
        let sim = self.sim.clone();
        self.until(&format!("{binds} binds of {system_id}"), async || {
            sim.bound(system_id) >= binds
        })
        .await;
    }

    /// Every stored message, through the API's paged list.
    async fn all_messages(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut path = "/messages?limit=1000".to_owned();
        loop {
            let (status, page) = self.call("GET", &path, None).await;
            assert_eq!(status, 200, "{page}");
            all.extend(page["messages"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/messages?limit=1000&cursor={c}"),
                None => return all,
            }
        }
    }

    /// DESIGN promise 3 over every stored message: final with a reason, or progressing with
    /// a scheduled next step.
    async fn assert_nothing_silent(&self) {
        for m in self.all_messages().await {
            assert_accounted(&m);
        }
    }

    async fn stop(self) {
        self.assert_nothing_silent().await;
        self.engine.shutdown().await;
        self.stop_sim.cancel();
    }
}

/// One message as promise 3 wants it: final with a reason code, or not final with a next
/// step scheduled (an attempt, or the receipt deadline), or in the middle of an attempt.
fn assert_accounted(m: &Value) {
    let status = m["status"].as_str().unwrap_or_default();
    if FINAL.contains(&status) {
        let code = m["reason"]["code"].as_str().unwrap_or_default();
        assert!(!code.is_empty(), "final without a reason: {m}");
    } else {
        assert!(
            status == "submitting" || m["next_attempt_at"].is_string(),
            "{status} with nothing scheduled: {m}"
        );
    }
}

fn attempts(m: &Value) -> &Vec<Value> {
    m["attempt_details"].as_array().unwrap()
}

/// How many submit_sm the simulator answered with `status`.
fn sim_responses(sim: &SimHandle, status: &str) -> u64 {
    let stats = serde_json::to_value(sim.stats()).unwrap();
    stats["responses"]["submit_sm_resp"][status]
        .as_u64()
        .unwrap_or(0)
}

// ---- the plain path ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_message_is_delivered() {
    let h = Harness::start(vec![account("esme")], &carrier("plain", "esme", "")).await;
    let id = h.send("Your code is 482913").await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["reason"]["code"], "DELIVRD");
    assert_eq!(m["part_details"][0]["state"], "delivered");
    assert_eq!(attempts(&m).len(), 1);
    assert_eq!(attempts(&m)[0]["outcome"], "accepted");
    let handset = h.sim.messages(Some("447700900123"), 10);
    assert_eq!(handset.len(), 1);
    assert_eq!(handset[0].text, "Your code is 482913");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_message_goes_as_three_parts_and_reassembles_exactly() {
    let h = Harness::start(vec![account("esme")], &carrier("long", "esme", "")).await;
    let text: String = "Long text with {braces} and [brackets] ~ that spans parts. "
        .chars()
        .cycle()
        .take(400)
        .collect();
    let id = h.send(&text).await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["parts"], 3);
    let handset = h.sim.messages(Some("447700900123"), 10);
    assert_eq!(handset.len(), 1, "{handset:?}");
    assert_eq!(handset[0].text, text);
    assert_eq!(handset[0].parts, 3);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucs2_with_emoji_arrives_intact() {
    let h = Harness::start(vec![account("esme")], &carrier("ucs2", "esme", "")).await;
    let text = "Привет! Ваш код 4711 😀👍";
    let id = h.send(text).await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["encoding"], "ucs2");
    assert_eq!(h.sim.messages(Some("447700900123"), 10)[0].text, text);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_fails_the_message_with_the_status_as_reason() {
    let h = Harness::start(vec![account("esme")], &carrier("perm", "esme", "")).await;
    let mut faults = h.sim.faults("esme").unwrap();
    faults.error_rate = 1.0;
    faults.error_statuses = vec!["ESME_RINVDSTADR".into()];
    h.sim.set_faults("esme", faults).unwrap();
    let id = h.send("hello").await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["reason"]["code"], "ESME_RINVDSTADR");
    assert_eq!(
        attempts(&m).len(),
        1,
        "a permanent error is not retried: {m}"
    );
    assert_eq!(attempts(&m)[0]["outcome"], "permanent");
    h.stop().await;
}

// ---- the API through the running engine ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_id_makes_one_message_and_one_submit() {
    let h = Harness::start(vec![account("esme")], &carrier("idem", "esme", "")).await;
    let message = json!({"to": TO, "from": "Acme", "body": "once only", "id": "order-4711"});
    let (status, first) = h.call("POST", "/messages", Some(message.clone())).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["duplicate"], false);
    let m = h.final_state(first["id"].as_str().unwrap()).await;
    assert_eq!(m["status"], "delivered", "{m}");
    // Sent again, after the first is long delivered, and once more at the same time as a
    // third copy: always the original message.
    let (status, again) = h.call("POST", "/messages", Some(message.clone())).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        again["status"], "delivered",
        "the original as it is now: {again}"
    );
    // A repeat that asks for something else still names the original, as it is.
    let mut changed = message.clone();
    changed["body"] = json!("Привет ".repeat(20));
    let (status, other) = h.call("POST", "/messages", Some(changed)).await;
    assert_eq!(status, 202, "{other}");
    assert_eq!(other["id"], first["id"]);
    assert_eq!(
        (other["parts"].as_u64(), other["encoding"].as_str()),
        (Some(1), Some("gsm7")),
        "{other}"
    );
    let (a, b) = tokio::join!(
        h.call("POST", "/messages", Some(message.clone())),
        h.call("POST", "/messages", Some(message.clone())),
    );
    assert_eq!(
        (a.1["id"].clone(), b.1["id"].clone()),
        (first["id"].clone(), first["id"].clone())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.all_messages().await.len(), 1);
    assert_eq!(h.sim.stats().pdus_received["submit_sm"], 1);
    assert_eq!(h.sim.messages(Some("447700900123"), 10).len(), 1);
    h.stop().await;
}

/// Method, path, API key, body; the status and error code expected.
type BadRequest = (
    &'static str,
    &'static str,
    Option<&'static str>,
    String,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_documented_codes_and_store_nothing() {
    let h = Harness::start(vec![account("esme")], &carrier("alpha", "esme", "")).await;
    let ok = json!({"to": TO, "from": "Acme", "body": "hi"});
    let with = |key: &str, value: Value| {
        let mut m = ok.clone();
        m[key] = value;
        m.to_string()
    };
    let cases: Vec<BadRequest> = vec![
        // Authentication first: nothing else is looked at without a valid key.
        (
            "POST",
            "/messages",
            None,
            ok.to_string(),
            401,
            "missing_api_key",
        ),
        (
            "POST",
            "/messages",
            Some("wrong-key-0"),
            ok.to_string(),
            401,
            "invalid_api_key",
        ),
        (
            "GET",
            "/messages",
            None,
            String::new(),
            401,
            "missing_api_key",
        ),
        (
            "GET",
            "/messages/x",
            Some("wrong-key-0"),
            String::new(),
            401,
            "invalid_api_key",
        ),
        (
            "PUT",
            "/suppressions/447700900123",
            Some(KEY),
            String::new(),
            403,
            "forbidden",
        ),
        // The body.
        (
            "POST",
            "/messages",
            Some(KEY),
            "{not json".into(),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            String::new(),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            "[1, 2]".into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            "\"text\"".into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("colour", json!("red")),
            400,
            "unknown_field",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            json!({"to": TO, "from": "Acme"}).to_string(),
            400,
            "missing_field",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            json!({"from": "Acme", "body": "x"}).to_string(),
            400,
            "missing_field",
        ),
        // Wrong types.
        (
            "POST",
            "/messages",
            Some(KEY),
            with("to", json!(447700900123u64)),
            400,
            "invalid_type",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("body", json!(["a"])),
            400,
            "invalid_type",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("ttl", json!("60")),
            400,
            "invalid_type",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("priority", json!(true)),
            400,
            "invalid_type",
        ),
        // Invalid numbers.
        (
            "POST",
            "/messages",
            Some(KEY),
            with("ttl", json!(-5)),
            400,
            "invalid_type",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("ttl", json!(1.5)),
            400,
            "invalid_type",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            r#"{"to":"+447700900123","from":"Acme","body":"x","ttl":1e400}"#.into(),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("ttl", json!(0)),
            400,
            "invalid_ttl",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("ttl", json!(u64::MAX)),
            400,
            "invalid_ttl",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("priority", json!(4)),
            400,
            "invalid_priority",
        ),
        // Invalid phone numbers and senders.
        (
            "POST",
            "/messages",
            Some(KEY),
            with("to", json!("+44")),
            400,
            "invalid_destination",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("to", json!("07700900123")),
            400,
            "invalid_destination",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("to", json!("+44 7700 900123")),
            400,
            "invalid_destination",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("to", json!("+4477009001234567")),
            400,
            "invalid_destination",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("from", json!("A very long sender")),
            400,
            "invalid_sender",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("from", json!("12")),
            400,
            "invalid_sender",
        ),
        // The other fields.
        (
            "POST",
            "/messages",
            Some(KEY),
            with("body", json!("")),
            400,
            "empty_body",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("body", json!("x".repeat(1531))),
            400,
            "body_too_long",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("id", json!("has space")),
            400,
            "invalid_id",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("callback_url", json!("ftp://x")),
            400,
            "invalid_callback_url",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("carrier", json!("omega")),
            400,
            "unknown_carrier",
        ),
        (
            "POST",
            "/messages",
            Some(KEY),
            with("tags", json!({"a": 1})),
            400,
            "invalid_tags",
        ),
        // Batches and queries.
        (
            "POST",
            "/messages/batch",
            Some(KEY),
            json!({"messages": []}).to_string(),
            400,
            "invalid_batch_size",
        ),
        (
            "POST",
            "/messages/batch",
            Some(KEY),
            json!({"items": [ok]}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/messages?status=bogus",
            Some(KEY),
            String::new(),
            400,
            "invalid_status",
        ),
        (
            "GET",
            "/messages?since=yesterday",
            Some(KEY),
            String::new(),
            400,
            "invalid_since",
        ),
        (
            "GET",
            "/messages?cursor=nope",
            Some(KEY),
            String::new(),
            400,
            "invalid_cursor",
        ),
        (
            "GET",
            "/messages/nope",
            Some(KEY),
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET",
            "/messages/00000000000000000000000000",
            Some(KEY),
            String::new(),
            404,
            "not_found",
        ),
        (
            "POST",
            "/messages/00000000000000000000000000/feedback",
            Some(KEY),
            json!({"status": "read"}).to_string(),
            400,
            "invalid_feedback",
        ),
        (
            "PUT",
            "/suppressions/447700900123",
            Some(ADMIN),
            json!({"reason": 5}).to_string(),
            400,
            "invalid_reason",
        ),
        (
            "PUT",
            "/suppressions/nope",
            Some(ADMIN),
            String::new(),
            400,
            "invalid_destination",
        ),
    ];
    for (method, path, key, body, status, code) in cases {
        let (got, value) = h.raw(method, path, key, body.clone()).await;
        assert_eq!(
            (got, value["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:.80}: {value}"
        );
    }
    // A body over max_body_bytes (64 KiB here) is refused before it is read as JSON.
    let big = with("body", json!("x".repeat(70_000)));
    let (got, value) = h.raw("POST", "/messages", Some(KEY), big).await;
    assert_eq!(got, 413, "{value}");
    assert_eq!(value["error"]["code"], "body_too_large", "{value}");
    let (got, _) = h
        .raw("POST", "/messages/batch", Some(KEY), "[".repeat(70_000))
        .await;
    assert_eq!(got, 413);

    // A key over its rate: 429 with Retry-After. Each is a valid message; those refused are
    // not stored.
    let mut limited = 0;
    let mut taken = Vec::new();
    for _ in 0..5 {
        let (status, body, headers) = h
            .raw_with_headers("POST", "/messages", Some(SLOW), ok.to_string())
            .await;
        match status {
            202 => taken.push(body["id"].as_str().unwrap().to_owned()),
            429 => {
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                assert!(headers.contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(limited >= 3, "{limited} of 5 limited");
    for id in &taken {
        assert_eq!(h.final_state(id).await["status"], "delivered");
    }
    assert_eq!(h.all_messages().await.len(), taken.len());
    let (status, _) = h
        .raw("DELETE", &format!("/messages/{}", taken[0]), Some(KEY), "")
        .await;
    assert_eq!(status, 409);

    // Nothing else was stored or sent, and no suppression was made.
    assert_eq!(h.all_messages().await.len(), taken.len());
    let counts = h.engine.store.counts().await.unwrap();
    assert_eq!(
        counts.iter().map(|(_, n)| n).sum::<u64>(),
        taken.len() as u64
    );
    let (status, _) = h
        .raw("GET", "/suppressions/447700900123", Some(ADMIN), "")
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        h.sim.stats().pdus_received.get("submit_sm").copied(),
        Some(taken.len() as u64)
    );
    // And the engine still takes a good message.
    let id = h.send("still here").await;
    assert_eq!(h.final_state(&id).await["status"], "delivered");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_from_the_handset_suppresses_the_number_and_start_lifts_it() {
    let h = Harness::start(vec![account("esme")], &carrier("mo", "esme", "")).await;
    h.bound("esme", 1).await;
    let number = "+447700900555";
    let message = json!({"to": number, "from": "Acme", "body": "offer"});

    h.sim.inject_mo("esme", number, "12345", "Stop").unwrap();
    h.until("STOP suppresses the number", async || {
        h.raw("GET", "/suppressions/447700900555", Some(ADMIN), "")
            .await
            .0
            == 200
    })
    .await;
    let (_, s) = h
        .raw("GET", "/suppressions/447700900555", Some(ADMIN), "")
        .await;
    assert_eq!(s["source"], "mo_keyword", "{s}");
    let (status, body) = h.call("POST", "/messages", Some(message.clone())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("suppressed")),
        "{body}"
    );
    // Other numbers are not affected.
    let other = h.send("not suppressed").await;
    assert_eq!(h.final_state(&other).await["status"], "delivered");

    h.sim.inject_mo("esme", number, "12345", "START").unwrap();
    h.until("START lifts the suppression", async || {
        h.raw("GET", "/suppressions/447700900555", Some(ADMIN), "")
            .await
            .0
            == 404
    })
    .await;
    let id = h.submit(message).await;
    assert_eq!(h.final_state(&id).await["status"], "delivered");
    assert_eq!(h.sim.messages(Some("447700900555"), 10).len(), 1);
    assert_eq!(counter("smppd_mo_total", "mo"), 2);
    h.stop().await;
}

// ---- carriers misbehaving ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_messages_are_all_delivered_and_the_throttling_is_counted() {
    let mut a = account("esme");
    a.faults.tps_limit = Some(10);
    let h = Harness::start(
        vec![a],
        &carrier(
            "throttled",
            "esme",
            "throttle = { pause_ms = 100, recover_interval_ms = 200 }",
        ),
    )
    .await;
    h.bound("esme", 1).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            h.submit(
                json!({"to": format!("+4477009{i:05}"), "from": "Acme", "body": format!("n{i}")}),
            )
            .await,
        );
    }
    for id in &ids {
        let m = h.final_state(id).await;
        assert_eq!(m["status"], "delivered", "{m}");
    }
    let refused = sim_responses(&h.sim, "ESME_RTHROTTLED");
    assert!(refused > 0, "the simulator never throttled");
    assert_eq!(
        counter("smppd_throttled_responses_total", "throttled"),
        refused,
        "every ESME_RTHROTTLED is counted"
    );
    assert_eq!(h.sim.stats().messages_accepted, 40);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_message_stays_with_its_carrier() {
    let mut slow = account("slow");
    slow.faults.tps_limit = Some(5);
    let h = Harness::start(
        vec![slow, account("other")],
        &format!(
            "{}{}",
            carrier(
                "slow",
                "slow",
                "throttle = { pause_ms = 100, recover_interval_ms = 200 }"
            ),
            carrier("other", "other", ""),
        ),
    )
    .await;
    h.bound("slow", 1).await;
    h.bound("other", 1).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            h.submit(
                json!({"to": format!("+4477009{i:05}"), "from": "Acme", "body": format!("n{i}")}),
            )
            .await,
        );
    }
    let mut throttled = 0;
    for id in &ids {
        let m = h.final_state(id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        // Throttling is the carrier asking for patience, not failing: the message waits for
        // the same carrier (DESIGN, default error classification).
        for a in attempts(&m) {
            assert_eq!(a["carrier"], "slow", "{m}");
            if a["outcome"] == "throttled" {
                throttled += 1;
            }
        }
    }
    assert!(throttled > 0, "the simulator never throttled");
    assert_eq!(h.sim.stats().messages_accepted, 20);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_until_delivered_and_every_attempt_is_recorded() {
    let h = Harness::start(
        vec![account("esme")],
        &format!(
            "{}\n[policies.flaky]\nretry = {{ initial_backoff_ms = 50, max_backoff_ms = 200 }}\n",
            carrier(
                "flaky",
                "esme",
                "breaker = { cooldown_ms = 100 }\ncarrier_breaker = { cooldown_ms = 100 }"
            )
        ),
    )
    .await;
    h.bound("esme", 1).await;
    let mut faults = h.sim.faults("esme").unwrap();
    faults.error_rate = 1.0;
    faults.error_statuses = vec!["ESME_RSYSERR".into()];
    h.sim.set_faults("esme", faults.clone()).unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(h.send(&format!("try {i}")).await);
    }
    // Every message fails once or more; then the carrier recovers.
    for id in &ids {
        h.until("a failed attempt", async || {
            !attempts(&h.message(id).await).is_empty()
        })
        .await;
    }
    faults.error_rate = 0.0;
    h.sim.set_faults("esme", faults).unwrap();
    for id in &ids {
        let m = h.final_state(id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        let tries = attempts(&m);
        assert!(tries.len() >= 2, "{m}");
        for failed in &tries[..tries.len() - 1] {
            assert_eq!(failed["outcome"], "transient", "{m}");
            assert_eq!(failed["command_status"], "ESME_RSYSERR", "{m}");
        }
        assert_eq!(tries.last().unwrap()["outcome"], "accepted", "{m}");
        assert_eq!(m["attempts"], tries.len());
    }
    assert_eq!(h.sim.messages(Some("447700900123"), 100).len(), 5);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_moves_the_message_to_the_next_carrier_of_the_route() {
    let mut failing = account("failing");
    failing.faults.error_rate = 1.0;
    failing.faults.error_statuses = vec!["ESME_RSUBMITFAIL".into()];
    let h = Harness::start(
        vec![failing, account("steady")],
        &format!(
            "{}{}\n[policies.erring]\nretry = {{ initial_backoff_ms = 50, max_backoff_ms = 100 }}\n",
            carrier("erring", "failing", ""),
            carrier("steady", "steady", ""),
        ),
    )
    .await;
    h.bound("failing", 1).await;
    h.bound("steady", 1).await;
    // Fewer than the five consecutive failures that would open the breaker: each message
    // tries the first carrier.
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(h.send(&format!("elsewhere {i}")).await);
    }
    for id in &ids {
        let m = h.final_state(id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        let tries = attempts(&m);
        assert_eq!(tries.len(), 2, "{m}");
        assert_eq!(
            (
                &tries[0]["carrier"],
                &tries[0]["outcome"],
                &tries[0]["command_status"]
            ),
            (
                &json!("erring"),
                &json!("transient"),
                &json!("ESME_RSUBMITFAIL")
            ),
            "{m}"
        );
        assert_eq!(
            (&tries[1]["carrier"], &tries[1]["outcome"]),
            (&json!("steady"), &json!("accepted")),
            "{m}"
        );
        assert_eq!(m["part_details"][0]["carrier"], "steady", "{m}");
    }
    assert!(
        h.sim
            .messages(Some("447700900123"), 10)
            .iter()
            .all(|m| m.account == "steady")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_first_carrier_sends_everything_through_the_second() {
    let h = Harness::start(
        vec![account("esme1"), account("esme2")],
        &format!(
            "{}{}",
            carrier("primary", "esme1", ""),
            carrier("backup", "esme2", "")
        ),
    )
    .await;
    h.bound("esme1", 1).await;
    h.bound("esme2", 1).await;
    // While both are up, the route's first carrier takes the traffic.
    let id = h.send("before").await;
    let m = h.final_state(&id).await;
    assert_eq!(m["part_details"][0]["carrier"], "primary", "{m}");

    // The first carrier goes down: its bind is cut and it refuses binds for a minute.
    let mut outage = h.sim.faults("esme1").unwrap();
    outage.refuse_binds_secs = Some(60.0);
    outage.disconnect_after_pdus = Some(1);
    h.sim.set_faults("esme1", outage).unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            h.submit(json!({"to": format!("+4477009{i:05}"), "from": "Acme", "body": format!("during {i}")}))
                .await,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let m = h.final_state(id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        assert_eq!(m["part_details"][0]["carrier"], "backup", "{m}");
        let handset = h.sim.messages(Some(&format!("4477009{i:05}")), 10);
        assert!(!handset.is_empty(), "{m}");
        assert!(handset.iter().all(|x| x.account == "esme2"), "{handset:?}");
        // A submit cut off with the bind may be resubmitted; it is counted if so.
        assert!(handset.len() as u64 <= 1 + m["in_doubt_resubmits"].as_u64().unwrap());
    }
    assert_eq!(h.sim.bound("esme1"), 0);

    // The outage ends: the first carrier binds again and takes the traffic back.
    let mut healed = h.sim.faults("esme1").unwrap();
    healed.refuse_binds_secs = Some(0.0);
    healed.disconnect_after_pdus = None;
    h.sim.set_faults("esme1", healed).unwrap();
    h.bound("esme1", 1).await;
    let sim = h.sim.clone();
    h.until("the first carrier takes traffic again", async || {
        let id = h.send("after").await;
        let m = h.final_state(&id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        m["part_details"][0]["carrier"] == "primary" && sim.bound("esme1") > 0
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_without_a_response_follows_the_in_doubt_policy_and_every_resubmit_is_counted() {
    let mute = |id: &str| {
        let mut a = account(id);
        a.faults.drop_response_rate = 1.0;
        a
    };
    // Timeouts weigh on the breakers: short cooldowns keep the test quick.
    let quick = "response_timeout_ms = 300\nbreaker = { cooldown_ms = 100 }\ncarrier_breaker = { cooldown_ms = 100 }";
    let h = Harness::start(
        vec![mute("resubmit"), mute("fail"), mute("wait")],
        &format!(
            r#"{}{}{}
[policies.resubmit]
retry = {{ initial_backoff_ms = 50, max_backoff_ms = 100, max_attempts = 20 }}
[policies.fail]
in_doubt = {{ policy = "fail" }}
[policies.wait]
in_doubt = {{ policy = "wait_for_receipt", wait_secs = 1 }}
retry = {{ max_attempts = 20 }}
"#,
            carrier("resubmit", "resubmit", quick),
            carrier("fail", "fail", quick),
            carrier("wait", "wait", quick),
        ),
    )
    .await;
    let send = async |carrier: &str, to: &str| {
        h.submit(json!({"to": to, "from": "Acme", "body": "are you there", "carrier": carrier}))
            .await
    };
    let resubmitted = send("resubmit", "+447700900001").await;
    let failed = send("fail", "+447700900002").await;
    let waited = send("wait", "+447700900003").await;

    // Fail: never risk a duplicate.
    let m = h.final_state(&failed).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["reason"]["code"], "in_doubt", "{m}");
    assert_eq!(m["in_doubt_resubmits"], 0, "{m}");
    assert_eq!(h.sim.messages(Some("447700900002"), 10).len(), 1);

    // Resubmit and wait-for-receipt send it again, counting each resubmit, until a response
    // comes.
    for id in [&resubmitted, &waited] {
        h.until("a resubmit", async || {
            h.message(id).await["in_doubt_resubmits"].as_u64() >= Some(1)
        })
        .await;
    }
    for system_id in ["resubmit", "wait"] {
        let mut answering = h.sim.faults(system_id).unwrap();
        answering.drop_response_rate = 0.0;
        h.sim.set_faults(system_id, answering).unwrap();
    }
    for (id, to) in [(&resubmitted, "447700900001"), (&waited, "447700900003")] {
        let m = h.final_state(id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        let copies = h.sim.messages(Some(to), 100).len() as u64;
        let counted = m["in_doubt_resubmits"].as_u64().unwrap();
        assert!(counted >= 1, "{m}");
        assert_eq!(
            copies,
            1 + counted,
            "every copy but the first is counted: {m}"
        );
        for a in &attempts(&m)[..attempts(&m).len() - 1] {
            assert_eq!(a["outcome"], "no_response", "{m}");
        }
    }
    assert!(counter("smppd_in_doubt_resubmits_total", "resubmit") >= 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_response_settles_a_waiting_message_without_a_second_copy() {
    let mut slow = account("slow");
    slow.faults.latency = DelayRange::fixed(700);
    let h = Harness::start(
        vec![slow],
        &format!(
            r#"{}
[policies.late]
in_doubt = {{ policy = "wait_for_receipt", wait_secs = 2 }}
"#,
            carrier("late", "slow", "response_timeout_ms = 300"),
        ),
    )
    .await;
    let id = h.send("patience").await;
    h.until("in doubt", async || {
        h.message(&id).await["reason"]["code"] == "in_doubt"
    })
    .await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["in_doubt_resubmits"], 0, "{m}");
    let tries = attempts(&m);
    assert_eq!(tries.len(), 2, "{m}");
    assert_eq!(tries[0]["outcome"], "no_response", "{m}");
    assert!(
        tries[1]["detail"]
            .as_str()
            .unwrap()
            .contains("nothing sent"),
        "{m}"
    );
    assert_eq!(h.sim.messages(Some("447700900123"), 10).len(), 1);
    assert_eq!(h.sim.stats().pdus_received["submit_sm"], 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_ttl_passes_while_no_carrier_is_up_expires() {
    let mut down = account("down");
    down.faults.refuse_binds_secs = Some(60.0);
    let h = Harness::start(vec![down], &carrier("down", "down", "")).await;
    let id = h
        .submit(json!({"to": TO, "from": "Acme", "body": "too late", "ttl": 1}))
        .await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "expired", "{m}");
    assert_eq!(m["reason"]["code"], "expired", "{m}");
    assert!(attempts(&m).is_empty(), "{m}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_message_is_never_sent() {
    let mut down = account("later");
    down.faults.refuse_binds_secs = Some(60.0);
    let h = Harness::start(vec![down], &carrier("later", "later", "")).await;
    let cancelled = h.send("never mind").await;
    let kept = h
        .submit(json!({"to": "+447700900124", "from": "Acme", "body": "still wanted"}))
        .await;
    // The dispatcher may be holding the message at this instant (it claims it, finds no
    // bind up, and gives it back): then the cancel is refused as `submitting` and is asked
    // again, as a client would.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = h
            .call("DELETE", &format!("/messages/{cancelled}"), None)
            .await;
        let held = status == 409
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("submitting"));
        if !held || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 204, "{body}");
    let mut up = h.sim.faults("later").unwrap();
    up.refuse_binds_secs = Some(0.0);
    h.sim.set_faults("later", up).unwrap();
    assert_eq!(h.final_state(&kept).await["status"], "delivered");
    let m = h.message(&cancelled).await;
    assert_eq!(m["status"], "cancelled", "{m}");
    assert_eq!(m["reason"]["code"], "cancelled", "{m}");
    assert!(h.sim.messages(Some("447700900123"), 10).is_empty());
    let (status, body) = h.call("DELETE", &format!("/messages/{kept}"), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_to_a_busy_number_keep_their_own_concatenation_references() {
    // Two binds with a window of one: the parts of two long messages interleave on the way.
    let h = Harness::start(
        vec![account("esme")],
        &carrier(
            "refs",
            "esme",
            r#"binds = [{ type = "transceiver", count = 2 }]
window = 1"#,
        ),
    )
    .await;
    h.bound("esme", 2).await;
    // Many short messages to the number first: they need no reference and must not use up
    // the 256 that an 8-bit reference has.
    let short: Vec<Value> = (0..300)
        .map(|i| json!({"to": TO, "from": "Acme", "body": format!("short {i}")}))
        .collect();
    let (status, batch) = h
        .call("POST", "/messages/batch", Some(json!({"messages": short})))
        .await;
    assert_eq!(
        (status, batch["accepted"].as_u64()),
        (200, Some(300)),
        "{batch}"
    );
    for r in batch["results"].as_array().unwrap() {
        assert_eq!(
            h.final_state(r["id"].as_str().unwrap()).await["status"],
            "delivered"
        );
    }
    let texts: Vec<String> = ["first", "second", "third", "fourth"]
        .iter()
        .map(|w| format!("The {w} long message. ").repeat(20))
        .collect();
    let long: Vec<Value> = texts
        .iter()
        .map(|t| json!({"to": TO, "from": "Acme", "body": t}))
        .collect();
    let (_, batch) = h
        .call("POST", "/messages/batch", Some(json!({"messages": long})))
        .await;
    for r in batch["results"].as_array().unwrap() {
        let m = h.final_state(r["id"].as_str().unwrap()).await;
        assert_eq!(m["status"], "delivered", "{m}");
    }
    let handset: Vec<String> = h
        .sim
        .messages(Some("447700900123"), 1000)
        .into_iter()
        .filter(|m| m.parts > 1)
        .map(|m| m.text)
        .collect();
    for t in &texts {
        assert!(
            handset.contains(t),
            "{t:?} not reassembled intact: {handset:?}"
        );
    }
    h.stop().await;
}

// ---- receipts ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_on_a_separate_receiver_bind_are_matched() {
    let h = Harness::start(
        vec![account("esme")],
        &carrier(
            "split",
            "esme",
            r#"binds = [{ type = "transmitter" }, { type = "receiver" }]"#,
        ),
    )
    .await;
    h.bound("esme", 2).await;
    let short = h.send("one part").await;
    let long = h.send(&"x".repeat(300)).await;
    for id in [short, long] {
        let m = h.final_state(&id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        for part in m["part_details"].as_array().unwrap() {
            assert_eq!(part["bind"], "tx0", "{m}");
            assert_eq!(part["state"], "delivered", "{m}");
        }
        assert_eq!(
            m["receipts"].as_array().unwrap().len(),
            m["parts"].as_u64().unwrap() as usize
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_that_arrive_before_the_submit_response_are_matched() {
    let mut trx = account("early");
    trx.faults.receipt_before_response = true;
    let mut split = account("earlysplit");
    split.faults.receipt_before_response = true;
    let h = Harness::start(
        vec![trx, split],
        &format!(
            "{}{}",
            carrier("early", "early", ""),
            carrier(
                "earlysplit",
                "earlysplit",
                r#"binds = [{ type = "transmitter" }, { type = "receiver" }]"#
            )
        ),
    )
    .await;
    h.bound("early", 1).await;
    h.bound("earlysplit", 2).await;
    let mut ids = Vec::new();
    for carrier in ["early", "earlysplit"] {
        for body in ["short".to_owned(), "y".repeat(300)] {
            ids.push(
                h.submit(json!({"to": TO, "from": "Acme", "body": body, "carrier": carrier}))
                    .await,
            );
        }
    }
    for id in &ids {
        let m = h.final_state(id).await;
        assert_eq!(m["status"], "delivered", "{m}");
        assert!(
            m["part_details"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["state"] == "delivered"),
            "{m}"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_that_receipts_only_the_first_part_delivers_long_messages() {
    let mut first_only = account("firstonly");
    first_only.receipts.per_part = false;
    let h = Harness::start(
        vec![first_only],
        &format!(
            "{}\n[policies.firstonly]\nreceipt_parts = \"first\"\n",
            carrier("firstonly", "firstonly", "")
        ),
    )
    .await;
    let id = h.send(&"z".repeat(400)).await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["parts"], 3);
    assert_eq!(m["receipts"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(h.sim.stats().receipts_sent, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hex_response_ids_match_decimal_receipt_ids_when_the_carrier_says_so() {
    let text_only = |id: &str| {
        let mut a = account(id);
        a.receipts.format = ReceiptFormat::Text;
        a.receipts.text_id = ReceiptIdStyle::Decimal;
        a
    };
    let h = Harness::start(
        vec![text_only("hexdec"), text_only("unset")],
        &format!(
            r#"{}{}
[dispatch]
receipt_scan_ms = 50

[policies.hexdec]
submit_id_format = "hex"
receipt_id_format = "decimal"

[policies.unset]
receipt_timeout_secs = 1
"#,
            carrier("hexdec", "hexdec", ""),
            carrier("unset", "unset", ""),
        ),
    )
    .await;
    let matched = h
        .submit(json!({"to": TO, "from": "Acme", "body": "hex to dec", "carrier": "hexdec"}))
        .await;
    let m = h.final_state(&matched).await;
    assert_eq!(m["status"], "delivered", "{m}");
    let id = m["part_details"][0]["carrier_message_id"].as_str().unwrap();
    let receipt = m["receipts"][0]["carrier_message_id"].as_str().unwrap();
    assert_ne!(id, receipt, "the ids are written differently: {m}");
    assert_eq!(
        u64::from_str_radix(id, 16).unwrap(),
        receipt.parse::<u64>().unwrap()
    );
    // Without the setting the same receipt matches nothing, and the message ends unknown.
    let unmatched = h
        .submit(json!({"to": TO, "from": "Acme", "body": "hex to dec", "carrier": "unset"}))
        .await;
    let m = h.final_state(&unmatched).await;
    assert_eq!(m["status"], "unknown", "{m}");
    assert_eq!(m["reason"]["code"], "no_receipt");
    assert_eq!(counter("smppd_receipts_correlated_total", "unset"), 1);
    // Only the matched receipt times accept -> receipt.
    assert_eq!(
        counter("smppd_accept_to_receipt_seconds_count", "hexdec"),
        1
    );
    assert_eq!(counter("smppd_accept_to_receipt_seconds_count", "unset"), 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_undeliverable_receipt_resubmits_through_the_next_carrier() {
    let mut undeliv = account("undeliv");
    undeliv.receipts.outcomes = vec![Outcome {
        stat: "UNDELIV".into(),
        weight: 1.0,
        err: 27,
    }];
    let h = Harness::start(
        vec![undeliv, account("good")],
        &format!(
            r#"{}{}
[policies.first]
retry = {{ initial_backoff_ms = 50, max_backoff_ms = 100, retryable_receipt_errors = ["027"] }}
"#,
            carrier("first", "undeliv", ""),
            carrier("second", "good", ""),
        ),
    )
    .await;
    h.bound("undeliv", 1).await;
    h.bound("good", 1).await;
    let id = h.send("try again elsewhere").await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    let tries = attempts(&m);
    assert_eq!(tries.len(), 2, "{m}");
    assert_eq!(tries[0]["carrier"], "first");
    assert_eq!(tries[1]["carrier"], "second");
    assert!(
        tries[1]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("UNDELIV"),
        "the second attempt is marked as a retry after the receipt: {m}"
    );
    let stats: Vec<_> = m["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stat"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stats, ["UNDELIV", "DELIVRD"], "{m}");
    assert_eq!(h.sim.messages(Some("447700900123"), 10).len(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_receipts_are_retried_up_to_the_limit_then_the_message_expires() {
    let mut expiring = account("expiring");
    expiring.receipts.outcomes = vec![Outcome {
        stat: "EXPIRED".into(),
        weight: 1.0,
        err: 0,
    }];
    let mut undeliv = account("dead");
    undeliv.receipts.outcomes = vec![Outcome {
        stat: "UNDELIV".into(),
        weight: 1.0,
        err: 1,
    }];
    let h = Harness::start(
        vec![expiring, undeliv],
        &format!(
            r#"{}{}
[policies.expiring]
retry = {{ initial_backoff_ms = 50, max_backoff_ms = 100, max_receipt_retries = 2, retryable_receipt_errors = ["27"] }}
[policies.dead]
retry = {{ initial_backoff_ms = 50, max_backoff_ms = 100, retryable_receipt_errors = ["27"] }}
"#,
            carrier("expiring", "expiring", ""),
            carrier("dead", "dead", ""),
        ),
    )
    .await;
    let id = h
        .submit(json!({"to": TO, "from": "Acme", "body": "late", "carrier": "expiring"}))
        .await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "expired", "{m}");
    assert_eq!(m["reason"]["code"], "EXPIRED", "{m}");
    assert_eq!(
        attempts(&m).len(),
        3,
        "the first submit and two retries: {m}"
    );
    assert_eq!(h.sim.messages(Some("447700900123"), 10).len(), 3);
    // UNDELIV with an err that is not listed is final at once.
    let id = h
        .submit(json!({"to": "+447700900124", "from": "Acme", "body": "gone", "carrier": "dead"}))
        .await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["reason"]["code"], "UNDELIV", "{m}");
    assert_eq!(attempts(&m).len(), 1, "{m}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_a_receipt_ends_unknown_after_the_receipt_timeout() {
    let mut silent = account("silent");
    silent.faults.receipt_drop_rate = 1.0;
    let h = Harness::start(
        vec![silent],
        &format!(
            "{}\n[dispatch]\nreceipt_scan_ms = 50\n[policies.silent]\nreceipt_timeout_secs = 1\n",
            carrier("silent", "silent", "")
        ),
    )
    .await;
    let id = h.send("into the void").await;
    h.until("submitted", async || {
        h.message(&id).await["status"] == "submitted"
    })
    .await;
    let m = h.message(&id).await;
    assert_accounted(&m);
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "unknown", "{m}");
    assert_eq!(m["reason"]["code"], "no_receipt", "{m}");
    assert_eq!(m["part_details"][0]["state"], "submitted", "{m}");
    assert_eq!(h.sim.messages(Some("447700900123"), 10).len(), 1);
    h.stop().await;
}

// ---- webhooks ------------------------------------------------------------------------------

/// One callback as the test's receiver saw it.
#[derive(Debug)]
struct Callback {
    body: Value,
    signed: bool,
    answered: u16,
}

/// A tiny HTTP receiver: answers the first `failures` requests 500 and the rest 200, one
/// request per connection, and reports each with its signature checked against `secret`.
async fn webhook_receiver(
    failures: usize,
    secret: &'static [u8],
) -> (String, mpsc::UnboundedReceiver<Callback>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut served = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break (head, buf[end + 4..end + 4 + len].to_vec());
                }
            };
            if head.is_empty() {
                continue;
            }
            let answered = if served < failures { 500 } else { 200 };
            served += 1;
            let reply =
                format!("HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes()).await;
            let signature = head
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{SIGNATURE_HEADER}:")))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            let _ = tx.send(Callback {
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                signed: verify(secret, &body, &signature),
                answered,
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_signed_in_order_and_are_retried_after_a_failure() {
    let (url, mut callbacks) = webhook_receiver(1, b"hook-secret").await;
    let h = Harness::start(
        vec![account("esme")],
        &format!(
            "{}\n[webhook]\nsecret = \"hook-secret\"\ninitial_backoff_ms = 50\n",
            carrier("hooked", "esme", "")
        ),
    )
    .await;
    let id = h
        .submit(json!({"to": TO, "from": "Acme", "body": "tell me", "callback_url": url}))
        .await;
    assert_eq!(h.final_state(&id).await["status"], "delivered");
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|c: &Callback| c.body["status"] != "delivered" || c.answered != 200)
    {
        let c = tokio::time::timeout(Duration::from_secs(30), callbacks.recv())
            .await
            .expect("a callback")
            .unwrap();
        assert!(c.signed, "{c:?}");
        assert_eq!(c.body["id"], id.as_str(), "{c:?}");
        seen.push(c);
    }
    let sequence: Vec<(&str, u16)> = seen
        .iter()
        .map(|c| (c.body["status"].as_str().unwrap(), c.answered))
        .collect();
    // The first callback failed and was sent again before the next state went out.
    assert_eq!(
        sequence,
        [("submitted", 500), ("submitted", 200), ("delivered", 200)]
    );
    assert_eq!(seen[2].body["reason"]["code"], "DELIVRD");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_report_retries_and_failures_in_order() {
    let (url, mut callbacks) = webhook_receiver(0, b"hook-secret").await;
    let mut undeliv = account("esme");
    undeliv.receipts.outcomes = vec![Outcome {
        stat: "UNDELIV".into(),
        weight: 1.0,
        err: 27,
    }];
    let h = Harness::start(
        vec![undeliv],
        &format!(
            r#"{}
[webhook]
secret = "hook-secret"
[policies.sad]
retry = {{ initial_backoff_ms = 50, max_backoff_ms = 100, max_receipt_retries = 1, retryable_receipt_errors = ["27"] }}
"#,
            carrier("sad", "esme", "")
        ),
    )
    .await;
    let id = h
        .submit(json!({"to": TO, "from": "Acme", "body": "tell me", "callback_url": url}))
        .await;
    let m = h.final_state(&id).await;
    assert_eq!(m["status"], "failed", "{m}");
    let mut statuses = Vec::new();
    while statuses.last().is_none_or(|s| s != "failed") {
        let c = tokio::time::timeout(Duration::from_secs(30), callbacks.recv())
            .await
            .expect("a callback")
            .unwrap();
        assert!(c.signed, "{c:?}");
        statuses.push(c.body["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["submitted", "retrying", "submitted", "failed"]);
    h.stop().await;
}

// ---- many at once --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_mixed_messages_all_finish_with_a_reason() {
    let mut a = account("esme");
    a.receipts.outcomes = vec![
        Outcome {
            stat: "DELIVRD".into(),
            weight: 8.0,
            err: 0,
        },
        Outcome {
            stat: "UNDELIV".into(),
            weight: 1.0,
            err: 1,
        },
        Outcome {
            stat: "REJECTD".into(),
            weight: 1.0,
            err: 2,
        },
    ];
    a.faults.error_rate = 0.1;
    a.faults.error_statuses = vec!["ESME_RSYSERR".into(), "ESME_RINVDSTADR".into()];
    let h = Harness::start(
        vec![a],
        &format!(
            "{}\n[policies.mixed]\nretry = {{ initial_backoff_ms = 20, max_backoff_ms = 50, max_attempts = 10 }}\n",
            carrier("mixed", "esme", "window = 20")
        ),
    )
    .await;
    let messages: Vec<Value> = (0..300)
        .map(|i| json!({"to": format!("+4477009{i:05}"), "from": "Acme", "body": format!("m{i}")}))
        .collect();
    let (status, batch) = h
        .call(
            "POST",
            "/messages/batch",
            Some(json!({"messages": messages})),
        )
        .await;
    assert_eq!(
        (status, batch["accepted"].as_u64()),
        (200, Some(300)),
        "{batch}"
    );
    let mut by_state: HashMap<String, usize> = HashMap::new();
    for r in batch["results"].as_array().unwrap() {
        let m = h.final_state(r["id"].as_str().unwrap()).await;
        assert_accounted(&m);
        *by_state
            .entry(m["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(by_state.values().sum::<usize>(), 300);
    assert!(by_state["delivered"] > 150, "{by_state:?}");
    h.stop().await;
}
