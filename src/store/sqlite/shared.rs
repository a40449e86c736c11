//! State shared between the writer thread and the store handles.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::StateCounts;

/// Messages per state. The writer is the only writer of the table, so it keeps these exact:
/// it starts from a count at open and adds each transaction's changes once it commits.
#[derive(Debug, Default)]
pub(super) struct Counts([AtomicI64; 10]);

impl Counts {
    pub(super) fn new(initial: [i64; 10]) -> Counts {
        Counts(initial.map(AtomicI64::new))
    }

    pub(super) fn apply(&self, deltas: &[i64; 10]) {
        for (count, delta) in self.0.iter().zip(deltas) {
            if *delta != 0 {
                count.fetch_add(*delta, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn snapshot(&self) -> StateCounts {
        StateCounts::from_array(
            self.0
                .each_ref()
                .map(|c| u64::try_from(c.load(Ordering::Relaxed)).unwrap_or(0)),
        )
    }
}
