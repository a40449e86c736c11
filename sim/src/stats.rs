//! Counters: JSON for `GET /stats`, Prometheus text for `GET /metrics` (`smsc_sim_*`).
//!
//! The exposition is written by hand rather than through a global `metrics` recorder, so a
//! simulator and an engine can share one process (as the end-to-end tests do) without their
//! metrics mixing.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use serde::Serialize;
use smppd::pdu::{CommandId, CommandStatus};

/// The commands counted one by one; anything else counts as "other".
const COMMANDS: [CommandId; 25] = [
    CommandId::GENERIC_NACK,
    CommandId::BIND_RECEIVER,
    CommandId::BIND_RECEIVER_RESP,
    CommandId::BIND_TRANSMITTER,
    CommandId::BIND_TRANSMITTER_RESP,
    CommandId::BIND_TRANSCEIVER,
    CommandId::BIND_TRANSCEIVER_RESP,
    CommandId::UNBIND,
    CommandId::UNBIND_RESP,
    CommandId::ENQUIRE_LINK,
    CommandId::ENQUIRE_LINK_RESP,
    CommandId::SUBMIT_SM,
    CommandId::SUBMIT_SM_RESP,
    CommandId::DELIVER_SM,
    CommandId::DELIVER_SM_RESP,
    CommandId::SUBMIT_MULTI,
    CommandId::SUBMIT_MULTI_RESP,
    CommandId::DATA_SM,
    CommandId::DATA_SM_RESP,
    CommandId::QUERY_SM,
    CommandId::QUERY_SM_RESP,
    CommandId::CANCEL_SM,
    CommandId::CANCEL_SM_RESP,
    CommandId::REPLACE_SM,
    CommandId::REPLACE_SM_RESP,
];
const OTHER: usize = COMMANDS.len();

/// Where each command id sits in [`COMMANDS`], by [`slot`]: looked up for every PDU, so a
/// table rather than a search.
const INDEX: [u8; 1024] = {
    let mut table = [OTHER as u8; 1024];
    let mut i = 0;
    while i < COMMANDS.len() {
        table[slot(COMMANDS[i].0)] = i as u8;
        i += 1;
    }
    table
};

/// Every 3.4 command id is below 0x200, or that with the response bit set.
const fn slot(id: u32) -> usize {
    ((id & 0x1FF) | ((id >> 22) & 0x200)) as usize
}

fn index(id: CommandId) -> usize {
    if id.0 & 0x7FFF_FE00 != 0 {
        return OTHER;
    }
    let i = usize::from(INDEX[slot(id.0)]);
    // Ids sharing a slot with a listed one (none in 3.4) still count as "other".
    if COMMANDS.get(i) == Some(&id) {
        i
    } else {
        OTHER
    }
}

fn name(i: usize) -> &'static str {
    COMMANDS.get(i).and_then(|c| c.name()).unwrap_or("other")
}

/// One session's counts since it last added them to the shared [`Stats`]: a session counts
/// every PDU, and atomic additions to counters every session shares would bounce their cache
/// lines between cores on each one.
#[derive(Default)]
pub(crate) struct Tally {
    received: [u64; OTHER + 1],
    sent: [u64; OTHER + 1],
    ok: [u64; OTHER + 1],
    pub(crate) messages_accepted: u64,
    pub(crate) responses_dropped: u64,
    pub(crate) receipts_sent: u64,
    pub(crate) receipts_acked: u64,
    pub(crate) receipts_dropped: u64,
    pub(crate) receipts_resent: u64,
    pub(crate) mo_sent: u64,
    pub(crate) disconnects_injected: u64,
}

impl Tally {
    pub(crate) fn received(&mut self, id: CommandId) {
        self.received[index(id)] += 1;
    }

    /// Counts a PDU written to an ESME; responses also by status (other statuses straight
    /// into `stats`: they are rare).
    pub(crate) fn sent(&mut self, id: CommandId, status: CommandStatus, stats: &Stats) {
        let i = index(id);
        self.sent[i] += 1;
        if id.is_response() {
            if status.is_ok() {
                self.ok[i] += 1;
            } else if let Ok(mut errors) = stats.errors.lock() {
                *errors.entry((i, status.0)).or_default() += 1;
            }
        }
    }

    /// Adds the counts to `stats` and starts again from zero.
    pub(crate) fn flush(&mut self, stats: &Stats) {
        let add = |counter: &AtomicU64, n: &mut u64| {
            if *n > 0 {
                counter.fetch_add(std::mem::take(n), Relaxed);
            }
        };
        for (shared, mine) in [
            (&stats.received, &mut self.received),
            (&stats.sent, &mut self.sent),
            (&stats.ok, &mut self.ok),
        ] {
            for (counter, n) in shared.iter().zip(mine.iter_mut()) {
                add(counter, n);
            }
        }
        add(&stats.messages_accepted, &mut self.messages_accepted);
        add(&stats.responses_dropped, &mut self.responses_dropped);
        add(&stats.receipts_sent, &mut self.receipts_sent);
        add(&stats.receipts_acked, &mut self.receipts_acked);
        add(&stats.receipts_dropped, &mut self.receipts_dropped);
        add(&stats.receipts_resent, &mut self.receipts_resent);
        add(&stats.mo_sent, &mut self.mo_sent);
        add(&stats.disconnects_injected, &mut self.disconnects_injected);
    }
}

/// Live counters, shared by every session.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) binds_active: AtomicI64,
    pub(crate) binds_total: AtomicU64,
    pub(crate) binds_refused: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    received: [AtomicU64; OTHER + 1],
    sent: [AtomicU64; OTHER + 1],
    /// Responses sent with ESME_ROK, by command index of the response.
    ok: [AtomicU64; OTHER + 1],
    /// Responses sent with another status: rare, so a lock is fine.
    errors: Mutex<HashMap<(usize, u32), u64>>,
    pub(crate) messages_accepted: AtomicU64,
    pub(crate) responses_dropped: AtomicU64,
    pub(crate) receipts_sent: AtomicU64,
    pub(crate) receipts_acked: AtomicU64,
    pub(crate) receipts_dropped: AtomicU64,
    pub(crate) receipts_resent: AtomicU64,
    pub(crate) mo_sent: AtomicU64,
    pub(crate) disconnects_injected: AtomicU64,
}

impl Stats {
    /// A consistent-enough copy for reporting.
    pub(crate) fn snapshot(
        &self,
        messages_stored: usize,
        handset_messages: usize,
    ) -> StatsSnapshot {
        let by_command = |counters: &[AtomicU64; OTHER + 1]| {
            counters
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let n = c.load(Relaxed);
                    (n > 0).then(|| (name(i).to_owned(), n))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let mut responses: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (i, c) in self.ok.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                responses
                    .entry(name(i).to_owned())
                    .or_default()
                    .insert("ESME_ROK".into(), n);
            }
        }
        if let Ok(errors) = self.errors.lock() {
            for (&(i, status), &n) in errors.iter() {
                responses
                    .entry(name(i).to_owned())
                    .or_default()
                    .insert(CommandStatus(status).to_string(), n);
            }
        }
        StatsSnapshot {
            binds_active: self.binds_active.load(Relaxed).max(0) as u64,
            binds_total: self.binds_total.load(Relaxed),
            binds_refused: self.binds_refused.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            pdus_received: by_command(&self.received),
            pdus_sent: by_command(&self.sent),
            responses,
            messages_accepted: self.messages_accepted.load(Relaxed),
            messages_stored: messages_stored as u64,
            handset_messages: handset_messages as u64,
            responses_dropped: self.responses_dropped.load(Relaxed),
            receipts_sent: self.receipts_sent.load(Relaxed),
            receipts_acked: self.receipts_acked.load(Relaxed),
            receipts_dropped: self.receipts_dropped.load(Relaxed),
            receipts_resent: self.receipts_resent.load(Relaxed),
            mo_sent: self.mo_sent.load(Relaxed),
            disconnects_injected: self.disconnects_injected.load(Relaxed),
        }
    }
}

/// The counters at one moment (`GET /stats`).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Binds open now.
    pub binds_active: u64,
    /// Binds accepted since start.
    pub binds_total: u64,
    /// Binds refused since start (bad credentials, outage, too many).
    pub binds_refused: u64,
    /// TCP (or TLS) connections accepted since start.
    pub connections_total: u64,
    /// PDUs received, by command name.
    pub pdus_received: BTreeMap<String, u64>,
    /// PDUs sent, by command name.
    pub pdus_sent: BTreeMap<String, u64>,
    /// Responses sent, by command name, then status name.
    pub responses: BTreeMap<String, BTreeMap<String, u64>>,
    /// Short messages accepted (one per submit_sm, per destination of submit_multi, per data_sm).
    pub messages_accepted: u64,
    /// Messages held for query/cancel/replace now.
    pub messages_stored: u64,
    /// Messages in the handset view now.
    pub handset_messages: u64,
    /// Responses withheld by the drop fault.
    pub responses_dropped: u64,
    /// Receipts written to an ESME (resends included).
    pub receipts_sent: u64,
    /// Receipts the ESME answered with ESME_ROK.
    pub receipts_acked: u64,
    /// Receipts given up: dropped by the fault, or unanswered after every resend.
    pub receipts_dropped: u64,
    /// Receipts sent again after an error or no answer.
    pub receipts_resent: u64,
    /// Mobile-originated messages written to an ESME (one per part).
    pub mo_sent: u64,
    /// Connections closed by a disconnect fault.
    pub disconnects_injected: u64,
}

impl StatsSnapshot {
    /// The Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP smsc_sim_{name} {help}");
            let _ = writeln!(out, "# TYPE smsc_sim_{name} {kind}");
            let _ = writeln!(out, "smsc_sim_{name} {value}");
        };
        gauge(
            "binds_active",
            "Binds open now.",
            "gauge",
            self.binds_active,
        );
        gauge(
            "binds_total",
            "Binds accepted.",
            "counter",
            self.binds_total,
        );
        gauge(
            "binds_refused_total",
            "Binds refused.",
            "counter",
            self.binds_refused,
        );
        gauge(
            "messages_accepted_total",
            "Short messages accepted.",
            "counter",
            self.messages_accepted,
        );
        gauge(
            "messages_stored",
            "Messages held now.",
            "gauge",
            self.messages_stored,
        );
        gauge(
            "responses_dropped_total",
            "Responses withheld by the drop fault.",
            "counter",
            self.responses_dropped,
        );
        gauge(
            "receipts_sent_total",
            "Receipts written, resends included.",
            "counter",
            self.receipts_sent,
        );
        gauge(
            "receipts_acked_total",
            "Receipts answered with ESME_ROK.",
            "counter",
            self.receipts_acked,
        );
        gauge(
            "receipts_dropped_total",
            "Receipts given up.",
            "counter",
            self.receipts_dropped,
        );
        gauge(
            "mo_sent_total",
            "MO parts written.",
            "counter",
            self.mo_sent,
        );
        let _ = writeln!(
            out,
            "# HELP smsc_sim_pdus_received_total PDUs received by command."
        );
        let _ = writeln!(out, "# TYPE smsc_sim_pdus_received_total counter");
        for (command, n) in &self.pdus_received {
            let _ = writeln!(
                out,
                "smsc_sim_pdus_received_total{{command=\"{command}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP smsc_sim_pdus_sent_total PDUs sent by command.");
        let _ = writeln!(out, "# TYPE smsc_sim_pdus_sent_total counter");
        for (command, n) in &self.pdus_sent {
            let _ = writeln!(out, "smsc_sim_pdus_sent_total{{command=\"{command}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP smsc_sim_responses_total Responses sent by command and status."
        );
        let _ = writeln!(out, "# TYPE smsc_sim_responses_total counter");
        for (command, statuses) in &self.responses {
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "smsc_sim_responses_total{{command=\"{command}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_command_has_its_own_index() {
        for (i, id) in COMMANDS.iter().enumerate() {
            assert_eq!(index(*id), i, "{id:?}");
        }
        for other in [0x0B, 0x102, 0x8000_0102, 0x1_0004, 0xFFFF_FFFF, 0x8000_0020] {
            assert_eq!(index(CommandId(other)), OTHER, "{other:#x}");
        }
    }
}
