//! A plain test ESME (raw socket + the codec, no engine code) and a tiny HTTP client, so the
//! simulator is tested through its real interfaces.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use smppd::pdu::*;
use smsc_sim::config::{AccountConfig, SimConfig};
use smsc_sim::{Sim, SimHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

/// A simulator on 127.0.0.1:0, with its control listener.
pub struct TestSim {
    pub addr: SocketAddr,
    pub control: SocketAddr,
    pub handle: SimHandle,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<smsc_sim::StatsSnapshot>,
}

impl TestSim {
    pub async fn start(config: SimConfig) -> TestSim {
        Self::start_sim(Sim::new(config).expect("valid config")).await
    }

    pub async fn start_sim(sim: Sim) -> TestSim {
        let handle = sim.handle();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control = control_listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(smsc_sim::control::serve(
            control_listener,
            handle.clone(),
            shutdown.clone().cancelled_owned(),
        ));
        let task = tokio::spawn(sim.run(listener, shutdown.clone().cancelled_owned()));
        TestSim {
            addr,
            control,
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

pub fn config_with(accounts: Vec<AccountConfig>) -> SimConfig {
    SimConfig {
        accounts,
        ..SimConfig::default()
    }
}

pub fn account(id: &str) -> AccountConfig {
    AccountConfig::new(id, "pw")
}

/// The ESME side of one connection, written with nothing but the codec.
pub struct Esme<S = TcpStream> {
    pub stream: S,
    rbuf: BytesMut,
    codec: PduCodec,
    seq: u32,
}

pub const WAIT: Duration = Duration::from_secs(5);

impl Esme<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> Esme<TcpStream> {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Esme::over(stream)
    }

    /// Connects and binds as a transceiver.
    pub async fn bound(addr: SocketAddr, id: &str) -> Esme<TcpStream> {
        let mut esme = Esme::connect(addr).await;
        let resp = esme.bind(CommandId::BIND_TRANSCEIVER, id, "pw").await;
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
        esme
    }

    /// Connects and binds as `kind` (a bind command id) with password "pw".
    pub async fn bound_as(addr: SocketAddr, kind: CommandId, id: &str) -> Esme<TcpStream> {
        let mut esme = Esme::connect(addr).await;
        let resp = esme.bind(kind, id, "pw").await;
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
        esme
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Esme<S> {
    pub fn over(stream: S) -> Esme<S> {
        Esme {
            stream,
            rbuf: BytesMut::new(),
            codec: PduCodec::new(),
            seq: 0,
        }
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    pub async fn send(&mut self, pdu: &Pdu) {
        self.stream.write_all(&pdu.to_bytes()).await.unwrap();
    }

    pub async fn send_raw(&mut self, octets: &[u8]) {
        self.stream.write_all(octets).await.unwrap();
    }

    /// Sends a request with the next sequence number; returns that number.
    pub async fn request(&mut self, body: Body) -> u32 {
        let seq = self.next_seq();
        self.send(&Pdu::new(seq, body)).await;
        seq
    }

    /// The next PDU, or `None` if the connection closed or nothing came within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Result<Pdu, DecodeError>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(item) = self.codec.decode(&mut self.rbuf).expect("framing") {
                return Some(item);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }

    pub async fn recv(&mut self) -> Pdu {
        self.recv_within(WAIT)
            .await
            .expect("a PDU within the wait")
            .expect("a well-formed PDU")
    }

    /// The response to `seq`, answering (ROK) any deliver_sm and enquire_link met meanwhile;
    /// those deliver_sm are returned too.
    pub async fn response(&mut self, seq: u32) -> (Pdu, Vec<Pdu>) {
        let mut delivered = Vec::new();
        loop {
            let pdu = self.recv().await;
            if pdu.sequence_number == seq && pdu.command_id().is_response() {
                return (pdu, delivered);
            }
            self.answer(&pdu).await;
            if matches!(pdu.body, Body::DeliverSm(_)) {
                delivered.push(pdu);
            }
        }
    }

    /// Answers an SMSC request with ESME_ROK.
    pub async fn answer(&mut self, pdu: &Pdu) {
        let body = match pdu.body {
            Body::DeliverSm(_) => Body::DeliverSmResp(Some(SmResp::default())),
            Body::EnquireLink => Body::EnquireLinkResp,
            Body::Unbind => Body::UnbindResp,
            _ => return,
        };
        self.send(&Pdu::new(pdu.sequence_number, body)).await;
    }

    /// The next deliver_sm (answering enquire_link meanwhile), not yet answered.
    pub async fn next_deliver(&mut self, wait: Duration) -> Option<Pdu> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let pdu = self.recv_within(left).await?.ok()?;
            if matches!(pdu.body, Body::DeliverSm(_)) {
                return Some(pdu);
            }
            self.answer(&pdu).await;
        }
    }

    pub async fn bind(&mut self, id: CommandId, system_id: &str, password: &str) -> Pdu {
        let bind = Bind {
            system_id: COctetString::try_from(system_id).unwrap(),
            password: COctetString::try_from(password).unwrap(),
            interface_version: InterfaceVersion::V34,
            ..Bind::default()
        };
        let body = match id {
            CommandId::BIND_TRANSMITTER => Body::BindTransmitter(bind),
            CommandId::BIND_RECEIVER => Body::BindReceiver(bind),
            _ => Body::BindTransceiver(bind),
        };
        let seq = self.request(body).await;
        self.response(seq).await.0
    }

    pub async fn submit(&mut self, sm: SubmitSm) -> (Pdu, Vec<Pdu>) {
        let seq = self.request(Body::SubmitSm(sm)).await;
        self.response(seq).await
    }

    /// Submits and returns the message id, asserting ESME_ROK; deliver_sm met meanwhile are
    /// answered and returned.
    pub async fn submit_ok(&mut self, sm: SubmitSm) -> (String, Vec<Pdu>) {
        let (resp, early) = self.submit(sm).await;
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
        (message_id(&resp), early)
    }

    /// Sends a request and waits for its response (answering SMSC requests meanwhile).
    pub async fn call(&mut self, body: Body) -> Pdu {
        let seq = self.request(body).await;
        self.response(seq).await.0
    }

    /// The next `n` deliver_sm, each answered with ESME_ROK; `early` ones come first.
    pub async fn delivers(&mut self, n: usize, early: Vec<Pdu>) -> Vec<DeliverSm> {
        let mut out: Vec<DeliverSm> = early
            .into_iter()
            .filter_map(|p| match p.body {
                Body::DeliverSm(d) => Some(d),
                _ => None,
            })
            .collect();
        while out.len() < n {
            let pdu = self.next_deliver(WAIT).await.expect("a deliver_sm");
            self.answer(&pdu).await;
            if let Body::DeliverSm(d) = pdu.body {
                out.push(d);
            }
        }
        out
    }

    /// True when no PDU other than enquire_link arrives within `wait` (answering those).
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                None => return true,
                Some(Ok(pdu)) if matches!(pdu.body, Body::EnquireLink) => self.answer(&pdu).await,
                Some(_) => return false,
            }
        }
    }

    /// True when the peer closed the connection within `wait` (reading and dropping PDUs).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => while let Ok(Some(_)) = self.codec.decode(&mut self.rbuf) {},
                Err(_) => return false,
            }
        }
    }
}

pub fn sm(to: &str, text: &str) -> SubmitSm {
    SubmitSm {
        source_addr_ton: Ton::INTERNATIONAL,
        source_addr_npi: Npi::ISDN,
        source_addr: COctetString::try_from("447700900001").unwrap(),
        dest_addr_ton: Ton::INTERNATIONAL,
        dest_addr_npi: Npi::ISDN,
        destination_addr: COctetString::try_from(to).unwrap(),
        short_message: ShortMessage::new(text.as_bytes().to_vec()).unwrap(),
        ..SubmitSm::default()
    }
}

/// A submit_sm carrying one part made by `smppd::sms::segment` (UDHI, SAR TLVs or
/// message_payload as the part says).
pub fn sm_part(to: &str, part: &smppd::sms::Part) -> SubmitSm {
    let mut m = sm(to, "");
    m.data_coding = DataCoding(part.data_coding);
    if part.udhi {
        m.esm_class = m.esm_class.with_udhi();
    }
    let mut tlvs = TlvsBuilder::new();
    match part.field {
        smppd::sms::PayloadField::ShortMessage => {
            m.short_message = ShortMessage::new(part.payload.clone()).unwrap();
        }
        smppd::sms::PayloadField::MessagePayload => {
            tlvs = tlvs.message_payload(&part.payload).unwrap();
        }
    }
    if let Some(sar) = part.sar {
        tlvs = tlvs.sar(Sar {
            msg_ref_num: sar.ref_num,
            total_segments: sar.total,
            segment_seqnum: sar.seq,
        });
    }
    m.tlvs = tlvs.build();
    m
}

/// The text of a deliver_sm's short_message (receipts are ASCII).
pub fn text_of(d: &DeliverSm) -> String {
    String::from_utf8_lossy(d.short_message.as_bytes()).into_owned()
}

/// The simulator's config with short timers, for fast tests.
pub fn quick_config(accounts: Vec<AccountConfig>) -> SimConfig {
    SimConfig {
        accounts,
        response_timeout_ms: 300,
        ..SimConfig::default()
    }
}

/// Polls `f` until it is true (a safety-net timeout of `WAIT` fails the test).
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn message_id(resp: &Pdu) -> String {
    match &resp.body {
        Body::SubmitSmResp(Some(r)) | Body::DataSmResp(Some(r)) => r.message_id.to_string(),
        other => panic!("no message id in {other:?}"),
    }
}

/// A minimal HTTP/1.1 client for the control listener: (status, body).
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
