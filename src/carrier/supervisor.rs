//! One bind slot's supervisor: connect, bind, run the driver, and after it ends decide whether
//! and when to try again.
//!
//! - Connection and bind failures back off exponentially with jitter; a bind that stayed up
//!   long enough starts the backoff over.
//! - ESME_RALYBND (the SMSC still holds our previous session) waits at least
//!   `reconnect.already_bound_ms`.
//! - ESME_RINVPASWD, ESME_RINVSYSID and ESME_RINVSYSTYP halt every slot of the carrier and
//!   raise the alarm (metric + error log): retrying with the same credentials only gets the
//!   account locked. [`super::CarrierPool::resume`] lifts the halt.
//! - While not bound, messages that reach the slot anyway are answered
//!   [`PartOutcome::NotSent`] at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::bind::{BindShared, BindState, SlotObserver, Tally};
use super::{CarrierEvent, PoolShared};
use crate::conn::{self, NotSentReason, PartOutcome, SubmitCommand};
use crate::metrics as m;
use crate::pdu::CommandStatus;
use crate::session::{CloseReason, Session};

/// How one attempt ended.
enum Attempt {
    /// TCP connect or TLS handshake failed.
    ConnectFailed(&'static str),
    /// The driver ran and ended.
    Ran(conn::Exit),
    /// Shutdown came first.
    Cancelled,
}

/// True for the refusals that retrying cannot fix.
fn is_auth_failure(status: CommandStatus) -> bool {
    matches!(
        status,
        CommandStatus::ESME_RINVPASWD
            | CommandStatus::ESME_RINVSYSID
            | CommandStatus::ESME_RINVSYSTYP
    )
}

/// Answers a message the slot cannot send with NotSent for every part.
pub(crate) fn refuse(pool: &PoolShared, bind: &BindShared, command: SubmitCommand) {
    let n = command.parts.len();
    let outcomes = vec![PartOutcome::NotSent(NotSentReason::NotBound); n];
    let _ = command.reply.send(outcomes);
    SlotObserver::apply(
        pool,
        bind,
        Instant::now(),
        &Tally {
            released: n,
            neutral: n as u32,
            ..Tally::default()
        },
    );
}

pub(crate) async fn supervise(
    pool: Arc<PoolShared>,
    bind: Arc<BindShared>,
    mut submits: mpsc::Receiver<SubmitCommand>,
) {
    let spec = &pool.spec;
    let slot = &spec.slots[bind.slot];
    let mut backoff = Backoff::new(spec.reconnect, bind.slot as u64 + 1);
    let mut host = bind.slot % spec.hosts.len();
    let mut observer = SlotObserver {
        pool: pool.clone(),
        bind: bind.clone(),
        tally: Tally::default(),
    };
    let stable_after = Duration::from_millis(spec.reconnect.stable_after_ms);
    loop {
        if pool.shutdown.graceful.is_cancelled() {
            break;
        }
        if pool.is_halted() {
            bind.set_state(BindState::Stopped);
            // Wait for resume or shutdown, refusing what arrives meanwhile.
            tokio::select! {
                () = pool.shutdown.graceful.cancelled() => break,
                () = pool.resumed.notified() => continue,
                Some(command) = submits.recv() => {
                    refuse(&pool, &bind, command);
                    continue;
                }
            }
        }
        if bind
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            bind.metrics.reconnects.increment(1);
        }
        bind.set_state(BindState::Connecting);
        let (host_name, port) = &spec.hosts[host];
        let attempt =
            connect_and_run(&pool, &bind, host_name, *port, &mut submits, &mut observer).await;
        let was_bound = bind.state() == BindState::Bound || bind.state() == BindState::Unbinding;
        bind.set_state(BindState::Disconnected);
        if was_bound {
            pool.bound_changed();
        }
        let mut delay = None;
        // A bound bind that died: one failure for the breakers.
        let mut lost = false;
        let failure: Option<String> = match attempt {
            Attempt::Cancelled => break,
            Attempt::ConnectFailed(kind) => {
                host = (host + 1) % spec.hosts.len();
                Some(kind.to_owned())
            }
            Attempt::Ran(exit) => {
                bind.lock_health().last_close = Some(exit.reason);
                if exit.bound_for.is_some_and(|d| d >= stable_after) {
                    backoff.reset();
                }
                if exit.bound_for.is_some() {
                    tracing::info!(
                        carrier = %pool.name, bind = %bind.name, reason = exit.reason.as_str(),
                        "bind closed"
                    );
                    pool.event(CarrierEvent::BindDown {
                        bind: bind.id(),
                        reason: exit.reason,
                    });
                }
                match exit.reason {
                    CloseReason::BindRefused(status) => {
                        if is_auth_failure(status) {
                            pool.halt(&bind, status);
                        } else if status == CommandStatus::ESME_RALYBND {
                            delay = Some(backoff.already_bound_delay());
                        } else {
                            host = (host + 1) % spec.hosts.len();
                        }
                        Some(status.to_string())
                    }
                    CloseReason::BindTimeout => Some("bind_timeout".into()),
                    CloseReason::LinkDead => {
                        bind.metrics.enquire_link_failures.increment(1);
                        lost = true;
                        None
                    }
                    CloseReason::ConnectionLost | CloseReason::BadFrame
                        if exit.bound_for.is_none() =>
                    {
                        Some("connection_lost".into())
                    }
                    CloseReason::ConnectionLost | CloseReason::BadFrame => {
                        lost = true;
                        None
                    }
                    _ => None,
                }
            }
        };
        if let Some(status) = &failure {
            bind.metrics
                .counter_with(m::BIND_FAILURES, "status", status)
                .increment(1);
            tracing::warn!(carrier = %pool.name, bind = %bind.name, %status, "bind attempt failed");
        }
        if failure.is_some() || lost {
            let now = Instant::now();
            SlotObserver::apply(
                &pool,
                &bind,
                now,
                &Tally {
                    failures: 1,
                    ..Tally::default()
                },
            );
        }
        if pool.shutdown.graceful.is_cancelled() {
            break;
        }
        if pool.is_halted() {
            continue;
        }
        let delay = delay.unwrap_or_else(|| backoff.next_delay());
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                () = pool.shutdown.graceful.cancelled() => break,
                () = tokio::time::sleep_until(until) => break,
                Some(command) = submits.recv() => refuse(&pool, &bind, command),
            }
        }
    }
    bind.set_state(BindState::Stopped);
    submits.close();
    while let Some(command) = submits.recv().await {
        refuse(&pool, &bind, command);
    }
    let _ = slot;
}

async fn connect_and_run(
    pool: &PoolShared,
    bind: &BindShared,
    host: &str,
    port: u16,
    submits: &mut mpsc::Receiver<SubmitCommand>,
    observer: &mut SlotObserver,
) -> Attempt {
    let spec = &pool.spec;
    // Only the connect and the handshake race the shutdown: once the driver runs, it handles
    // the shutdown itself (unbind), and dropping it would lose what it has in flight.
    let connect = tokio::select! {
        () = pool.shutdown.graceful.cancelled() => return Attempt::Cancelled,
        connect = conn::connect_tcp(host, port, spec.connect_timeout) => connect,
    };
    let tcp = match connect {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::debug!(carrier = %pool.name, bind = %bind.name, %host, port, error = %e, "connect failed");
            return Attempt::ConnectFailed("connect");
        }
    };
    let config = spec.slots[bind.slot].session.clone();
    match &spec.tls {
        None => {
            bind.set_state(BindState::Binding);
            let session = Session::new(config, Instant::now());
            let exit = conn::run(
                tcp,
                session,
                submits,
                observer,
                &pool.shutdown,
                spec.max_pdu_len,
            )
            .await;
            Attempt::Ran(exit)
        }
        Some(tls) => {
            let handshake = tokio::select! {
                () = pool.shutdown.graceful.cancelled() => return Attempt::Cancelled,
                handshake = tokio::time::timeout(spec.connect_timeout, tls.handshake(tcp)) => handshake,
            };
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::warn!(carrier = %pool.name, bind = %bind.name, error = %e, "TLS handshake failed");
                    return Attempt::ConnectFailed("tls");
                }
                Err(_) => return Attempt::ConnectFailed("tls"),
            };
            bind.set_state(BindState::Binding);
            let session = Session::new(config, Instant::now());
            let exit = conn::run(
                stream,
                session,
                submits,
                observer,
                &pool.shutdown,
                spec.max_pdu_len,
            )
            .await;
            Attempt::Ran(exit)
        }
    }
}
