//! The outcomes of attempts, recorded in batches.
//!
//! A bind's responses come in bursts (one read holds many), and each wakes a message task.
//! Each task ends its attempt by queueing what it learned in [`Outcomes`]; the first to
//! queue after a batch left becomes the flusher: it lets the other ready tasks run first, so
//! their records join, then writes everything queued in one store call and rolls up the
//! receipts that had come before their response. The others are done at once. So the store
//! sees one write per burst, not one per message, and a record waits no longer than one turn
//! of the scheduler before it goes to the store: it must be there before the message's
//! receipt, which follows its response closely.
//!
//! A record carries the permit of its message's task, released once the record is
//! committed: the dispatcher never has more messages under way (sent or still being
//! recorded) than its permits, and a stop waits for every record, because the flusher is
//! one of the tracked message tasks.

use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;

use super::dispatcher::CarrierEntry;
use crate::store::{MAX_BATCH, Store, Update, UpdateOutcome};
use crate::webhook::Webhooks;

/// What one attempt left to record.
pub(super) struct Record {
    pub(super) updates: Vec<Update>,
    /// The carrier, when the message became `submitted`: receipts matched as its parts were
    /// recorded are rolled up with it.
    pub(super) roll_up: Option<Arc<CarrierEntry>>,
    /// Released once the record is committed.
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Queue {
    records: Vec<Record>,
    /// A flusher will take the queue.
    flushing: bool,
}

/// The records waiting to be written.
#[derive(Default)]
pub(super) struct Outcomes {
    queue: Mutex<Queue>,
}

impl Outcomes {
    /// Queues `record`. The first record queued after a batch left makes its caller the
    /// flusher: it lets the other tasks that are ready run first (their records join the
    /// batch), then takes everything queued and writes it.
    pub(super) async fn record(
        &self,
        store: &dyn Store,
        webhooks: Option<&Webhooks>,
        record: Record,
    ) {
        {
            let mut queue = self.lock();
            queue.records.push(record);
            if queue.flushing {
                return;
            }
            queue.flushing = true;
        }
        // Boxed: only the flusher gets here, and the write's future (it may roll receipts
        // up) would otherwise make every attempt's future several times larger.
        Box::pin(self.flush(store, webhooks)).await;
    }

    /// Lets the other ready tasks queue their records, then writes everything queued.
    async fn flush(&self, store: &dyn Store, webhooks: Option<&Webhooks>) {
        tokio::task::yield_now().await;
        let batches = {
            let mut queue = self.lock();
            queue.flushing = false;
            let mut batches = Vec::new();
            while !queue.records.is_empty() {
                batches.push(take_batch(&mut queue.records));
            }
            batches
        };
        for batch in batches {
            write(store, webhooks, batch).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The oldest records whose updates fit one store call (at least one record).
fn take_batch(records: &mut Vec<Record>) -> Vec<Record> {
    let mut updates = 0;
    let fit = records
        .iter()
        .take_while(|r| {
            updates += r.updates.len();
            updates <= MAX_BATCH
        })
        .count()
        .max(1);
    if fit == records.len() {
        std::mem::take(records)
    } else {
        records.drain(..fit).collect()
    }
}

/// Writes a batch in one store call, then rolls up the receipts it matched.
async fn write(store: &dyn Store, webhooks: Option<&Webhooks>, batch: Vec<Record>) {
    let mut counts = Vec::with_capacity(batch.len());
    let mut updates = Vec::with_capacity(batch.iter().map(|r| r.updates.len()).sum());
    let mut rest = Vec::with_capacity(batch.len());
    for record in batch {
        counts.push(record.updates.len());
        updates.extend(record.updates);
        rest.push((record.roll_up, record.permit));
    }
    let outcomes = match store.apply(updates).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(error = %e, "recording outcomes failed");
            Vec::new()
        }
    };
    // Receipts that came before their submit_sm_resp were matched as the parts were
    // recorded: roll them up now that their messages are submitted.
    let mut matched = Vec::new();
    let mut outcomes = outcomes.into_iter();
    for (n, (roll_up, _)) in counts.into_iter().zip(&rest) {
        for outcome in outcomes.by_ref().take(n) {
            if let (Some(carrier), UpdateOutcome::ReceiptMatched(m)) = (roll_up, outcome) {
                matched.push((carrier.clone(), m));
            }
        }
    }
    if !matched.is_empty() {
        crate::receipts::roll_up(store, webhooks, matched).await;
    }
    // The permits go back last: the messages are recorded.
    drop(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageId;

    fn record(updates: usize) -> Record {
        Record {
            updates: (0..updates)
                .map(|_| Update::InDoubtResubmit {
                    id: MessageId::from_u128(1),
                })
                .collect(),
            roll_up: None,
            permit: None,
        }
    }

    #[test]
    fn a_batch_takes_the_oldest_records_that_fit_one_store_call() {
        let mut records: Vec<Record> = (0..3).map(|_| record(MAX_BATCH / 2)).collect();
        assert_eq!(take_batch(&mut records).len(), 2);
        assert_eq!(records.len(), 1);
        assert_eq!(take_batch(&mut records).len(), 1);
        assert!(records.is_empty());
    }

    #[test]
    fn a_record_larger_than_one_store_call_goes_alone() {
        let mut records = vec![record(MAX_BATCH + 1), record(1)];
        assert_eq!(take_batch(&mut records).len(), 1);
        assert_eq!(records.len(), 1);
    }
}
