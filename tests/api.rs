//! The submit socket over real HTTP against the real store on disk: what a producer sends,
//! what it gets back, and that a refused request stores nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use smppd::api::server::{ApiKeyConfig, ApiState, Scope, router};
use smppd::api::validate::Limits;
use smppd::store::{SqliteConfig, SqliteStore, Store};
use tokio::sync::Notify;

struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    store: Arc<SqliteStore>,
    ready: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

const SEND: &str = "send-key";
const ADMIN: &str = "admin-key";
const LIMITED: &str = "limited-key";

async fn start(max_body: usize) -> Api {
    start_with(max_body, |config| config).await
}

async fn start_with(max_body: usize, store: impl FnOnce(SqliteConfig) -> SqliteConfig) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(store(SqliteConfig::new(dir.path().join("smppd.db"))))
            .await
            .unwrap(),
    );
    let key = |name: &str, scope, rate| ApiKeyConfig {
        name: name.into(),
        key: String::new(),
        scope,
        rate_per_sec: rate,
    };
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    let state = ApiState::new(
        store.clone(),
        Limits {
            carriers: vec!["alpha".into()],
            ..Limits::default()
        },
        vec![
            (SEND.into(), key("shop", Scope::Send, 0)),
            (ADMIN.into(), key("ops", Scope::Admin, 0)),
            (LIMITED.into(), key("slow", Scope::Send, 1)),
        ],
        Arc::new(move || flag.load(Ordering::Relaxed)),
        Arc::new(Notify::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, router(state, max_body))
            .await
            .unwrap();
    });
    Api {
        base,
        client: Client::builder(TokioExecutor::new()).build_http(),
        store,
        ready,
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value, hyper::HeaderMap) {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value, headers)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self
            .call("POST", path, Some(SEND), Some(body.to_string()))
            .await;
        (s, v)
    }

    async fn stored(&self) -> usize {
        let counts = self.store.counts().await.unwrap();
        counts.iter().map(|(_, n)| n as usize).sum()
    }
}

fn otp() -> Value {
    json!({"to": "+447700900123", "from": "Acme", "body": "Your code is 482913"})
}

#[tokio::test]
async fn accepts_a_message_and_shows_it() {
    let api = start(1 << 20).await;
    let (status, body) = api.post("/messages", otp()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["parts"], 1);
    assert_eq!(body["encoding"], "gsm7");
    let id = body["id"].as_str().unwrap();
    let (status, detail, _) = api
        .call("GET", &format!("/messages/{id}"), Some(SEND), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(detail["to"], "447700900123");
    assert_eq!(detail["status"], "accepted");
    assert_eq!(detail["body"], "Your code is 482913");
    assert!(detail["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_repeated_id_returns_the_original_message() {
    let api = start(1 << 20).await;
    let mut m = otp();
    m["id"] = json!("order-4711");
    let (_, first) = api.post("/messages", m.clone()).await;
    let (status, second) = api.post("/messages", m).await;
    assert_eq!(status, 202);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["duplicate"], true);
    assert_eq!(api.stored().await, 1);
}

#[tokio::test]
async fn every_bad_request_has_its_code_and_stores_nothing() {
    let api = start(4096).await;
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "malformed_json"),
        (
            json!({"to": 447700900123u64, "from": "Acme", "body": "x"}).to_string(),
            400,
            "invalid_type",
        ),
        (
            json!({"to": "+44", "from": "Acme", "body": "x"}).to_string(),
            400,
            "invalid_destination",
        ),
        (
            json!({"to": "+447700900123", "from": "A very long sender", "body": "x"}).to_string(),
            400,
            "invalid_sender",
        ),
        (
            json!({"to": "+447700900123", "from": "Acme", "body": "x", "colour": "red"})
                .to_string(),
            400,
            "unknown_field",
        ),
        (
            json!({"to": "+447700900123", "from": "Acme"}).to_string(),
            400,
            "missing_field",
        ),
        (
            json!({"to": "+447700900123", "from": "Acme", "body": "x".repeat(2000)}).to_string(),
            400,
            "body_too_long",
        ),
        (
            json!({"to": "+447700900123", "from": "Acme", "body": "x", "ttl": 0}).to_string(),
            400,
            "invalid_ttl",
        ),
        (
            json!({"to": "+447700900123", "from": "Acme", "body": "x", "carrier": "omega"})
                .to_string(),
            400,
            "unknown_carrier",
        ),
        ("x".repeat(5000), 413, ""),
    ];
    for (body, status, code) in cases {
        let (got, value, _) = api
            .call("POST", "/messages", Some(SEND), Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body:.60}: {value}");
        if !code.is_empty() {
            assert_eq!(value["error"]["code"], code, "{body:.60}");
        }
    }
    assert_eq!(api.stored().await, 0);
}

#[tokio::test]
async fn keys_are_checked_on_every_request() {
    let api = start(1 << 20).await;
    let (status, body, _) = api
        .call("POST", "/messages", None, Some(otp().to_string()))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let (status, body, _) = api
        .call("POST", "/messages", Some("nope"), Some(otp().to_string()))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (status, body, _) = api
        .call("PUT", "/suppressions/447700900123", Some(SEND), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _, _) = api.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(api.stored().await, 0);
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let api = start(1 << 20).await;
    let mut limited = 0;
    for _ in 0..5 {
        let (status, _, headers) = api
            .call("POST", "/messages", Some(LIMITED), Some(otp().to_string()))
            .await;
        if status == 429 {
            assert!(headers.contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(limited >= 3, "{limited}");
}

#[tokio::test]
async fn a_suppressed_number_is_refused_until_the_suppression_is_removed() {
    let api = start(1 << 20).await;
    let (status, _, _) = api
        .call(
            "PUT",
            "/suppressions/+447700900123",
            Some(ADMIN),
            Some(json!({"reason": "asked by phone"}).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api.post("/messages", otp()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("suppressed"))
    );
    let (status, body, _) = api
        .call("GET", "/suppressions/447700900123", Some(ADMIN), None)
        .await;
    assert_eq!((status, body["source"].as_str()), (200, Some("api")));
    let (status, _, _) = api
        .call("DELETE", "/suppressions/447700900123", Some(ADMIN), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(api.post("/messages", otp()).await.0, 202);
}

#[tokio::test]
async fn a_batch_answers_per_item_in_one_commit() {
    let api = start(1 << 20).await;
    let mut bad = otp();
    bad["to"] = json!("nope");
    let (status, body) = api
        .post("/messages/batch", json!({"messages": [otp(), bad, otp()]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 1);
    let first = &body["results"][0];
    assert_eq!(first["index"], 0);
    assert_eq!(first["status"], "accepted");
    assert_eq!(first["parts"], 1);
    assert_eq!(first["encoding"], "gsm7");
    assert_eq!(first["duplicate"], false);
    assert!(
        first["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert_eq!(body["results"][1]["index"], 1);
    assert_eq!(body["results"][1]["error"]["code"], "invalid_destination");
    assert_eq!(body["results"][1]["error"]["field"], "to");
    assert_eq!(body["results"][2]["index"], 2);
    assert_eq!(api.stored().await, 2);
    let (status, body) = api.post("/messages/batch", json!({"messages": []})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_batch_size"))
    );
}

#[tokio::test]
async fn a_backlog_at_its_bound_gets_503_overloaded_until_the_dispatcher_takes_some() {
    let api = start_with(1 << 20, |config| SqliteConfig {
        max_backlog: 3,
        ..config
    })
    .await;
    for _ in 0..3 {
        assert_eq!(api.post("/messages", otp()).await.0, 202);
    }
    let (status, body, headers) = api
        .call("POST", "/messages", Some(SEND), Some(otp().to_string()))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("overloaded")),
        "{body}"
    );
    assert_eq!(
        headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    // A batch that does not fit is refused whole.
    let (status, body) = api
        .post("/messages/batch", json!({"messages": [otp(), otp()]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("overloaded")),
        "{body}"
    );
    assert_eq!(api.stored().await, 3);
    // Once the dispatcher took two, two fit again.
    assert_eq!(api.store.claim(2).await.unwrap().len(), 2);
    let (status, body) = api
        .post("/messages/batch", json!({"messages": [otp(), otp()]}))
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    assert_eq!(api.post("/messages", otp()).await.0, 503);
    assert_eq!(api.stored().await, 5);
}

#[tokio::test]
async fn cancel_and_feedback_change_the_state() {
    let api = start(1 << 20).await;
    let (_, a) = api.post("/messages", otp()).await;
    let (_, b) = api.post("/messages", otp()).await;
    let a = a["id"].as_str().unwrap().to_owned();
    let b = b["id"].as_str().unwrap().to_owned();
    let (status, _, _) = api
        .call("DELETE", &format!("/messages/{a}"), Some(SEND), None)
        .await;
    assert_eq!(status, 204);
    let (_, detail, _) = api
        .call("GET", &format!("/messages/{a}"), Some(SEND), None)
        .await;
    assert_eq!(detail["status"], "cancelled");
    let (status, _, _) = api
        .call("DELETE", &format!("/messages/{a}"), Some(SEND), None)
        .await;
    assert_eq!(status, 409);
    let (status, _) = api
        .post(
            &format!("/messages/{b}/feedback"),
            json!({"status": "delivered"}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, detail, _) = api
        .call("GET", &format!("/messages/{b}"), Some(SEND), None)
        .await;
    assert_eq!(detail["status"], "delivered");
    let (status, _, _) = api
        .call(
            "GET",
            "/messages/00000000000000000000000000",
            Some(SEND),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn lists_page_through_every_message_once() {
    let api = start(1 << 20).await;
    for _ in 0..7 {
        api.post("/messages", otp()).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/messages?limit=3&cursor={c}"),
            None => "/messages?limit=3&to=%2B447700900123&status=accepted".into(),
        };
        let (status, page, _) = api.call("GET", &path, Some(SEND), None).await;
        assert_eq!(status, 200, "{page}");
        for m in page["messages"].as_array().unwrap() {
            seen.push(m["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);
    let (status, body, _) = api
        .call("GET", "/messages?status=bogus", Some(SEND), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_status"))
    );
}

#[tokio::test]
async fn readiness_needs_a_bound_carrier() {
    let api = start(1 << 20).await;
    let (status, body, _) = api.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store_writable"], true);
    api.ready.store(true, Ordering::Relaxed);
    let (status, _, _) = api.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200);
}
