//! Following accepted messages to their final state by polling `GET /messages/{id}`.
//!
//! Rounds: every pending id is asked once (over a few connections), the final ones are
//! counted, and the rest are asked again after a pause, until none is pending or the settle
//! time is over. The latencies are the engine's own: `created_at` to `updated_at` (to the
//! final state), and `created_at` to the `ended_at` of the attempt the carrier accepted (to
//! its last submit_sm_resp).

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

use super::client::Endpoint;
use super::histogram::Histogram;
use super::summary::FinalStates;
use crate::api::views::parse_time;

/// Pause between rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(borrow)]
    updated_at: Cow<'a, str>,
    #[serde(borrow, default, rename = "attempt_details")]
    attempts: Vec<AttemptView<'a>>,
}

#[derive(Deserialize)]
struct AttemptView<'a> {
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    ended_at: Cow<'a, str>,
}

/// What one look at a message found.
enum Look {
    Final {
        state: String,
        latency_ms: Option<i64>,
        /// To the last submit_sm_resp of the accepted attempt, if one was.
        submit_ms: Option<i64>,
    },
    Pending(String),
    Missing,
    /// No answer or an unreadable one: ask again next round.
    Unanswered,
}

fn read(status: StatusCode, body: &Bytes) -> Look {
    if status == StatusCode::NOT_FOUND {
        return Look::Missing;
    }
    if status != StatusCode::OK {
        return Look::Unanswered;
    }
    let Ok(view) = serde_json::from_slice::<View<'_>>(body) else {
        return Look::Unanswered;
    };
    let mut probe = FinalStates::default();
    if probe.count(&view.status) {
        let created = parse_time(&view.created_at);
        let since_created = |t: &str| Some(parse_time(t)?.as_millis() - created?.as_millis());
        let latency_ms = since_created(&view.updated_at);
        let submit_ms = view
            .attempts
            .iter()
            .rev()
            .find(|a| a.outcome == "accepted")
            .and_then(|a| since_created(&a.ended_at));
        Look::Final {
            state: view.status.into_owned(),
            latency_ms,
            submit_ms,
        }
    } else {
        Look::Pending(view.status.into_owned())
    }
}

/// Asks about each of `ids` once over one connection.
async fn look_at(endpoint: Endpoint, ids: Vec<String>) -> Vec<(String, Look)> {
    let mut out = Vec::with_capacity(ids.len());
    let mut connection = None;
    for id in ids {
        let conn = match connection.as_mut() {
            Some(c) => c,
            None => match endpoint.connect().await {
                Ok(c) => connection.insert(c),
                Err(_) => {
                    out.push((id, Look::Unanswered));
                    continue;
                }
            },
        };
        let path = format!("/messages/{id}");
        let look = match endpoint.send(conn, Method::GET, &path, Bytes::new()).await {
            Ok((status, body)) => read(status, &body),
            Err(_) => {
                connection = None;
                Look::Unanswered
            }
        };
        out.push((id, look));
    }
    out
}

/// Follows `ids` until all are final or `settle` has passed (one round at least), over up to
/// `parallel` connections.
pub(crate) async fn follow(
    endpoint: &Endpoint,
    ids: Vec<String>,
    settle: Duration,
    parallel: usize,
) -> FinalStates {
    let started = Instant::now();
    let deadline = started + settle;
    let mut states = FinalStates {
        tracked: ids.len() as u64,
        ..FinalStates::default()
    };
    let mut latency = Histogram::new();
    let mut submit = Histogram::new();
    let mut pending = ids;
    let mut last_pending_states = Vec::new();
    // Bounded by the deadline; the round cap is a second guard should the clock misbehave.
    for _round in 0..100_000 {
        let chunk = pending.len().div_ceil(parallel.max(1)).max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for ids in pending.chunks(chunk) {
            tasks.spawn(look_at(endpoint.clone(), ids.to_vec()));
        }
        let mut still = Vec::new();
        last_pending_states.clear();
        while let Some(done) = tasks.join_next().await {
            let Ok(looks) = done else { continue };
            for (id, look) in looks {
                match look {
                    Look::Final {
                        state,
                        latency_ms,
                        submit_ms,
                    } => {
                        states.count(&state);
                        for (histogram, ms) in
                            [(&mut latency, latency_ms), (&mut submit, submit_ms)]
                        {
                            if let Some(ms) = ms {
                                let us = u64::try_from(ms).unwrap_or(0).saturating_mul(1000);
                                histogram.record(us);
                            }
                        }
                    }
                    Look::Missing => states.missing += 1,
                    Look::Pending(state) => {
                        last_pending_states.push(state);
                        still.push(id);
                    }
                    Look::Unanswered => {
                        last_pending_states.push("unanswered".into());
                        still.push(id);
                    }
                }
            }
        }
        pending = still;
        let now = Instant::now();
        if pending.is_empty() || now >= deadline {
            break;
        }
        tokio::time::sleep(ROUND_PAUSE.min(deadline - now)).await;
    }
    states.pending = pending.len() as u64;
    for state in last_pending_states {
        *states.pending_by_state.entry(state).or_default() += 1;
    }
    states.waited_secs = started.elapsed().as_secs_f64();
    states.latency_ms = latency.percentiles_ms();
    states.submit_latency_ms = submit.percentiles_ms();
    states
}
