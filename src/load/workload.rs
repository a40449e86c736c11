//! Request bodies, built from pre-rendered fragments.
//!
//! Each kind's JSON after the destination (`","from":"…","body":"…"}`) is rendered once;
//! a message is then three copies and the destination's digits, so building a batch of
//! 1 000 costs about as much as copying its bytes. Message `i` always gets the same kind and
//! number, whichever connection sends it.

use bytes::{BufMut, Bytes, BytesMut};

use super::options::{Kind, Mix, NumberRange};

/// The JSON bodies of a run.
#[derive(Debug)]
pub struct Workload {
    schedule: Vec<Kind>,
    /// Per kind (indexed by `Kind as usize`): everything after the destination's digits.
    suffixes: [Vec<u8>; 3],
    numbers: NumberRange,
    /// The largest single message, for sizing buffers.
    longest: usize,
}

const PREFIX: &[u8] = b"{\"to\":\"+";
const BATCH_OPEN: &[u8] = b"{\"messages\":[";
const BATCH_CLOSE: &[u8] = b"]}";

impl Workload {
    /// Renders the fragments for this mix, sender and range.
    pub fn new(mix: &Mix, from: &str, numbers: NumberRange) -> Workload {
        let suffix = |kind: Kind| {
            // serde_json escapes the strings exactly as the API will read them.
            let from = serde_json::Value::from(from).to_string();
            let body = serde_json::Value::from(kind.text()).to_string();
            format!("\",\"from\":{from},\"body\":{body}}}").into_bytes()
        };
        let suffixes = [suffix(Kind::Gsm), suffix(Kind::Long), suffix(Kind::Ucs2)];
        let longest = PREFIX.len() + 20 + suffixes.iter().map(Vec::len).max().unwrap_or(0);
        Workload {
            schedule: mix.schedule(),
            suffixes,
            numbers,
            longest,
        }
    }

    /// The kind of message `i`.
    pub fn kind(&self, i: u64) -> Kind {
        let len = self.schedule.len().max(1) as u64;
        self.schedule
            .get((i % len) as usize)
            .copied()
            .unwrap_or(Kind::Gsm)
    }

    fn put_message(&self, out: &mut BytesMut, i: u64) {
        out.put_slice(PREFIX);
        let digits = itoa(self.numbers.nth(i));
        out.put_slice(digits.as_bytes());
        out.put_slice(&self.suffixes[self.kind(i) as usize]);
    }

    /// The body of a single POST /messages for message `i`.
    pub fn single(&self, i: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(self.longest);
        self.put_message(&mut out, i);
        out.freeze()
    }

    /// The body of a POST /messages/batch for messages `first..first + n`.
    pub fn batch(&self, first: u64, n: usize) -> Bytes {
        let mut out = BytesMut::with_capacity(BATCH_OPEN.len() + n * (self.longest + 1) + 2);
        out.put_slice(BATCH_OPEN);
        for k in 0..n as u64 {
            if k > 0 {
                out.put_u8(b',');
            }
            self.put_message(&mut out, first + k);
        }
        out.put_slice(BATCH_CLOSE);
        out.freeze()
    }
}

/// Decimal digits of `n` without allocating.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn bodies_are_the_json_the_api_reads() {
        let mix: Mix = "gsm=1,long=1,ucs2=1".parse().unwrap();
        let range: NumberRange = "447700900000-447700900001".parse().unwrap();
        let w = Workload::new(&mix, "Acme \"Shop\"", range);
        let one: Value = serde_json::from_slice(&w.single(0)).unwrap();
        assert_eq!(one["to"], "+447700900000");
        assert_eq!(one["from"], "Acme \"Shop\"");
        assert_eq!(one["body"], Kind::Gsm.text());
        let batch: Value = serde_json::from_slice(&w.batch(1, 3)).unwrap();
        let items = batch["messages"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["to"], "+447700900001");
        assert_eq!(items[0]["body"], Kind::Long.text());
        assert_eq!(items[1]["to"], "+447700900000");
        assert_eq!(items[1]["body"], Kind::Ucs2.text());
        assert_eq!(items[2]["body"], Kind::Gsm.text());
        assert_eq!(itoa(0).as_bytes(), b"0");
        assert_eq!(itoa(u64::MAX).as_bytes(), b"18446744073709551615");
    }
}
