//! Webhook delivery against a real HTTP listener on loopback: signed, retried after a failure,
//! in order per message.

use std::time::Duration;

use bytes::Bytes;
use smppd::webhook::{SIGNATURE_HEADER, WebhookConfig, WebhookEvent, Webhooks, verify};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Reads one HTTP/1.1 request (headers + Content-Length body) and answers with `status`.
async fn serve_one(stream: &mut tokio::net::TcpStream, status: u16) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + len].to_vec();
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            stream.write_all(reply.as_bytes()).await.unwrap();
            return (head, body);
        }
    }
}

#[tokio::test]
async fn delivers_signed_callbacks_in_order_and_retries_after_a_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let config = WebhookConfig {
        initial_backoff_ms: 50,
        ..WebhookConfig::default()
    };
    let (hooks, _task) = Webhooks::start(config, Some(b"s3cret".to_vec()), cancel.clone());
    for state in ["submitted", "delivered"] {
        hooks
            .notify(WebhookEvent {
                message_id: "m1".into(),
                url: url.clone(),
                body: Bytes::from(format!("{{\"id\":\"m1\",\"status\":\"{state}\"}}")),
            })
            .unwrap();
    }

    // The receiver fails the first try, then accepts; the second state must not overtake.
    let mut seen = Vec::new();
    for status in [500, 200, 200] {
        let (mut stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("a callback")
            .unwrap();
        let (head, body) = serve_one(&mut stream, status).await;
        let signature = head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{SIGNATURE_HEADER}:")))
            .expect("signed")
            .trim()
            .to_owned();
        assert!(
            verify(b"s3cret", &body, &signature),
            "bad signature {signature}"
        );
        seen.push(String::from_utf8(body).unwrap());
    }
    assert_eq!(
        seen,
        [
            "{\"id\":\"m1\",\"status\":\"submitted\"}",
            "{\"id\":\"m1\",\"status\":\"submitted\"}",
            "{\"id\":\"m1\",\"status\":\"delivered\"}",
        ]
    );
    cancel.cancel();
}
