//! The control listener: observe and steer a running simulator over HTTP.
//!
//! | route | what |
//! |---|---|
//! | `GET /stats` | counters as JSON ([`crate::StatsSnapshot`]) |
//! | `GET /messages?to=&limit=` | the handset view as JSON |
//! | `DELETE /messages` | forget the handset view |
//! | `GET /faults?account=ID` | an account's faults |
//! | `POST /faults` | `{"account": ID, ...fields}`: change only the fields given |
//! | `POST /mo` | `{"account": ID, "from": NUMBER, "to": ADDR, "text": TEXT}` |
//! | `POST /raw` | `{"account": ID, "hex": OCTETS}`: write raw octets on one bind |
//! | `GET /metrics` | Prometheus text (`smsc_sim_*`) |

use std::future::Future;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::config::Faults;
use crate::{SimError, SimHandle};

/// Serves the control routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    handle: SimHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(handle))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The control routes, for mounting elsewhere.
pub fn router(handle: SimHandle) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route("/messages", get(messages).delete(clear_messages))
        .route("/faults", get(get_faults).post(post_faults))
        .route("/mo", axum::routing::post(post_mo))
        .route("/raw", axum::routing::post(post_raw))
        .route("/metrics", get(metrics))
        .with_state(handle)
}

fn error(status: StatusCode, code: &str, message: impl ToString) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.to_string() } })),
    )
        .into_response()
}

fn sim_error(e: SimError) -> Response {
    let (status, code) = match &e {
        SimError::UnknownAccount(_) => (StatusCode::NOT_FOUND, "unknown_account"),
        SimError::NotBound(_) => (StatusCode::CONFLICT, "not_bound"),
        SimError::Config(_) => (StatusCode::BAD_REQUEST, "invalid_faults"),
        SimError::Text(_) => (StatusCode::BAD_REQUEST, "invalid_text"),
        SimError::Tls(_) => (StatusCode::INTERNAL_SERVER_ERROR, "tls"),
    };
    error(status, code, e)
}

async fn stats(State(handle): State<SimHandle>) -> Json<crate::StatsSnapshot> {
    Json(handle.stats())
}

async fn metrics(State(handle): State<SimHandle>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle.stats().prometheus(),
    )
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: Option<String>,
    limit: Option<usize>,
}

async fn messages(State(handle): State<SimHandle>, Query(q): Query<MessagesQuery>) -> Response {
    let list = handle.messages(q.to.as_deref(), q.limit.unwrap_or(1000));
    Json(list).into_response()
}

async fn clear_messages(State(handle): State<SimHandle>) -> StatusCode {
    handle.clear_messages();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct AccountQuery {
    account: String,
}

async fn get_faults(State(handle): State<SimHandle>, Query(q): Query<AccountQuery>) -> Response {
    match handle.faults(&q.account) {
        Ok(f) => Json(f).into_response(),
        Err(e) => sim_error(e),
    }
}

/// Merges the given fields into the account's current faults, so a request can change one
/// thing (`{"account": "esme", "stall": true}`) and leave the rest.
async fn post_faults(State(handle): State<SimHandle>, Json(body): Json<Value>) -> Response {
    let Value::Object(mut fields) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected a JSON object",
        );
    };
    let Some(Value::String(account)) = fields.remove("account") else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "\"account\" is required",
        );
    };
    let current = match handle.faults(&account) {
        Ok(f) => f,
        Err(e) => return sim_error(e),
    };
    let Ok(Value::Object(mut merged)) = serde_json::to_value(current) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "faults do not serialize",
        );
    };
    // An outage restarts only when the request names it; otherwise changing, say, the
    // latency would refuse binds again for the whole period.
    let restart_outage = fields.contains_key("refuse_binds_secs");
    merged.extend(fields);
    let faults: Faults = match serde_json::from_value(Value::Object(merged)) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_faults", e),
    };
    match handle.apply_faults(&account, faults.clone(), restart_outage) {
        Ok(()) => Json(faults).into_response(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoRequest {
    account: String,
    from: String,
    to: String,
    text: String,
}

async fn post_mo(State(handle): State<SimHandle>, Json(mo): Json<MoRequest>) -> Response {
    match handle.inject_mo(&mo.account, &mo.from, &mo.to, &mo.text) {
        Ok(parts) => (StatusCode::ACCEPTED, Json(json!({ "parts": parts }))).into_response(),
        Err(e) => sim_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    account: String,
    hex: String,
}

async fn post_raw(State(handle): State<SimHandle>, Json(raw): Json<RawRequest>) -> Response {
    let octets = match smppd::pdu::hex::decode(&raw.hex) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_hex", e),
    };
    match handle.inject_raw(&raw.account, octets.into()) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => sim_error(e),
    }
}
