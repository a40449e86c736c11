//! What a load run does: the target, the volume and pace, the message mix, the numbers.
//!
//! Every option parses from the text the command line gives (`FromStr`), with an error that
//! says what was expected.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::LoadError;

/// Where the submit socket is. Only loopback addresses and Unix sockets: a load generator
/// aimed at the wrong host is a denial of service, so this one cannot leave the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `http://127.0.0.1:8080` (or `localhost`, or `[::1]`).
    Tcp(SocketAddr),
    /// A Unix socket path (`[api] unix_socket`).
    Unix(PathBuf),
}

impl Target {
    /// The value of the Host header.
    pub fn authority(&self) -> String {
        match self {
            Target::Tcp(addr) => addr.to_string(),
            Target::Unix(_) => "localhost".into(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) => write!(f, "http://{addr}"),
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Target {
    type Err = LoadError;

    /// `http://HOST:PORT` with a loopback HOST (`127.x.y.z`, `[::1]`, `localhost`), or
    /// `unix:PATH`. A path after the port is ignored; the port defaults to 80.
    fn from_str(s: &str) -> Result<Target, LoadError> {
        let bad = |why: &str| LoadError::Option(format!("target {s:?}: {why}"));
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("expected unix:PATH"));
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let Some(rest) = s.strip_prefix("http://") else {
            return Err(bad(
                "expected http://HOST:PORT or unix:PATH (https is not supported)",
            ));
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (!h.starts_with('[') || h.ends_with(']')) => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?;
                (h, port)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse::<IpAddr>()
                .map_err(|_| bad("the host must be an IP address or localhost"))?
        };
        if !ip.is_loopback() {
            return Err(bad("only loopback addresses may be loaded"));
        }
        Ok(Target::Tcp(SocketAddr::new(ip, port)))
    }
}

/// Destination numbers: message `i` goes to `first + σ(i % len)`, where σ is a fixed
/// permutation of `0..len` that scatters neighbours (as real traffic's destinations are), so a
/// run spreads evenly over the range and every number of a range at least as long as the run
/// is used once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumberRange {
    /// The first number (E.164 digits, no `+`).
    pub first: u64,
    /// The last number, inclusive.
    pub last: u64,
}

impl NumberRange {
    /// How many numbers.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never: a range holds at least its first number.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The number of message `i`.
    pub fn nth(&self, i: u64) -> u64 {
        let len = self.len();
        // Multiplying by a constant coprime to `len` permutes 0..len; the constant's bits
        // spread consecutive inputs across the whole range.
        let mut step = SCATTER % len;
        while gcd(step, len) != 1 {
            step += 1;
        }
        let k = u128::from(i % len) * u128::from(step) % u128::from(len);
        // k < len, which is a u64.
        self.first + k as u64
    }
}

/// The multiplier [`NumberRange::nth`] starts from (2^64 / φ, odd).
const SCATTER: u64 = 0x9E37_79B9_7F4A_7C15;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Default for NumberRange {
    fn default() -> Self {
        // UK numbers reserved for drama (Ofcom), so nothing real is ever addressed.
        NumberRange {
            first: 447_700_900_000,
            last: 447_700_900_999,
        }
    }
}

impl FromStr for NumberRange {
    type Err = LoadError;

    /// `FIRST-LAST` or `FIRST..LAST` (inclusive), or one number; a leading `+` is allowed.
    fn from_str(s: &str) -> Result<NumberRange, LoadError> {
        let bad = |why: &str| LoadError::Option(format!("numbers {s:?}: {why}"));
        let number = |t: &str| -> Result<u64, LoadError> {
            let t = t.trim().trim_start_matches('+');
            if t.is_empty() || t.len() > 15 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("each number is 1 to 15 digits (E.164)"));
            }
            if t.starts_with('0') {
                return Err(bad("E.164 numbers do not start with 0"));
            }
            t.parse().map_err(|_| bad("not a number"))
        };
        let (first, last) = match s.split_once("..").or_else(|| s.split_once('-')) {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(s)?;
                (n, n)
            }
        };
        if last < first {
            return Err(bad("the last number is below the first"));
        }
        if first.to_string().len() != last.to_string().len() {
            return Err(bad("both ends need the same number of digits"));
        }
        Ok(NumberRange { first, last })
    }
}

/// The kinds of message a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One part of GSM 7-bit text.
    Gsm,
    /// GSM text long enough for two concatenated parts.
    Long,
    /// UCS2 text (Cyrillic and an emoji), one part.
    Ucs2,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Gsm, Kind::Long, Kind::Ucs2];

    /// The name used in `--mix`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gsm => "gsm",
            Kind::Long => "long",
            Kind::Ucs2 => "ucs2",
        }
    }

    /// The text sent.
    pub fn text(self) -> &'static str {
        match self {
            Kind::Gsm => "Your verification code is 482913. It expires in 10 minutes.",
            // 264 characters of the GSM default alphabet: two parts of at most 153.
            Kind::Long => {
                "Dear customer, your order 20931 has been dispatched and should reach you \
                 within two working days. You can follow the parcel with the tracking \
                 number AB123456789GB on our website. If you are not at home, the driver \
                 will leave a card with instructions. Thank you for shopping with us!"
            }
            Kind::Ucs2 => "Привет! Ваш код подтверждения 4711. Никому его не сообщайте 😀",
        }
    }
}

/// Shares of each kind, e.g. `gsm=70,long=20,ucs2=10`. Messages are interleaved evenly
/// (smooth weighted round robin), so any stretch of a run has about the same mix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Mix {
    /// Only one kind.
    pub fn only(kind: Kind) -> Mix {
        let mut weights = [0; 3];
        weights[kind as usize] = 1;
        Mix { weights }
    }

    /// The weight of a kind.
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights[kind as usize]
    }

    /// The repeating sequence of kinds, as long as the sum of the weights (at most 1 000).
    pub fn schedule(&self) -> Vec<Kind> {
        let total: i64 = self.weights.iter().map(|&w| i64::from(w)).sum();
        let mut current = [0i64; 3];
        let mut out = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (c, &w) in current.iter_mut().zip(&self.weights) {
                *c += i64::from(w);
            }
            // The largest current value; ties go to the first kind.
            let mut best = 0;
            for k in 1..3 {
                if current[k] > current[best] {
                    best = k;
                }
            }
            current[best] -= total;
            out.push(Kind::ALL[best]);
        }
        out
    }
}

impl Default for Mix {
    fn default() -> Self {
        Mix::only(Kind::Gsm)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for kind in Kind::ALL {
            let w = self.weight(kind);
            if w > 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{}={w}", kind.name())?;
                first = false;
            }
        }
        Ok(())
    }
}

impl FromStr for Mix {
    type Err = LoadError;

    /// `KIND=WEIGHT[,KIND=WEIGHT...]` with kinds `gsm`, `long`, `ucs2`; weights are whole
    /// numbers whose sum is 1 to 1 000 (percentages work).
    fn from_str(s: &str) -> Result<Mix, LoadError> {
        let bad = |why: String| LoadError::Option(format!("mix {s:?}: {why}"));
        let mut weights = [0u32; 3];
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, weight) = item.split_once('=').unwrap_or((item, "1"));
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| bad(format!("unknown kind {name:?} (gsm, long, ucs2)")))?;
            weights[kind as usize] = weight
                .trim()
                .parse()
                .map_err(|_| bad(format!("the weight of {name} is not a whole number")))?;
        }
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 || total > 1_000 {
            return Err(bad("the weights must add up to 1..=1000".into()));
        }
        Ok(Mix { weights })
    }
}

/// Reads `500ms`, `10s`, `2m`, `1h` or a plain number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Result<Duration, LoadError> {
    let bad = || LoadError::Option(format!("duration {s:?}: expected e.g. 500ms, 10s, 2m"));
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    // A day at most: longer is surely a typo, and it keeps deadlines far from Instant's end.
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Everything a load run needs.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The submit socket.
    pub target: Target,
    /// The API key, sent as `Authorization: Bearer KEY`.
    pub key: String,
    /// Messages to send; `None` sends until `duration` passes.
    pub count: Option<u64>,
    /// How long to send; `None` sends until `count` is reached.
    pub duration: Option<Duration>,
    /// Messages per second offered; `None` sends as fast as the answers come.
    pub rate: Option<f64>,
    /// Connections, each with one request in flight.
    pub concurrency: usize,
    /// Messages per request: 1 posts to `/messages`, more to `/messages/batch` (at most
    /// 1 000).
    pub batch: usize,
    /// The message mix.
    pub mix: Mix,
    /// Destination numbers.
    pub numbers: NumberRange,
    /// The sender.
    pub from: String,
    /// A request unanswered this long counts as an error.
    pub request_timeout: Duration,
    /// Accepted messages followed to their final state (a uniform sample); 0 follows none.
    pub track: usize,
    /// How long to wait for the followed messages after the sending stops.
    pub settle: Duration,
    /// Draw the live progress line on standard error (only when it is a terminal).
    pub progress: bool,
    /// Report the process's CPU time while sending (meaningful when the process is the load
    /// tool alone, as `smppd load` is).
    pub measure_cpu: bool,
}

impl LoadOptions {
    /// Defaults for everything but the target and key: 1 000 single GSM messages over 16
    /// connections as fast as possible, 1 000 followed for up to 30 s.
    pub fn new(target: Target, key: impl Into<String>) -> LoadOptions {
        LoadOptions {
            target,
            key: key.into(),
            count: Some(1_000),
            duration: None,
            rate: None,
            concurrency: 16,
            batch: 1,
            mix: Mix::default(),
            numbers: NumberRange::default(),
            from: "smppd".into(),
            request_timeout: Duration::from_secs(30),
            track: 1_000,
            settle: Duration::from_secs(30),
            progress: false,
            measure_cpu: false,
        }
    }

    /// Checks the options against each other.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |why: &str| Err(LoadError::Option(why.into()));
        if self.count.is_none() && self.duration.is_none() {
            return bad("give a count, a duration, or both");
        }
        if self.count == Some(0) {
            return bad("the count must be at least 1");
        }
        if !(1..=1_000).contains(&self.batch) {
            return bad("the batch size is 1 to 1000");
        }
        if !(1..=10_000).contains(&self.concurrency) {
            return bad("the concurrency is 1 to 10000");
        }
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return bad("the rate must be above 0 messages per second");
        }
        if self.key.is_empty() {
            return bad("an API key is needed");
        }
        if self.from.is_empty() || self.from.len() > 16 || self.from.contains(['"', '\\']) {
            return bad("the sender is 1 to 16 characters, without quotes or backslashes");
        }
        if self.request_timeout.is_zero() {
            return bad("the request timeout must be above 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_loopback_or_unix() {
        assert_eq!(
            "http://127.0.0.1:8080".parse::<Target>().ok(),
            Some(Target::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            "http://localhost:9/x".parse::<Target>().ok(),
            Some(Target::Tcp("127.0.0.1:9".parse().unwrap()))
        );
        assert_eq!(
            "http://[::1]:8080".parse::<Target>().ok(),
            Some(Target::Tcp("[::1]:8080".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/smppd.sock".parse::<Target>().ok(),
            Some(Target::Unix("/run/smppd.sock".into()))
        );
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com:80",
            "https://127.0.0.1",
            "127.0.0.1:8080",
            "http://127.0.0.1:x",
            "unix:",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn number_ranges_parse_and_wrap() {
        let r: NumberRange = "+447700900000-447700900009".parse().unwrap();
        assert_eq!(r.len(), 10);
        assert_eq!(r.nth(0), 447_700_900_000);
        // Ten messages use every number once, and the eleventh starts over.
        let mut used: Vec<u64> = (0..10).map(|i| r.nth(i)).collect();
        assert_eq!(r.nth(12), r.nth(2));
        assert_ne!(
            used[..3],
            [447_700_900_000, 447_700_900_001, 447_700_900_002]
        );
        used.sort_unstable();
        assert_eq!(
            used,
            (447_700_900_000..=447_700_900_009).collect::<Vec<_>>()
        );
        // Also for a range whose length shares factors with the multiplier's neighbours.
        let big: NumberRange = "447700000000-447700999999".parse().unwrap();
        let mut seen = std::collections::HashSet::new();
        assert!((0..1_000_000).all(|i| seen.insert(big.nth(i))));
        assert!(
            seen.iter()
                .all(|n| (447_700_000_000..=447_700_999_999).contains(n))
        );
        let one: NumberRange = "15550001111".parse().unwrap();
        assert_eq!(one.len(), 1);
        assert!("4477..4476".parse::<NumberRange>().is_err());
        assert!("1-99".parse::<NumberRange>().is_err());
        assert!("0447-0448".parse::<NumberRange>().is_err());
        assert!("1234567890123456".parse::<NumberRange>().is_err());
    }

    #[test]
    fn the_mix_interleaves_by_weight() {
        let mix: Mix = "gsm=2,long=1,ucs2=1".parse().unwrap();
        let s = mix.schedule();
        assert_eq!(s.len(), 4);
        assert_eq!(s.iter().filter(|k| **k == Kind::Gsm).count(), 2);
        assert_ne!(s[0], s[1], "{s:?}");
        assert_eq!(mix.to_string(), "gsm=2,long=1,ucs2=1");
        assert_eq!("ucs2".parse::<Mix>().unwrap(), Mix::only(Kind::Ucs2));
        assert!("gsm=0".parse::<Mix>().is_err());
        assert!("sms=1".parse::<Mix>().is_err());
    }

    #[test]
    fn texts_have_the_parts_their_kind_promises() {
        let options = crate::sms::CarrierTextOptions::default();
        for (kind, parts, encoding) in [
            (Kind::Gsm, 1, crate::sms::Encoding::Gsm7),
            (Kind::Long, 2, crate::sms::Encoding::Gsm7),
            (Kind::Ucs2, 1, crate::sms::Encoding::Ucs2),
        ] {
            let plan = crate::sms::plan(kind.text(), &options).unwrap();
            assert_eq!(plan.parts, parts, "{kind:?}");
            assert_eq!(plan.encoding, encoding, "{kind:?}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
