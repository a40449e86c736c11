//! The bind driver over an in-memory pipe, against a scripted SMSC written with the codec.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use smppd::conn::{self, Inbound, InboundPdu, Observer, PartOutcome, Shutdown, SubmitCommand};
use smppd::pdu::{
    BindResp, Body, COctetString, CommandStatus, DeliverSm, Pdu, PduCodec, SmResp, SubmitSm,
};
use smppd::session::{Anomaly, CloseReason, Session, SessionConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Decoder;

const WAIT: Duration = Duration::from_secs(10);

/// Counts the writes that carried data.
struct Counting {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            self.writes.fetch_add(1, Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The SMSC end: the codec over the other half of the pipe.
struct Smsc {
    io: DuplexStream,
    buf: BytesMut,
    codec: PduCodec,
}

impl Smsc {
    async fn recv(&mut self) -> Pdu {
        loop {
            if let Some(item) = self.codec.decode(&mut self.buf).unwrap() {
                return item.expect("well-formed");
            }
            let n = tokio::time::timeout(WAIT, self.io.read_buf(&mut self.buf))
                .await
                .expect("a PDU within the wait")
                .unwrap();
            assert!(n > 0, "the driver closed the pipe");
        }
    }

    async fn send(&mut self, pdu: Pdu) {
        self.io.write_all(&pdu.to_bytes()).await.unwrap();
    }

    async fn accept_bind(&mut self) {
        let bind = self.recv().await;
        assert!(matches!(bind.body, Body::BindTransceiver(_)));
        self.send(Pdu::new(
            bind.sequence_number,
            Body::BindTransceiverResp(Some(BindResp::default())),
        ))
        .await;
    }
}

/// Hands inbound requests to the test through a channel, or gives them back when told to.
struct TestObserver {
    bound: Option<oneshot::Sender<()>>,
    inbound: mpsc::Sender<Inbound>,
    refuse_inbound: bool,
}

impl Observer for TestObserver {
    fn bound(&mut self, _now: Instant) {
        if let Some(tx) = self.bound.take() {
            let _ = tx.send(());
        }
    }
    fn part_done(&mut self, _: Instant, _: &PartOutcome, _: Option<Duration>) {}
    fn inbound(&mut self, inbound: Inbound) -> Option<Inbound> {
        if self.refuse_inbound {
            return Some(inbound);
        }
        self.inbound.try_send(inbound).err().map(|e| e.into_inner())
    }
    fn late_response(&mut self, _: u64, _: usize, _: PartOutcome) {}
    fn anomaly(&mut self, _: &Anomaly) {}
    fn flush(&mut self, _: Instant) {}
}

struct Harness {
    smsc: Smsc,
    submits: mpsc::Sender<SubmitCommand>,
    bound: oneshot::Receiver<()>,
    inbound: mpsc::Receiver<Inbound>,
    writes: Arc<AtomicUsize>,
    shutdown: Shutdown,
    driver: tokio::task::JoinHandle<conn::Exit>,
}

fn harness(window: usize, refuse_inbound: bool) -> Harness {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let stream = Counting {
        inner: ours,
        writes: writes.clone(),
    };
    let (submits, mut submits_rx) = mpsc::channel(window);
    let (bound_tx, bound) = oneshot::channel();
    let (inbound_tx, inbound) = mpsc::channel(16);
    let shutdown = Shutdown::default();
    let config = SessionConfig {
        window,
        ..SessionConfig::default()
    };
    let session = Session::new(config, Instant::now());
    let driver_shutdown = shutdown.clone();
    let driver = tokio::spawn(async move {
        let mut observer = TestObserver {
            bound: Some(bound_tx),
            inbound: inbound_tx,
            refuse_inbound,
        };
        conn::run(
            stream,
            session,
            &mut submits_rx,
            &mut observer,
            &driver_shutdown,
            PduCodec::DEFAULT_MAX_LEN,
        )
        .await
    });
    Harness {
        smsc: Smsc {
            io: theirs,
            buf: BytesMut::new(),
            codec: PduCodec::new(),
        },
        submits,
        bound,
        inbound,
        writes,
        shutdown,
        driver,
    }
}

fn submit_sm(n: usize) -> Body {
    Body::SubmitSm(SubmitSm {
        destination_addr: COctetString::new(format!("4477009{n:05}")).unwrap(),
        ..SubmitSm::default()
    })
}

fn deliver_sm(seq: u32) -> Pdu {
    Pdu::new(seq, Body::DeliverSm(DeliverSm::default()))
}

#[tokio::test(flavor = "current_thread")]
async fn writes_a_burst_of_submits_in_one_write() {
    let mut h = harness(100, false);
    h.smsc.accept_bind().await;
    (&mut h.bound).await.unwrap();
    let before = h.writes.load(Relaxed);
    // Fifty messages handed over while the driver is not running (one thread): it finds them
    // all at its next wake-up.
    let mut replies = Vec::new();
    for i in 0..50 {
        let (reply, rx) = oneshot::channel();
        h.submits
            .try_send(SubmitCommand {
                parts: vec![submit_sm(i)],
                reference: i as u64,
                reply,
            })
            .unwrap();
        replies.push(rx);
    }
    let mut seqs = Vec::new();
    for _ in 0..50 {
        let pdu = h.smsc.recv().await;
        assert!(matches!(pdu.body, Body::SubmitSm(_)));
        seqs.push(pdu.sequence_number);
    }
    assert_eq!(
        h.writes.load(Relaxed) - before,
        1,
        "fifty submit_sm in one write"
    );
    // Answer them all in one write too; every message gets its id.
    let mut out = BytesMut::new();
    for (i, seq) in seqs.iter().enumerate() {
        Pdu::new(
            *seq,
            Body::SubmitSmResp(Some(SmResp {
                message_id: COctetString::new(format!("id{i}")).unwrap(),
                ..SmResp::default()
            })),
        )
        .encode(&mut out);
    }
    h.smsc.io.write_all(&out).await.unwrap();
    for (i, rx) in replies.into_iter().enumerate() {
        let outcomes = rx.await.unwrap();
        assert_eq!(
            outcomes,
            vec![PartOutcome::Accepted {
                message_id: COctetString::new(format!("id{i}")).unwrap(),
                sequence_number: seqs[i],
            }]
        );
    }
    h.shutdown.graceful.cancel();
    let unbind = h.smsc.recv().await;
    assert!(matches!(unbind.body, Body::Unbind));
    h.smsc
        .send(Pdu::new(unbind.sequence_number, Body::UnbindResp))
        .await;
    assert_eq!(h.driver.await.unwrap().reason, CloseReason::Unbound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_beyond_the_window_wait_in_the_driver_and_go_out_as_slots_free() {
    let mut h = harness(2, false);
    h.smsc.accept_bind().await;
    (&mut h.bound).await.unwrap();
    let (reply, rx) = oneshot::channel();
    h.submits
        .send(SubmitCommand {
            parts: (0..5).map(submit_sm).collect(),
            reference: 1,
            reply,
        })
        .await
        .unwrap();
    for _ in 0..5 {
        // Two at a time: answer each as it comes.
        let pdu = h.smsc.recv().await;
        h.smsc
            .send(Pdu::new(
                pdu.sequence_number,
                Body::SubmitSmResp(Some(SmResp::default())),
            ))
            .await;
    }
    let outcomes = rx.await.unwrap();
    assert_eq!(outcomes.len(), 5);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PartOutcome::Accepted { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_deliver_sm_only_when_the_application_does_and_keeps_reading_meanwhile() {
    let mut h = harness(10, false);
    h.smsc.accept_bind().await;
    h.smsc.send(deliver_sm(7)).await;
    let inbound = tokio::time::timeout(WAIT, h.inbound.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(inbound.pdu, InboundPdu::DeliverSm(_)));
    // While the application holds the receipt, the driver still reads and answers.
    h.smsc.send(Pdu::new(8, Body::EnquireLink)).await;
    let first = h.smsc.recv().await;
    assert_eq!(
        (first.command_id(), first.sequence_number),
        (smppd::pdu::CommandId::ENQUIRE_LINK_RESP, 8),
        "nothing answers the deliver_sm before the application"
    );
    inbound
        .responder
        .respond(CommandStatus::ESME_RX_T_APPN)
        .await
        .unwrap();
    let resp = h.smsc.recv().await;
    assert!(matches!(resp.body, Body::DeliverSmResp(_)));
    assert_eq!(resp.sequence_number, 7);
    assert_eq!(resp.command_status, CommandStatus::ESME_RX_T_APPN);

    // A responder dropped unanswered says "try again later".
    h.smsc.send(deliver_sm(9)).await;
    let inbound = h.inbound.recv().await.unwrap();
    drop(inbound);
    let resp = h.smsc.recv().await;
    assert_eq!(
        (resp.sequence_number, resp.command_status),
        (9, CommandStatus::ESME_RX_T_APPN)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_cannot_take_more_gets_the_smsc_to_retry() {
    let mut h = harness(10, true);
    h.smsc.accept_bind().await;
    h.smsc.send(deliver_sm(3)).await;
    let resp = h.smsc.recv().await;
    assert_eq!(
        (resp.sequence_number, resp.command_status),
        (3, CommandStatus::ESME_RX_T_APPN)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_hands_back_parts_in_flight() {
    let mut h = harness(10, false);
    h.smsc.accept_bind().await;
    (&mut h.bound).await.unwrap();
    let (reply, rx) = oneshot::channel();
    h.submits
        .send(SubmitCommand {
            parts: vec![submit_sm(1), submit_sm(2)],
            reference: 5,
            reply,
        })
        .await
        .unwrap();
    let first = h.smsc.recv().await;
    let _second = h.smsc.recv().await;
    h.smsc
        .send(Pdu::new(
            first.sequence_number,
            Body::SubmitSmResp(Some(SmResp::default())),
        ))
        .await;
    drop(h.smsc);
    let outcomes = rx.await.unwrap();
    assert!(matches!(outcomes[0], PartOutcome::Accepted { .. }));
    assert!(matches!(
        outcomes[1],
        PartOutcome::BindLost {
            reason: CloseReason::ConnectionLost,
            ..
        }
    ));
    assert_eq!(h.driver.await.unwrap().reason, CloseReason::ConnectionLost);
}
