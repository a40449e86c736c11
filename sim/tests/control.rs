//! Requirement 7: the control listener. `GET /stats`, `GET /messages`, `GET`/`POST /faults`,
//! `POST /mo`, `POST /raw` and `GET /metrics`, over real HTTP.

mod common;

use common::*;
use serde_json::Value;
use smppd::pdu::*;

const TO: &str = "447700900123";

async fn get_json(sim: &TestSim, path: &str) -> Value {
    let (status, body) = http(sim.control, "GET", path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn stats_count_binds_pdus_by_command_and_status_receipts_and_mo() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let mut refused = Esme::connect(sim.addr).await;
    refused
        .bind(CommandId::BIND_TRANSMITTER, "esme", "wrong")
        .await;
    let mut m = sm(TO, "counted");
    m.registered_delivery = RegisteredDelivery::FINAL;
    let (_, early) = esme.submit_ok(m).await;
    esme.delivers(1, early).await;
    let (resp, _) = esme.submit(sm(TO, &"x".repeat(0))).await;
    assert!(resp.command_status.is_ok());
    let n = sim
        .handle
        .inject_mo("esme", "447700900777", "12345", "STOP")
        .unwrap();
    esme.delivers(n, Vec::new()).await;
    eventually("deliveries acknowledged", || {
        let s = sim.handle.stats();
        s.receipts_acked == 1 && s.pdus_received.get("deliver_sm_resp") == Some(&2)
    })
    .await;

    let stats = get_json(&sim, "/stats").await;
    assert_eq!(stats["binds_active"], 1);
    assert_eq!(stats["binds_total"], 1);
    assert_eq!(stats["binds_refused"], 1);
    assert_eq!(stats["connections_total"], 2);
    assert_eq!(stats["pdus_received"]["submit_sm"], 2);
    assert_eq!(stats["pdus_received"]["bind_transceiver"], 1);
    assert_eq!(stats["pdus_received"]["bind_transmitter"], 1);
    assert_eq!(stats["pdus_sent"]["submit_sm_resp"], 2);
    assert_eq!(stats["pdus_sent"]["deliver_sm"], 2);
    assert_eq!(stats["responses"]["submit_sm_resp"]["ESME_ROK"], 2);
    assert_eq!(
        stats["responses"]["bind_transmitter_resp"]["ESME_RINVPASWD"], 1,
        "{stats}"
    );
    assert_eq!(stats["responses"]["bind_transceiver_resp"]["ESME_ROK"], 1);
    assert_eq!(stats["messages_accepted"], 2);
    assert_eq!(stats["messages_stored"], 2);
    assert_eq!(stats["handset_messages"], 2);
    assert_eq!(stats["receipts_sent"], 1);
    assert_eq!(stats["receipts_acked"], 1);
    assert_eq!(stats["mo_sent"], 1);
    // The JSON is the handle's snapshot.
    let snapshot = serde_json::to_value(sim.handle.stats()).unwrap();
    assert_eq!(stats, snapshot);
}

#[tokio::test]
async fn messages_shows_the_handset_view_by_destination_and_limit_and_forgets_it() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let (id, _) = esme.submit_ok(sm(TO, "first")).await;
    esme.submit_ok(sm(TO, "second")).await;
    esme.submit_ok(sm("447700900999", "elsewhere")).await;

    let all = get_json(&sim, "/messages").await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let mine = get_json(&sim, &format!("/messages?to={TO}")).await;
    let texts: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(mine[0]["message_ids"][0], id.as_str());
    assert_eq!(mine[0]["from"], "447700900001");
    assert_eq!(mine[0]["to"], TO);
    assert_eq!(mine[0]["account"], "esme");
    assert_eq!(mine[0]["parts"], 1);
    let last = get_json(&sim, &format!("/messages?to={TO}&limit=1")).await;
    assert_eq!(last[0]["text"], "second");
    assert_eq!(last.as_array().unwrap().len(), 1);

    let (status, _) = http(sim.control, "DELETE", "/messages", None).await;
    assert_eq!(status, 204);
    assert_eq!(get_json(&sim, "/messages").await, serde_json::json!([]));
}

#[tokio::test]
async fn faults_are_read_and_changed_field_by_field() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let (status, body) = http(
        sim.control,
        "POST",
        "/faults",
        Some(r#"{"account":"esme","error_rate":0.25,"tps_limit":50}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(
        sim.control,
        "POST",
        "/faults",
        Some(r#"{"account":"esme","stall":true}"#),
    )
    .await;
    assert_eq!(status, 200);
    let faults = get_json(&sim, "/faults?account=esme").await;
    assert_eq!(faults["error_rate"], 0.25);
    assert_eq!(faults["tps_limit"], 50);
    assert_eq!(faults["stall"], true);
    let f = sim.handle.faults("esme").unwrap();
    assert_eq!((f.error_rate, f.tps_limit, f.stall), (0.25, Some(50), true));
    let (status, _) = http(sim.control, "GET", "/faults?account=nobody", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn raw_writes_octets_as_they_are_on_a_bind() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound_as(sim.addr, CommandId::BIND_RECEIVER, "esme").await;
    // enquire_link seq 0x4D, then a deliver_sm with a body cut short.
    let hex = "0000001000000015000000000000004D\
               00000013000000050000000000000063414243";
    let body = format!(r#"{{"account":"esme","hex":"{hex}"}}"#);
    let (status, reply) = http(sim.control, "POST", "/raw", Some(&body)).await;
    assert_eq!(status, 202, "{reply}");
    let link = esme.recv().await;
    assert_eq!(link.command_id(), CommandId::ENQUIRE_LINK);
    assert_eq!(link.sequence_number, 0x4D);
    let broken = esme.recv_within(WAIT).await.expect("the raw deliver_sm");
    let err = broken.expect_err("a malformed deliver_sm");
    assert_eq!(err.command_id, CommandId::DELIVER_SM);
    assert_eq!(err.sequence_number, 0x63);

    let (status, _) = http(
        sim.control,
        "POST",
        "/raw",
        Some(r#"{"account":"esme","hex":"zz"}"#),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = http(
        sim.control,
        "POST",
        "/raw",
        Some(r#"{"account":"idle","hex":"00"}"#),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn raw_needs_a_bound_session() {
    let mut idle = account("idle");
    idle.password = "pw".into();
    let sim = TestSim::start(config_with(vec![idle])).await;
    let (status, reply) = http(
        sim.control,
        "POST",
        "/raw",
        Some(r#"{"account":"idle","hex":"00"}"#),
    )
    .await;
    assert_eq!(status, 409, "{reply}");
    assert!(reply.contains("not_bound"));
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_smsc_sim_names() {
    let sim = TestSim::start(config_with(vec![account("esme")])).await;
    let mut esme = Esme::bound(sim.addr, "esme").await;
    let mut m = sm(TO, "metered");
    m.registered_delivery = RegisteredDelivery::FINAL;
    let (_, early) = esme.submit_ok(m).await;
    esme.delivers(1, early).await;
    eventually("the receipt is acknowledged", || {
        sim.handle.stats().receipts_acked == 1
    })
    .await;
    let (status, text) = http(sim.control, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    for line in [
        "smsc_sim_binds_active 1",
        "smsc_sim_binds_total 1",
        "smsc_sim_messages_accepted_total 1",
        "smsc_sim_receipts_sent_total 1",
        "smsc_sim_receipts_acked_total 1",
        "smsc_sim_mo_sent_total 0",
        "smsc_sim_pdus_received_total{command=\"submit_sm\"} 1",
        "smsc_sim_pdus_sent_total{command=\"deliver_sm\"} 1",
        "smsc_sim_responses_total{command=\"submit_sm_resp\",status=\"ESME_ROK\"} 1",
        "# TYPE smsc_sim_pdus_received_total counter",
        "# TYPE smsc_sim_binds_active gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample line is a smsc_sim_* metric with a numeric value.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("smsc_sim_"), "{line}");
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}
