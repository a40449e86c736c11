//! The engine assembled: store, carriers, dispatcher, receipts, webhooks, API, metrics, and
//! their shutdown in order (stop intake -> drain windows -> unbind -> close -> flush).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::server::{ApiState, router};
use crate::carrier::{CarrierEvent, CarrierPool, PoolOptions};
use crate::config::Config;
use crate::dispatch::dispatcher::{CarrierEntry, Dispatcher};
use crate::dispatch::policy::InDoubtPolicy;
use crate::receipts::{self, Inbound};
use crate::routing::Router;
use crate::store::{Reason, SqliteStore, Store, StoreError, Timestamp, Update};
use crate::webhook::Webhooks;

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running engine.
pub struct Engine {
    /// Where the submit socket listens.
    pub api_addr: SocketAddr,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The carriers.
    pub carriers: Vec<Arc<CarrierEntry>>,
    intake: CancellationToken,
    work: CancellationToken,
    tracker: TaskTracker,
    api_task: tokio::task::JoinHandle<()>,
    grace: Duration,
}

impl Engine {
    /// Starts everything. `api_listener` overrides `api.listen` (tests pass one bound to
    /// port 0).
    pub async fn start(
        config: Config,
        api_listener: Option<TcpListener>,
    ) -> Result<Engine, EngineError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(config.store.clone()).await?);
        let tracker = TaskTracker::new();
        let work = CancellationToken::new();
        let intake = CancellationToken::new();

        // Messages may name their own callback_url, so the queue always runs.
        let (webhooks, _webhook_task) = Webhooks::start(
            config.webhook.clone(),
            config.webhook_secret.clone(),
            work.clone(),
        );
        let webhooks = Some(webhooks);
        let receipt_scan = Duration::from_millis(config.dispatch.receipt_scan_ms.max(1));

        let (inbound_tx, inbound_rx) = mpsc::channel(4096);
        let mut carriers = Vec::new();
        let mut carrier_events = Vec::new();
        for (spec, options) in config.carriers.iter().cloned() {
            let (pool, events) = CarrierPool::start(
                spec,
                PoolOptions::new(Some(inbound_tx.clone())),
                &tracker,
                &work,
            );
            carrier_events.push((pool.name().to_string(), events));
            carriers.push(Arc::new(CarrierEntry::new(pool, options)));
        }
        drop(inbound_tx);

        recover(&*store, &carriers, &config.router).await;

        let wake = Arc::new(Notify::new());
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            carriers.clone(),
            config.router.clone(),
            webhooks.clone(),
            wake.clone(),
            config.dispatch.clone(),
        ));
        for (name, events) in carrier_events {
            tracker.spawn(watch_events(name, events, dispatcher.clone(), work.clone()));
        }
        tracker.spawn(dispatcher.clone().run(tracker.clone(), intake.clone()));
        tracker.spawn(
            Inbound::new(
                store.clone(),
                &carriers,
                config.mo.clone(),
                webhooks.clone(),
            )
            .run(inbound_rx, work.clone()),
        );
        tracker.spawn(receipts::expire_overdue(
            store.clone(),
            carriers.clone(),
            webhooks,
            receipt_scan,
            work.clone(),
        ));
        tracker.spawn(prune(store.clone(), work.clone()));
        tracker.spawn(queue_gauges(store.clone(), work.clone()));

        let ready_carriers = carriers.clone();
        let state = ApiState::new(
            store.clone(),
            config.limits.clone(),
            config.api_keys.clone(),
            Arc::new(move || ready_carriers.iter().any(|c| c.pool.binds_up() > 0)),
            wake,
        );
        let listener = match api_listener {
            Some(l) => l,
            None => TcpListener::bind(config.api_listen)
                .await
                .map_err(|source| EngineError::Listen {
                    addr: config.api_listen.to_string(),
                    source,
                })?,
        };
        let api_addr = listener
            .local_addr()
            .map_err(|source| EngineError::Listen {
                addr: config.api_listen.to_string(),
                source,
            })?;
        let app = router(state, config.max_body_bytes);
        if let Some(path) = &config.api_unix_socket {
            let _ = std::fs::remove_file(path);
            let unix =
                tokio::net::UnixListener::bind(path).map_err(|source| EngineError::Listen {
                    addr: path.display().to_string(),
                    source,
                })?;
            let app = app.clone();
            let stop = intake.clone();
            tracker.spawn(async move {
                let _ = axum::serve(unix, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            });
        }
        let stop = intake.clone();
        let api_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        tracker.close();
        Ok(Engine {
            api_addr,
            store,
            carriers,
            intake,
            work,
            tracker,
            api_task,
            grace: config.shutdown_grace,
        })
    }

    /// Stops in order: intake, then the dispatcher, then the carriers drain their windows and
    /// unbind (up to the grace period), then everything else; the store is flushed when the
    /// last reference drops.
    pub async fn shutdown(self) {
        self.intake.cancel();
        let _ = self.api_task.await;
        for c in &self.carriers {
            c.pool.shutdown(self.grace).await;
        }
        self.work.cancel();
        let _ =
            tokio::time::timeout(self.grace + Duration::from_secs(5), self.tracker.wait()).await;
    }
}

/// Logs what happens on a carrier outside any one message, and hands late responses to the
/// dispatcher.
async fn watch_events(
    carrier: String,
    mut events: mpsc::Receiver<CarrierEvent>,
    dispatcher: Arc<Dispatcher>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            CarrierEvent::AuthFailed { status, .. } => {
                tracing::error!(carrier, %status, "the SMSC refused the credentials; the carrier is halted");
            }
            CarrierEvent::BindDown { reason, .. } => {
                tracing::info!(carrier, reason = reason.as_str(), "bind down")
            }
            CarrierEvent::BindUp { .. } => tracing::info!(carrier, "bind up"),
            CarrierEvent::Breaker { transition, .. } => {
                tracing::warn!(carrier, ?transition, "breaker")
            }
            CarrierEvent::LateResponse {
                reference,
                part,
                outcome,
                ..
            } => dispatcher.late_response(reference, part, outcome).await,
        }
    }
}

/// Restart recovery: messages left `submitting` are in doubt; each follows its carrier's
/// policy (resubmit, counted; wait for a receipt; or fail).
///
/// Every one of them is in doubt, whatever its parts say: parts are recorded only once every
/// response of an attempt is in, so a first attempt whose submit_sm went out just before the
/// stop has no trace of it in the store. Counting a message that never went out as an in-doubt
/// resubmit only overstates the possible duplicates; not counting one that did would hide one.
async fn recover(store: &dyn Store, carriers: &[Arc<CarrierEntry>], router: &Router) {
    let Ok(recovery) = store.recover().await else {
        tracing::error!("reading what to recover failed");
        return;
    };
    let mut updates = Vec::new();
    for detail in recovery.in_doubt {
        let id = detail.message.id;
        // The carrier it was last sent to, else the one it must go to; with no trace of
        // either, it may have gone to any carrier of its route: the strictest of theirs.
        let known = detail
            .parts
            .first()
            .map(|p| p.carrier.as_str())
            .or_else(|| detail.attempts.last().map(|a| a.attempt.carrier.as_str()))
            .or(detail.message.carrier.as_deref())
            .and_then(|name| carriers.iter().find(|c| c.name() == name));
        let policy = match known {
            Some(c) => c.options.in_doubt,
            None => router
                .candidates(&detail.message.to, 0)
                .into_iter()
                .filter_map(|i| carriers.get(i))
                .map(|c| c.options.in_doubt)
                .max_by_key(|p| strictness(*p))
                .unwrap_or_default(),
        };
        match policy {
            InDoubtPolicy::Fail => updates.push(Update::Finish {
                id,
                state: crate::store::FinalState::Failed,
                reason: Reason::new(
                    "in_doubt",
                    "the engine stopped while the submit was unanswered",
                ),
            }),
            // The dispatcher counts the resubmit after the wait (the reason says in doubt).
            InDoubtPolicy::WaitForReceipt { wait_secs } => updates.push(Update::ScheduleRetry {
                id,
                at: Timestamp::now().saturating_add(Duration::from_secs(wait_secs)),
                reason: Reason::new("in_doubt", "waiting for a receipt after a restart"),
            }),
            InDoubtPolicy::Resubmit => {
                updates.push(Update::InDoubtResubmit { id });
                updates.push(Update::Release {
                    id,
                    at: Timestamp::now(),
                });
            }
        }
    }
    if !updates.is_empty() {
        tracing::warn!(
            updates = updates.len(),
            "messages were being submitted when the engine stopped: in doubt"
        );
    }
    for chunk in updates.chunks(crate::store::MAX_BATCH) {
        if let Err(e) = store.apply(chunk.to_vec()).await {
            tracing::error!(error = %e, "recovering in-doubt messages failed");
        }
    }
}

/// How far an in-doubt policy goes to avoid a duplicate: fail, then wait, then resubmit.
fn strictness(policy: InDoubtPolicy) -> u8 {
    match policy {
        InDoubtPolicy::Resubmit => 0,
        InDoubtPolicy::WaitForReceipt { .. } => 1,
        InDoubtPolicy::Fail => 2,
    }
}

/// Publishes the number of messages in each state, every five seconds.
async fn queue_gauges(store: Arc<dyn Store>, cancel: CancellationToken) {
    loop {
        if let Ok(counts) = store.counts().await {
            for (state, n) in counts.iter() {
                metrics::gauge!(crate::metrics::MESSAGES, "state" => state.as_str()).set(n as f64);
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Prunes finished messages past their retention, every minute.
async fn prune(store: Arc<dyn Store>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        let _ = store.prune().await;
    }
}
