//! A fixed-bucket latency histogram: constant memory, O(1) recording, percentiles within
//! about 1.6 % of the true value.
//!
//! Values are microseconds. Below 64 every value has its own bucket; above, every power of
//! two is split into 32 equal buckets (log-linear, as HdrHistogram does with two significant
//! figures), so 1 920 counters cover the whole `u64` range and recording is a few shifts.

use serde::Serialize;

/// Buckets below which every value is exact.
const LINEAR: u64 = 64;
/// log2 of the buckets per power of two above [`LINEAR`].
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64`: exponent 63 maps to the last one.
const BUCKETS: usize = ((63 - SUB_BITS as usize) * SUB as usize) + 2 * SUB as usize;

/// Latencies in microseconds, bucketed.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    // v >= 64, so the exponent is at least 6 and the shift below at least 1.
    let exponent = 63 - v.leading_zeros();
    let shift = exponent - SUB_BITS;
    // The top SUB_BITS + 1 bits: a mantissa in SUB..2 * SUB.
    let mantissa = v >> shift;
    (u64::from(shift) * SUB + mantissa) as usize
}

/// The range of values `[low, high]` that land in bucket `b`.
fn bounds(b: usize) -> (u64, u64) {
    let b = b as u64;
    if b < LINEAR {
        return (b, b);
    }
    let shift = b / SUB - 1;
    let mantissa = b % SUB + SUB;
    let low = mantissa << shift;
    let high = low.saturating_add((1u64 << shift) - 1);
    (low, high)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records one value.
    pub fn record(&mut self, micros: u64) {
        let b = bucket(micros);
        // `bucket` maps every u64 below BUCKETS (checked by a test), so this never misses.
        if let Some(c) = self.counts.get_mut(b) {
            *c += 1;
        }
        self.count += 1;
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    /// Records a duration (saturating at `u64::MAX` microseconds).
    pub fn record_duration(&mut self, d: std::time::Duration) {
        self.record(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += *b;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0..=1.0): the middle of its bucket, never above the
    /// maximum nor below the minimum; the top rank is the maximum itself. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0u64;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bounds(b);
                let mid = low + (high - low) / 2;
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// p50, p90, p99, max and mean, in milliseconds.
    pub fn percentiles_ms(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: self.count,
            p50: ms(self.quantile(0.50)),
            p90: ms(self.quantile(0.90)),
            p99: ms(self.quantile(0.99)),
            max: ms(self.max),
            mean: if self.count == 0 {
                0.0
            } else {
                self.sum as f64 / self.count as f64 / 1000.0
            },
        }
    }
}

/// A latency distribution summed up, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX - 1, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v} -> {b}");
            let (low, high) = bounds(b);
            assert!(low <= v && v <= high, "{v} not in {low}..={high}");
            if v < 100_000 {
                assert!(b == last || b == last + 1, "{v}: {last} -> {b}");
                last = b;
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 50_000.0), (0.9, 90_000.0), (0.99, 99_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.quantile(0.0), 1);
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn merging_adds_counts_and_keeps_extremes() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(5_000);
        b.record(7);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.0), 7);
        assert_eq!(a.max(), 5_000);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }
}
