//! Requirement 8: the built `smsc-sim` binary on free ports. It binds, submits and receives a
//! receipt, then on SIGTERM unbinds, exits 0 and prints its final stats as JSON on stdout.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use smppd::pdu::*;

/// The value of `key=` in a log line, escape sequences removed.
fn field(line: &str, key: &str) -> Option<String> {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip an ANSI sequence up to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let start = plain.find(&format!("{key}="))? + key.len() + 1;
    Some(plain[start..].split_whitespace().next()?.to_owned())
}

#[tokio::test]
async fn the_binary_serves_on_free_ports_and_prints_final_stats_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsc-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--account",
            "esme:pw",
            "--dlr-delay-ms",
            "50",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the smsc-sim binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent
                && let (Some(smpp), Some(control)) = (field(&line, "smpp"), field(&line, "control"))
            {
                let _ = tx.send((smpp, control));
                sent = true;
            }
        }
    });
    let (smpp, control) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the ready line with its addresses");
    let addr: SocketAddr = smpp.parse().unwrap();
    let control: SocketAddr = control.parse().unwrap();

    let mut esme = Esme::bound(addr, "esme").await;
    let mut m = sm("447700900123", "from the binary");
    m.registered_delivery = RegisteredDelivery::FINAL;
    let sent = Instant::now();
    let (id, early) = esme.submit_ok(m).await;
    let receipt = esme.delivers(1, early).await.remove(0);
    assert!(sent.elapsed() >= Duration::from_millis(45));
    assert_eq!(receipt.tlvs.receipted_message_id().unwrap(), id.as_bytes());
    let (status, body) = http(control, "GET", "/messages?to=447700900123", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("from the binary"), "{body}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The simulator unbinds its ESMEs on the way out.
    let unbind = esme.recv().await;
    assert_eq!(unbind.command_id(), CommandId::UNBIND);
    esme.answer(&unbind).await;
    assert!(esme.closed_within(WAIT).await);

    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut out = String::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                return (status, out);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("smsc-sim did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let (status, stdout) = status;
    assert!(status.success(), "{status:?}");
    let stats: serde_json::Value = serde_json::from_str(&stdout).expect("stats JSON on stdout");
    assert_eq!(stats["messages_accepted"], 1);
    assert_eq!(stats["receipts_sent"], 1);
    assert_eq!(stats["receipts_acked"], 1);
    assert_eq!(stats["binds_total"], 1);
    assert_eq!(stats["pdus_sent"]["unbind"], 1);
}

#[test]
fn the_binary_refuses_to_start_without_accounts() {
    let out = Command::new(env!("CARGO_BIN_EXE_smsc-sim"))
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no accounts"), "{err}");
}
