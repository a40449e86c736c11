//! A byte stream cut into reads where the input chooses the cuts: the codec must yield the same
//! items however the stream is chunked, and never panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smppd::pdu::PduCodec;
use tokio_util::codec::Decoder;

/// Items (or the stream error) from feeding `stream` in reads of the given sizes.
fn run(stream: &[u8], cuts: &[u8]) -> (Vec<String>, Option<String>) {
    let mut codec = PduCodec::with_max_len(4096);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = stream;
    let mut sizes = cuts.iter().map(|&c| usize::from(c) + 1).cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => items.push(format!("{item:?}")),
                Ok(None) => break,
                Err(e) => return (items, Some(e.to_string())),
            }
        }
    }
    (items, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (cuts, stream) = rest.split_at(n);
    let whole = run(stream, &[255]);
    let chunked = run(stream, if cuts.is_empty() { &[0] } else { cuts });
    assert_eq!(whole, chunked);
});
