//! The whole engine end to end: HTTP in, smsc-sim (in-process, port 0) as the carrier,
//! receipts back, the message's final state out. Each test has its own data directory.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use smppd::config::ConfigFile;
use smppd::engine::Engine;
use smsc_sim::config::{AccountConfig, SimConfig};
use smsc_sim::{Sim, SimHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const KEY: &str = "test-key-123";

struct Setup {
    engine: Engine,
    sim: SimHandle,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    stop_sim: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start_sim(accounts: Vec<AccountConfig>) -> (SimHandle, String, CancellationToken) {
    let sim = Sim::new(SimConfig {
        accounts,
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

async fn setup(extra: &str) -> Setup {
    let mut account = AccountConfig::new("esme", "pw");
    account.receipts.delay.max_ms = 20;
    let (sim, addr, stop_sim) = start_sim(vec![account]).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[engine]
data_dir = "{data}"
shutdown_grace_secs = 2

[api]
keys = [{{ name = "test", key = "{KEY}" }}]

[metrics]
listen = ""

[store]
synchronous = "normal"

[[carriers]]
name = "sim"
hosts = ["{addr}"]
system_id = "esme"
password = "pw"
tps = 0
{extra}
"#,
        data = dir.path().display()
    );
    let config = ConfigFile::parse(&toml)
        .unwrap()
        .validate(dir.path())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let engine = Engine::start(config, Some(listener)).await.unwrap();
    let base = format!("http://{}", engine.api_addr);
    Setup {
        engine,
        sim,
        base,
        client: Client::builder(TokioExecutor::new()).build_http(),
        stop_sim,
        _dir: dir,
    }
}

impl Setup {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Polls the message until it reaches a final state (or a minute passes).
    async fn final_state(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, m) = self.call("GET", &format!("/messages/{id}"), None).await;
            let status = m["status"].as_str().unwrap_or("").to_owned();
            if [
                "delivered",
                "failed",
                "expired",
                "rejected",
                "unknown",
                "cancelled",
            ]
            .contains(&status.as_str())
            {
                return m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still {status}: {m}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn send(&self, body: &str) -> String {
        let (status, resp) = self
            .call(
                "POST",
                "/messages",
                Some(json!({"to": "+447700900123", "from": "Acme", "body": body})),
            )
            .await;
        assert_eq!(status, 202, "{resp}");
        resp["id"].as_str().unwrap().to_owned()
    }

    async fn stop(self) {
        self.engine.shutdown().await;
        self.stop_sim.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_message_is_delivered() {
    let s = setup("").await;
    let id = s.send("Your code is 482913").await;
    let m = s.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["part_details"][0]["state"], "delivered");
    assert_eq!(m["attempt_details"].as_array().unwrap().len(), 1);
    let handset = s.sim.messages(Some("447700900123"), 10);
    assert_eq!(handset.len(), 1);
    assert_eq!(handset[0].text, "Your code is 482913");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_message_goes_as_three_parts_and_reassembles_exactly() {
    let s = setup("").await;
    let text: String = "Long text with {braces} and [brackets] ~ that spans parts. "
        .chars()
        .cycle()
        .take(400)
        .collect();
    let id = s.send(&text).await;
    let m = s.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["parts"], 3);
    let handset = s.sim.messages(Some("447700900123"), 10);
    assert_eq!(handset.len(), 1, "{handset:?}");
    assert_eq!(handset[0].text, text);
    assert_eq!(handset[0].parts, 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucs2_with_emoji_arrives_intact() {
    let s = setup("").await;
    let text = "Привет! Ваш код 4711 😀👍";
    let id = s.send(text).await;
    let m = s.final_state(&id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["encoding"], "ucs2");
    assert_eq!(s.sim.messages(Some("447700900123"), 10)[0].text, text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_fails_the_message_with_the_status_as_reason() {
    let s = setup("").await;
    let mut faults = s.sim.faults("esme").unwrap();
    faults.error_rate = 1.0;
    faults.error_statuses = vec!["ESME_RINVDSTADR".into()];
    s.sim.set_faults("esme", faults).unwrap();
    let id = s.send("hello").await;
    let m = s.final_state(&id).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["reason"]["code"], "ESME_RINVDSTADR");
    s.stop().await;
}
