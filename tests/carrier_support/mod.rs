//! Shared by the carrier tests: a simulator on 127.0.0.1:0, a carrier config with fast timers,
//! message bodies, and polling with a generous safety-net timeout.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use smppd::carrier::config::CarrierConfig;
use smppd::carrier::{CarrierEvent, CarrierPool, Delivery, PoolOptions};
use smppd::pdu::{Body, COctetString, Npi, ShortMessage, SubmitSm, Ton};
use smsc_sim::config::{AccountConfig, SimConfig};
use smsc_sim::{Sim, SimHandle};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Only a safety net: tests wait for conditions, never for a fixed time.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestSim {
    pub addr: SocketAddr,
    pub handle: SimHandle,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<smsc_sim::StatsSnapshot>,
}

impl TestSim {
    pub async fn start(accounts: Vec<AccountConfig>) -> TestSim {
        Self::start_sim(
            Sim::new(SimConfig {
                accounts,
                ..SimConfig::default()
            })
            .expect("valid sim config"),
        )
        .await
    }

    pub async fn start_sim(sim: Sim) -> TestSim {
        let handle = sim.handle();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sim.run(listener, shutdown.clone().cancelled_owned()));
        TestSim {
            addr,
            handle,
            shutdown,
            task,
        }
    }

    pub async fn stop(self) -> smsc_sim::StatsSnapshot {
        self.shutdown.cancel();
        self.task.await.unwrap()
    }
}

pub fn account(id: &str) -> AccountConfig {
    AccountConfig::new(id, "pw")
}

/// A carrier on the simulator with timers short enough for tests.
pub fn carrier(name: &str, addr: SocketAddr, system_id: &str) -> CarrierConfig {
    let mut c = CarrierConfig {
        name: name.into(),
        hosts: vec![addr.to_string()],
        system_id: system_id.into(),
        password: "pw".into(),
        tps: 0.0,
        connect_timeout_ms: 2_000,
        bind_timeout_ms: 2_000,
        response_timeout_ms: 2_000,
        unbind_timeout_ms: 1_000,
        ..CarrierConfig::default()
    };
    c.reconnect.initial_ms = 20;
    c.reconnect.max_ms = 200;
    c.reconnect.stable_after_ms = 100;
    c.reconnect.seed = 42;
    c
}

pub struct Started {
    pub pool: CarrierPool,
    pub events: mpsc::Receiver<CarrierEvent>,
    pub deliveries: mpsc::Receiver<Delivery>,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
}

pub fn start(config: CarrierConfig) -> Started {
    let spec = config.validate().expect("valid carrier config");
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (tx, deliveries) = mpsc::channel(256);
    let (pool, events) = CarrierPool::start(spec, PoolOptions::new(Some(tx)), &tracker, &cancel);
    Started {
        pool,
        events,
        deliveries,
        tracker,
        cancel,
    }
}

pub fn sm(to: &str, text: &str) -> Body {
    Body::SubmitSm(SubmitSm {
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::new("447700900001").unwrap(),
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::new(to).unwrap(),
        short_message: ShortMessage::new(text.as_bytes().to_vec()).unwrap(),
        ..SubmitSm::default()
    })
}

/// Polls `cond` every few milliseconds until it holds; panics after [`WAIT`].
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
