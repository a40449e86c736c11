//! The HTTP routes of the submit socket (axum), on TCP and optionally a Unix socket.
//!
//! Every request but `/healthz` carries an API key (`Authorization: Bearer KEY` or
//! `X-Api-Key: KEY`); a `send` key may submit and read messages, an `admin` key may also manage
//! suppressions. Each key has its own rate limit (429 with Retry-After); a store that cannot
//! keep up answers 503 with Retry-After. A 202 means the message is committed (DESIGN
//! promise 1).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::error::ApiError;
use super::request::{Batch, Body};
use super::validate::{self, Limits, ValidMessage};
use super::views;
use crate::store::{
    AcceptOutcome, FinalState, ListQuery, MAX_BATCH, MessageId, MessageState, NewMessage, Priority,
    Reason, Store, StoreError, Suppression, SuppressionSource, Timestamp, Update, UpdateOutcome,
};

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Submit messages, read them, send feedback, cancel.
    Send,
    /// Everything, suppressions included.
    Admin,
}

/// One API key (`[[api.keys]]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and metrics, and the namespace of this producer's idempotency keys.
    pub name: String,
    /// The key itself; `env:NAME` reads it from the environment.
    pub key: String,
    /// `send` or `admin`. Default `send`.
    #[serde(default = "default_scope")]
    pub scope: Scope,
    /// Requests per second allowed (bursts up to one second's worth); 0 for no limit.
    /// Default 0.
    #[serde(default)]
    pub rate_per_sec: u32,
}

fn default_scope() -> Scope {
    Scope::Send
}

struct Key {
    name: String,
    scope: Scope,
    limiter: Option<DefaultDirectRateLimiter>,
}

/// What the routes share.
pub struct ApiState {
    store: Arc<dyn Store>,
    limits: Limits,
    keys: HashMap<String, Key>,
    ready: Arc<dyn Fn() -> bool + Send + Sync>,
    wake: Arc<Notify>,
}

impl ApiState {
    /// `keys` are (resolved key, config); `ready` says whether a carrier is bound (for
    /// `/readyz`); `wake` is notified after every accepted message (the dispatcher waits on
    /// it).
    pub fn new(
        store: Arc<dyn Store>,
        limits: Limits,
        keys: Vec<(String, ApiKeyConfig)>,
        ready: Arc<dyn Fn() -> bool + Send + Sync>,
        wake: Arc<Notify>,
    ) -> ApiState {
        let keys = keys
            .into_iter()
            .map(|(secret, config)| {
                let limiter = NonZeroU32::new(config.rate_per_sec)
                    .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
                (
                    secret,
                    Key {
                        name: config.name,
                        scope: config.scope,
                        limiter,
                    },
                )
            })
            .collect();
        ApiState {
            store,
            limits,
            keys,
            ready,
            wake,
        }
    }
}

type Shared = Arc<ApiState>;

/// The routes, with the body limit applied.
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/messages", post(submit).get(list))
        .route("/messages/batch", post(submit_batch))
        .route("/messages/{id}", get(get_message).delete(cancel))
        .route("/messages/{id}/feedback", post(feedback))
        .route(
            "/suppressions/{number}",
            get(get_suppression)
                .put(put_suppression)
                .delete(delete_suppression),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::new(state))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(crate::metrics::MESSAGES_REJECTED, "code" => self.code).increment(1);
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert("retry-after", v);
        }
        response
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Backlogged { .. } => ApiError::new(
            503,
            "overloaded",
            "the engine is busy storing messages; try again shortly",
        )
        .retry_after(1),
        other => {
            tracing::error!(error = %other, "store failed");
            ApiError::new(503, "store_unavailable", "the message store is unavailable")
                .retry_after(5)
        }
    }
}

/// Checks the API key and its rate limit; returns the key's name.
fn authorize(state: &ApiState, headers: &HeaderMap, need: Scope) -> Result<String, ApiError> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(presented) = presented else {
        return Err(ApiError::new(
            401,
            "missing_api_key",
            "send an API key: Authorization: Bearer KEY",
        ));
    };
    let Some(key) = state.keys.get(presented.trim()) else {
        return Err(ApiError::new(
            401,
            "invalid_api_key",
            "the API key is not valid",
        ));
    };
    if need == Scope::Admin && key.scope != Scope::Admin {
        return Err(ApiError::new(403, "forbidden", "this needs an admin key"));
    }
    if let Some(limiter) = &key.limiter
        && limiter.check().is_err()
    {
        return Err(
            ApiError::new(429, "rate_limited", "too many requests for this API key").retry_after(1),
        );
    }
    Ok(key.name.clone())
}

/// The request body, or why it could not be read: 413 `body_too_large` over
/// `api.max_body_bytes`.
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                413,
                "body_too_large",
                "the request body is larger than the API takes (api.max_body_bytes)",
            )
        } else {
            ApiError::bad_request(
                "invalid_request",
                "",
                format!("the body could not be read: {}", e.body_text()),
            )
        }
    })
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            "",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

fn new_message(m: ValidMessage, producer: &str) -> NewMessage {
    let now = Timestamp::now();
    NewMessage {
        // Idempotency keys are per producer.
        idempotency_key: m.id.map(|id| format!("{producer}:{id}")),
        to: m.to,
        from: m.from.addr,
        body: m.body,
        encoding: m.plan.encoding,
        parts: u16::from(m.plan.parts),
        priority: Priority::new(m.priority).unwrap_or_default(),
        expires_at: now.saturating_add(Duration::from_secs(m.ttl_secs)),
        not_before: None,
        callback_url: m.callback_url,
        carrier: m.carrier,
        tags: (!m.tags.is_empty()).then(|| Value::Object(m.tags).to_string()),
    }
}

/// The answer for one accepted message.
#[derive(Serialize)]
struct AcceptedBody {
    /// The item's position, in a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: String,
    status: &'static str,
    parts: u16,
    encoding: &'static str,
    duplicate: bool,
}

/// One item's answer in a batch: accepted, or refused with its error.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchItem {
    Accepted(AcceptedBody),
    Refused { index: usize, error: ApiError },
}

/// The answer for one accepted message, given the parts and encoding it was priced at. A
/// duplicate is answered with the original message as stored (its status now, its parts and
/// encoding), not with what the repeat asked for.
async fn accepted_body(
    store: &dyn Store,
    outcome: &AcceptOutcome,
    (parts, encoding): (u16, crate::sms::Encoding),
) -> Result<AcceptedBody, ApiError> {
    match outcome {
        AcceptOutcome::Inserted(id) => Ok(AcceptedBody {
            index: None,
            id: id.to_string(),
            status: "accepted",
            parts,
            encoding: super::encoding_name(encoding),
            duplicate: false,
        }),
        AcceptOutcome::Duplicate(id) => {
            let original = match store.get(*id).await {
                Ok(Some(detail)) => Some(detail.message),
                // Unreadable just now: the id is what matters.
                _ => None,
            };
            Ok(AcceptedBody {
                index: None,
                id: id.to_string(),
                status: original.as_ref().map_or("accepted", |o| o.state.as_str()),
                parts: original.as_ref().map_or(parts, |o| o.parts),
                encoding: super::encoding_name(original.as_ref().map_or(encoding, |o| o.encoding)),
                duplicate: true,
            })
        }
        AcceptOutcome::Suppressed(s) => Err(suppressed(s)),
    }
}

fn suppressed(s: &Suppression) -> ApiError {
    ApiError {
        status: 422,
        code: "suppressed",
        message: format!(
            "{} opted out ({}): {}",
            s.number,
            s.source.as_str(),
            s.reason
        ),
        field: Some("to".into()),
        retry_after: None,
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Shared>) -> Response {
    let store = state.store.writable().await.is_ok();
    let bound = (state.ready)();
    let status = if store && bound {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "store_writable": store, "carrier_bound": bound })),
    )
        .into_response()
}

async fn submit(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let producer = authorize(&state, &headers, Scope::Send)?;
    let body = read_body(body)?;
    let request: Body<'_> = parse_json(&body)?;
    let valid = validate::message(&request, &state.limits)?;
    let message = new_message(valid, &producer);
    let priced = (message.parts, message.encoding);
    let outcomes = state
        .store
        .accept(vec![message])
        .await
        .map_err(store_error)?;
    let outcome = outcomes
        .first()
        .ok_or_else(|| ApiError::new(500, "internal", "the store answered nothing"))?;
    let body = accepted_body(&*state.store, outcome, priced).await?;
    if matches!(outcome, AcceptOutcome::Inserted(_)) {
        metrics::counter!(crate::metrics::MESSAGES_ACCEPTED).increment(1);
        state.wake.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn submit_batch(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let producer = authorize(&state, &headers, Scope::Send)?;
    let body = read_body(body)?;
    let batch: Batch<'_> = parse_json(&body)?;
    let Some(items) = batch.messages else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "messages",
            "expected {\"messages\": [...]}",
        ));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch_size",
            "messages",
            format!("a batch holds 1 to {MAX_BATCH} messages"),
        ));
    }
    // Check every item first; the valid ones go to the store in one commit.
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    // (index, parts, encoding) of each valid item, in the order they go to the store.
    let mut priced = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match validate::message(item, &state.limits) {
            Ok(m) => {
                let m = new_message(m, &producer);
                priced.push((index, m.parts, m.encoding));
                valid.push(m);
                results.push(None);
            }
            Err(error) => results.push(Some(BatchItem::Refused { index, error })),
        }
    }
    let mut accepted = 0;
    if !valid.is_empty() {
        let outcomes = state.store.accept(valid).await.map_err(store_error)?;
        let mut inserted = 0;
        for (&(index, parts, encoding), outcome) in priced.iter().zip(&outcomes) {
            results[index] = Some(
                match accepted_body(&*state.store, outcome, (parts, encoding)).await {
                    Ok(body) => {
                        accepted += 1;
                        BatchItem::Accepted(AcceptedBody {
                            index: Some(index),
                            ..body
                        })
                    }
                    Err(error) => BatchItem::Refused { index, error },
                },
            );
            inserted += u64::from(matches!(outcome, AcceptOutcome::Inserted(_)));
        }
        if inserted > 0 {
            metrics::counter!(crate::metrics::MESSAGES_ACCEPTED).increment(inserted);
            state.wake.notify_one();
        }
    }
    Ok((
        StatusCode::OK,
        Json(BatchAnswer {
            accepted,
            rejected: results.len() - accepted,
            results,
        }),
    )
        .into_response())
}

/// The answer to a batch: counts, and one result per item in input order (`null` only for
/// an item the store gave no answer for).
#[derive(Serialize)]
struct BatchAnswer {
    accepted: usize,
    rejected: usize,
    results: Vec<Option<BatchItem>>,
}

fn message_id(text: &str) -> Result<MessageId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(404, "not_found", format!("no message {text:?}")))
}

async fn get_message(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Send)?;
    let id = message_id(&id)?;
    match state.store.get(id).await.map_err(store_error)? {
        Some(detail) => Ok(Json(views::message_detail(&detail)).into_response()),
        None => Err(ApiError::new(404, "not_found", format!("no message {id}"))),
    }
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    to: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Send)?;
    let status = match p.status.as_deref() {
        Some(s) => Some(s.parse::<MessageState>().map_err(|_| {
            ApiError::bad_request("invalid_status", "status", format!("unknown status {s:?}"))
        })?),
        None => None,
    };
    let to = match p.to.as_deref() {
        Some(to) => Some(validate::destination(to)?),
        None => None,
    };
    let since = match p.since.as_deref() {
        Some(s) => Some(views::parse_time(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_since",
                "since",
                "expected RFC 3339 or Unix seconds",
            )
        })?),
        None => None,
    };
    let cursor = match p.cursor.as_deref() {
        Some(c) => Some(crate::store::Cursor::parse(c).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "cursor", "not a cursor from this API")
        })?),
        None => None,
    };
    let limit = p.limit.unwrap_or(100).clamp(1, crate::store::MAX_PAGE);
    let page = state
        .store
        .list(ListQuery {
            state: status,
            to,
            since,
            cursor,
            limit,
        })
        .await
        .map_err(store_error)?;
    let messages: Vec<Value> = page.messages.iter().map(views::message_summary).collect();
    Ok(Json(json!({
        "messages": messages,
        "next_cursor": page.next.map(|c| c.to_string()),
    }))
    .into_response())
}

fn outcome_response(outcome: Option<&UpdateOutcome>, id: MessageId) -> Result<Response, ApiError> {
    match outcome {
        Some(UpdateOutcome::NotFound) | None => {
            Err(ApiError::new(404, "not_found", format!("no message {id}")))
        }
        Some(UpdateOutcome::NotAllowed { state, .. }) => Err(ApiError::new(
            409,
            "invalid_state",
            format!("the message is {state}; this is not possible any more"),
        )),
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn cancel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Send)?;
    let id = message_id(&id)?;
    let outcomes = state
        .store
        .apply(vec![Update::Cancel {
            id,
            reason: Reason::new("cancelled", "cancelled by the producer"),
        }])
        .await
        .map_err(store_error)?;
    outcome_response(outcomes.first(), id)
}

async fn feedback(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Send)?;
    let id = message_id(&id)?;
    let value: Value = parse_json(&read_body(body)?)?;
    match value.get("status").and_then(Value::as_str) {
        Some("delivered") => {}
        _ => {
            return Err(ApiError::bad_request(
                "invalid_feedback",
                "status",
                "feedback is {\"status\": \"delivered\"}",
            ));
        }
    }
    let outcomes = state
        .store
        .apply(vec![Update::Finish {
            id,
            state: FinalState::Delivered,
            reason: Reason::new("feedback", "the producer saw the user act on it"),
        }])
        .await
        .map_err(store_error)?;
    outcome_response(outcomes.first(), id)
}

async fn get_suppression(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let number = validate::destination(&number)?;
    match state
        .store
        .get_suppression(number.clone())
        .await
        .map_err(store_error)?
    {
        Some(s) => Ok(Json(views::suppression(&s)).into_response()),
        None => Err(ApiError::new(
            404,
            "not_found",
            format!("{number} is not suppressed"),
        )),
    }
}

async fn put_suppression(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(number): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let number = validate::destination(&number)?;
    let body = read_body(body)?;
    let reason = if body.is_empty() {
        "added through the API".to_owned()
    } else {
        match parse_json::<Value>(&body)?.get("reason") {
            Some(Value::String(r)) if r.len() <= 256 => r.clone(),
            None => "added through the API".to_owned(),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_reason",
                    "reason",
                    "a string of at most 256 characters",
                ));
            }
        }
    };
    let s = state
        .store
        .put_suppression(number, reason, SuppressionSource::Api)
        .await
        .map_err(store_error)?;
    Ok(Json(views::suppression(&s)).into_response())
}

async fn delete_suppression(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let number = validate::destination(&number)?;
    if state
        .store
        .delete_suppression(number.clone())
        .await
        .map_err(store_error)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            404,
            "not_found",
            format!("{number} is not suppressed"),
        ))
    }
}
