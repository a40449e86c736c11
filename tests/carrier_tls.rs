//! Binds over TLS: a certificate generated for the test, the simulator serving it.

mod carrier_support;

use std::path::PathBuf;

use carrier_support::*;
use smppd::carrier::BindState;
use smppd::conn::TlsConfig;
use smsc_sim::Sim;
use smsc_sim::config::SimConfig;

struct Pem {
    cert: String,
    key: String,
}

fn certificate() -> Pem {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Pem {
        cert: certified.cert.pem(),
        key: certified.signing_key.serialize_pem(),
    }
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("smppd-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn tls_sim(pem: &Pem) -> TestSim {
    let sim = Sim::new(SimConfig {
        accounts: vec![account("esme")],
        ..SimConfig::default()
    })
    .unwrap()
    .with_tls(pem.cert.as_bytes(), pem.key.as_bytes())
    .unwrap();
    TestSim::start_sim(sim).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_and_submits_over_tls_trusting_the_configured_ca() {
    let pem = certificate();
    let ca = TempFile::new("ca-ok.pem", &pem.cert);
    let sim = tls_sim(&pem).await;
    let mut config = carrier("secure", sim.addr, "esme");
    config.tls = Some(TlsConfig {
        ca_file: Some(ca.0.clone()),
        server_name: Some("localhost".into()),
        ..TlsConfig::default()
    });
    let s = start(config);
    until("bound over TLS", || s.pool.binds_up() == 1).await;
    let mut parts = vec![sm("447700900123", "over TLS")];
    let outcome = s.pool.submit(&mut parts, 1).await.unwrap().await;
    assert!(outcome.all_accepted(), "{outcome:?}");
    assert!(s.pool.shutdown(WAIT).await);
    let stats = sim.stop().await;
    assert_eq!(stats.messages_accepted, 1);
    assert_eq!(stats.pdus_received.get("unbind").copied(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_binds_to_a_server_whose_certificate_it_does_not_trust() {
    let served = certificate();
    let other = certificate();
    let ca = TempFile::new("ca-other.pem", &other.cert);
    let sim = tls_sim(&served).await;
    let mut config = carrier("secure", sim.addr, "esme");
    config.tls = Some(TlsConfig {
        ca_file: Some(ca.0.clone()),
        server_name: Some("localhost".into()),
        ..TlsConfig::default()
    });
    let s = start(config);
    until("several refused handshakes", || {
        s.pool.status().binds[0].connections >= 3
    })
    .await;
    assert_eq!(s.pool.binds_up(), 0);
    assert_ne!(s.pool.status().binds[0].state, BindState::Bound);
    assert_eq!(
        sim.handle.stats().binds_total,
        0,
        "no bind reached the SMSC"
    );
    s.pool.shutdown(WAIT).await;
    sim.stop().await;
}

#[test]
fn a_missing_ca_file_is_a_config_error_naming_the_key() {
    let config = TlsConfig {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..TlsConfig::default()
    };
    let err = config.load("localhost").unwrap_err().to_string();
    assert!(err.contains("ca_file"), "{err}");
}
