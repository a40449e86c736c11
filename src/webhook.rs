//! Status callbacks to producers: every state change of a message with a callback URL is
//! POSTed as JSON, signed with HMAC-SHA256 over the body, retried with backoff for up to a day,
//! in order per message.
//!
//! One scheduler task owns the queues; deliveries run concurrently up to a limit, but never
//! two for the same message, so a producer sees a message's states in the order they happened.
//! Queues are bounded: when full, `notify` says so and the caller counts it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The header carrying the signature: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-smppd-signature";

/// Webhook settings (`[webhook]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL used for messages that give no `callback_url`. Default none.
    pub default_url: Option<String>,
    /// HMAC secret; `env:NAME` reads it from the environment. Default none (unsigned).
    pub secret: Option<String>,
    /// Per-request timeout, ms. Default 5 000.
    pub timeout_ms: u64,
    /// How long an undelivered callback keeps being retried, s. Default 86 400 (a day).
    pub max_age_secs: u64,
    /// First retry delay, ms; doubles up to `max_backoff_ms`. Default 1 000.
    pub initial_backoff_ms: u64,
    /// Longest retry delay, ms. Default 300 000.
    pub max_backoff_ms: u64,
    /// Deliveries in flight at once. Default 32.
    pub concurrency: usize,
    /// Callbacks held (queued or being retried) at most. Default 100 000.
    pub max_queued: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            default_url: None,
            secret: None,
            timeout_ms: 5_000,
            max_age_secs: 86_400,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 300_000,
            concurrency: 32,
            max_queued: 100_000,
        }
    }
}

/// One callback: a message's new state as a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The message it is about; callbacks of one message go out in order.
    pub message_id: String,
    /// Where to POST it.
    pub url: String,
    /// The JSON body.
    pub body: Bytes,
}

/// The callback queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the webhook queue is full")]
pub struct QueueFull;

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!(
        "sha256={}",
        crate::pdu::hex::encode(&mac.finalize().into_bytes())
    )
}

/// Checks a signature header value against `body` (for producers' tests and examples).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let expected = sign(secret, body);
    // Constant-time comparison: the length is public, the content is not.
    expected.len() == header.len()
        && expected
            .bytes()
            .zip(header.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The sending side of the webhook queue.
#[derive(Clone, Debug)]
pub struct Webhooks {
    tx: mpsc::Sender<WebhookEvent>,
    default_url: Option<Arc<str>>,
}

impl Webhooks {
    /// Starts the delivery task; it stops when `cancel` fires.
    pub fn start(
        config: WebhookConfig,
        secret: Option<Vec<u8>>,
        cancel: CancellationToken,
    ) -> (Webhooks, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.max_queued.clamp(1, 1 << 20));
        let default_url = config.default_url.as_deref().map(Arc::from);
        let task = tokio::spawn(run(config, secret, rx, cancel));
        (Webhooks { tx, default_url }, task)
    }

    /// Whether a message has a URL to call: its own (`own_url`), or the configured default.
    pub fn has_url(&self, own_url: bool) -> bool {
        own_url || self.default_url.is_some()
    }

    /// The URL for a message: its own, else the configured default.
    pub fn url_for(&self, callback_url: Option<&str>) -> Option<String> {
        callback_url
            .map(str::to_owned)
            .or_else(|| self.default_url.as_deref().map(str::to_owned))
    }

    /// Queues the callback for a message's new state, if the message has a URL (its own or
    /// the default). Never waits; a full queue is counted and the callback dropped.
    pub fn message_changed(
        &self,
        message: &crate::store::Message,
        status: &str,
        reason: Option<&crate::store::Reason>,
    ) {
        let Some(url) = self.url_for(message.callback_url.as_deref()) else {
            return;
        };
        let body = serde_json::json!({
            "id": message.id.to_string(),
            "status": status,
            "reason": reason.map(|r| serde_json::json!({"code": r.code, "message": r.text})),
            "to": message.to,
            "parts": message.parts,
            "at": crate::api::views::rfc3339(crate::store::Timestamp::now()),
        });
        let _ = self.notify(WebhookEvent {
            message_id: message.id.to_string(),
            url,
            body: body.to_string().into(),
        });
    }

    /// Queues a callback. Never waits.
    pub fn notify(&self, event: WebhookEvent) -> Result<(), QueueFull> {
        self.tx.try_send(event).map_err(|_| {
            metrics::counter!(crate::metrics::WEBHOOKS, "outcome" => "dropped_queue_full")
                .increment(1);
            QueueFull
        })
    }
}

struct Pending {
    event: WebhookEvent,
    first: Instant,
    attempts: u32,
}

async fn run(
    config: WebhookConfig,
    secret: Option<Vec<u8>>,
    mut rx: mpsc::Receiver<WebhookEvent>,
    cancel: CancellationToken,
) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let secret = secret.map(Arc::<[u8]>::from);
    let mut queues: HashMap<String, VecDeque<Pending>> = HashMap::new();
    // Heads of queues due to be sent, by time.
    let mut due: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
    let mut in_flight: JoinSet<(String, bool)> = JoinSet::new();
    let mut held = 0usize;
    let timeout = Duration::from_millis(config.timeout_ms);
    loop {
        // Start what is due, up to the concurrency limit.
        let now = Instant::now();
        while in_flight.len() < config.concurrency.max(1)
            && due.peek().is_some_and(|Reverse((t, _))| *t <= now)
        {
            let Some(Reverse((_, id))) = due.pop() else {
                break;
            };
            let Some(head) = queues.get_mut(&id).and_then(|q| q.front_mut()) else {
                continue;
            };
            head.attempts += 1;
            let event = head.event.clone();
            let client = client.clone();
            let secret = secret.clone();
            in_flight.spawn(async move {
                let ok = deliver(&client, &event, secret.as_deref(), timeout).await;
                (event.message_id, ok)
            });
        }
        let next = due.peek().map(|Reverse((t, _))| *t);
        let accepting = held < config.max_queued;
        tokio::select! {
            () = cancel.cancelled() => return,
            event = rx.recv(), if accepting => {
                let Some(event) = event else { return };
                held += 1;
                let id = event.message_id.clone();
                let queue = queues.entry(id.clone()).or_default();
                queue.push_back(Pending { event, first: Instant::now(), attempts: 0 });
                if queue.len() == 1 {
                    due.push(Reverse((Instant::now(), id)));
                }
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                let Ok((id, ok)) = done else { continue };
                let now = Instant::now();
                let Some(queue) = queues.get_mut(&id) else { continue };
                let Some(head) = queue.front() else { continue };
                let expired = now.duration_since(head.first) >= Duration::from_secs(config.max_age_secs);
                if ok || expired {
                    metrics::counter!(crate::metrics::WEBHOOKS, "outcome" => if ok { "delivered" } else { "expired" }).increment(1);
                    queue.pop_front();
                    held = held.saturating_sub(1);
                    if queue.is_empty() {
                        queues.remove(&id);
                    } else {
                        due.push(Reverse((now, id)));
                    }
                } else {
                    metrics::counter!(crate::metrics::WEBHOOKS, "outcome" => "retried").increment(1);
                    let step = config
                        .initial_backoff_ms
                        .saturating_mul(1u64 << head.attempts.saturating_sub(1).min(20))
                        .min(config.max_backoff_ms);
                    due.push(Reverse((now + Duration::from_millis(step), id)));
                }
            }
            () = sleep_until_opt(next) => {}
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// One POST; true on a 2xx answer.
async fn deliver(
    client: &Client<HttpConnector, Full<Bytes>>,
    event: &WebhookEvent,
    secret: Option<&[u8]>,
    timeout: Duration,
) -> bool {
    let mut request = hyper::Request::post(event.url.as_str())
        .header("content-type", "application/json")
        .header("user-agent", concat!("smppd/", env!("CARGO_PKG_VERSION")));
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, sign(secret, &event.body));
    }
    let Ok(request) = request.body(Full::new(event.body.clone())) else {
        return false;
    };
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => response.status().is_success(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_rfc_4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &sign(b"Jefe", b"what do ya want for nothing?")
        ));
        assert!(!verify(
            b"Jefe",
            b"what do ya want for something?",
            &sign(b"Jefe", b"what do ya want for nothing?")
        ));
    }
}
