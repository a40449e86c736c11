//! What a load run found: counts, rates, latencies, final states; as text or one JSON object.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::histogram::Percentiles;

/// The result of a load run (`smppd load --json` prints it as one object).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Where the messages went.
    pub target: String,
    /// Messages per request (1: POST /messages; more: POST /messages/batch).
    pub batch: usize,
    /// Connections.
    pub concurrency: usize,
    /// The rate asked for, messages per second (`null`: as fast as possible).
    pub rate_target: Option<f64>,
    /// The message mix, e.g. `gsm=70,long=20,ucs2=10`.
    pub mix: String,
    /// Seconds from the first request to the last answer.
    pub elapsed_secs: f64,
    /// Requests answered or failed.
    pub requests: u64,
    /// Messages sent (in requests that were made), by kind in `sent_by_kind`.
    pub sent: u64,
    /// Messages sent, per kind (`gsm`, `long`, `ucs2`).
    pub sent_by_kind: BTreeMap<String, u64>,
    /// Messages the engine accepted (202, or a batch item with an id).
    pub accepted: u64,
    /// Of those, answers flagged `duplicate` (an idempotency key seen before).
    pub duplicates: u64,
    /// Parts of the accepted messages, as the engine priced them.
    pub parts: u64,
    /// Messages refused with an HTTP error or a batch item error.
    pub rejected: u64,
    /// Refused messages by the API's error code (`http_<status>` when the body had none).
    pub rejected_by_code: BTreeMap<String, u64>,
    /// Messages in requests that got no HTTP answer (their fate is unknown).
    pub errors: u64,
    /// Those by cause: `connect`, `http`, `timeout`, `short_answer`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Messages sent per second.
    pub sent_per_sec: f64,
    /// Messages accepted per second.
    pub accepted_per_sec: f64,
    /// Time from sending a request to its whole answer (per request: a batch counts once).
    pub accept_latency_ms: Percentiles,
    /// Where the followed messages ended up (absent when none were followed).
    #[serde(rename = "final")]
    pub final_states: Option<FinalStates>,
    /// CPU time the load tool used, seconds (user + system), when it runs alone.
    pub cpu_secs: Option<f64>,
}

/// The final states of the followed messages (a uniform sample of the accepted ones, or
/// all of them when there are no more than the sample size).
#[derive(Clone, Debug, Default, Serialize)]
pub struct FinalStates {
    /// Messages followed.
    pub tracked: u64,
    /// Seconds spent waiting for them after the sending stopped.
    pub waited_secs: f64,
    /// Delivered.
    pub delivered: u64,
    /// Failed.
    pub failed: u64,
    /// Expired.
    pub expired: u64,
    /// Rejected by the carrier's receipt.
    pub rejected: u64,
    /// No receipt in time.
    pub unknown: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Not final when the waiting ended.
    pub pending: u64,
    /// The pending ones by state (`accepted`, `submitting`, `submitted`, `retrying`).
    pub pending_by_state: BTreeMap<String, u64>,
    /// Not found (pruned, or never stored).
    pub missing: u64,
    /// Accept to final state, from the engine's own times (`created_at` to `updated_at`,
    /// millisecond resolution), over the messages that reached one.
    pub latency_ms: Percentiles,
    /// Accept to the last submit_sm_resp of the attempt the carrier accepted (`created_at`
    /// to that attempt's `ended_at`), over the messages that reached a final state after one.
    pub submit_latency_ms: Percentiles,
}

impl FinalStates {
    /// Counts one state by name.
    pub(crate) fn count(&mut self, state: &str) -> bool {
        let slot = match state {
            "delivered" => &mut self.delivered,
            "failed" => &mut self.failed,
            "expired" => &mut self.expired,
            "rejected" => &mut self.rejected,
            "unknown" => &mut self.unknown,
            "cancelled" => &mut self.cancelled,
            _ => return false,
        };
        *slot += 1;
        true
    }
}

fn latency(f: &mut fmt::Formatter<'_>, p: &Percentiles) -> fmt::Result {
    write!(
        f,
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        p.p50, p.p90, p.p99, p.max
    )
}

fn by_code(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let items: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(" ({})", items.join(", "))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.batch == 1 {
            "single POSTs".to_owned()
        } else {
            format!("batches of {}", self.batch)
        };
        let pace = match self.rate_target {
            Some(r) => format!("at {r:.0} msg/s"),
            None => "as fast as possible".into(),
        };
        writeln!(
            f,
            "smppd load: {}, {} connections, {how}, mix {}, {pace}",
            self.target, self.concurrency, self.mix
        )?;
        writeln!(
            f,
            "  sent      {} messages in {} requests over {:.2} s: {:.0} msg/s",
            self.sent, self.requests, self.elapsed_secs, self.sent_per_sec
        )?;
        writeln!(
            f,
            "  accepted  {} ({:.0} msg/s), {} parts, {} duplicates",
            self.accepted, self.accepted_per_sec, self.parts, self.duplicates
        )?;
        writeln!(
            f,
            "  rejected  {}{}",
            self.rejected,
            by_code(&self.rejected_by_code)
        )?;
        writeln!(
            f,
            "  errors    {}{}",
            self.errors,
            by_code(&self.errors_by_kind)
        )?;
        write!(f, "  accept latency per request: ")?;
        latency(f, &self.accept_latency_ms)?;
        writeln!(f)?;
        if let Some(s) = &self.final_states {
            writeln!(
                f,
                "  final states of {} followed (waited {:.1} s): delivered {}, failed {}, \
                 expired {}, rejected {}, unknown {}, cancelled {}, pending {}{}, missing {}",
                s.tracked,
                s.waited_secs,
                s.delivered,
                s.failed,
                s.expired,
                s.rejected,
                s.unknown,
                s.cancelled,
                s.pending,
                by_code(&s.pending_by_state),
                s.missing
            )?;
            write!(f, "  accept to submit_sm_resp: ")?;
            latency(f, &s.submit_latency_ms)?;
            writeln!(f)?;
            write!(f, "  accept to final: ")?;
            latency(f, &s.latency_ms)?;
            writeln!(f)?;
        }
        if let Some(cpu) = self.cpu_secs {
            writeln!(
                f,
                "  load tool CPU {cpu:.2} s ({:.2} cores)",
                cpu / self.elapsed_secs.max(1e-9)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_summary_names_every_count() {
        let mut s = Summary {
            target: "http://127.0.0.1:8080".into(),
            batch: 100,
            concurrency: 4,
            mix: "gsm=100".into(),
            elapsed_secs: 2.0,
            sent: 1_000,
            accepted: 990,
            rejected: 10,
            cpu_secs: Some(1.0),
            ..Summary::default()
        };
        s.rejected_by_code.insert("overloaded".into(), 10);
        let mut finals = FinalStates {
            tracked: 990,
            pending: 2,
            ..FinalStates::default()
        };
        assert!(finals.count("delivered"));
        assert!(!finals.count("submitted"));
        finals.pending_by_state.insert("submitted".into(), 2);
        s.final_states = Some(finals);
        let text = s.to_string();
        for needle in [
            "batches of 100",
            "accepted  990",
            "rejected  10 (overloaded 10)",
            "delivered 1,",
            "pending 2 (submitted 2)",
            "accept to submit_sm_resp",
            "0.50 cores",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["final"]["delivered"], 1);
    }
}
