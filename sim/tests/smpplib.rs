//! An independent SMPP client, python-smpplib from PyPI, against the simulator: it binds as a
//! transceiver, sends a long message in parts and waits for every receipt
//! (tests/smpplib_client.py), and the handset view shows the whole text.
//!
//! Needs `pip install smpplib`. Without it the test says so and passes, except under CI
//! (the CI variable set), where it fails.

mod common;

use std::process::Command;

use common::*;

fn smpplib_available() -> bool {
    Command::new("python3")
        .args(["-c", "import smpplib"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn python_smpplib_sends_a_long_message_and_gets_every_receipt() {
    if !smpplib_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 cannot import smpplib; CI must install it (pip install smpplib)"
        );
        eprintln!(
            "SKIPPED python_smpplib_sends_a_long_message_and_gets_every_receipt: \
             python3 cannot import smpplib (pip install smpplib)"
        );
        return;
    }
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smpplib_client.py");
    let port = sim.addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &port])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "smpplib client failed ({:?})\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("its JSON report");
    let destination = report["destination"].as_str().unwrap();
    let text = report["text"].as_str().unwrap();
    let parts = report["parts"].as_u64().unwrap();
    assert!(parts >= 2);

    let seen = sim.handle.messages(Some(destination), 10);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].text, text);
    assert_eq!(u64::from(seen[0].parts), parts);
    let accepted: Vec<String> = report["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let mut ids = seen[0].message_ids.clone();
    ids.sort();
    let mut accepted_sorted = accepted.clone();
    accepted_sorted.sort();
    assert_eq!(ids, accepted_sorted);
    let stats = sim.stop().await;
    assert_eq!(stats.receipts_acked, parts);
    assert_eq!(stats.pdus_received["unbind"], 1);
}
