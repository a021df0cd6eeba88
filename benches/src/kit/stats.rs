//! Percentiles and means over samples.

use std::time::Duration;

use super::Unit;

/// Summary of a set of samples, all in one unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    /// Median.
    pub(crate) p50: f64,
    /// 99th percentile (nearest rank); `None` when it means nothing (rates, too few samples).
    pub(crate) p99: Option<f64>,
    /// Arithmetic mean.
    pub(crate) mean: f64,
    /// Number of samples.
    pub(crate) n: u64,
}

impl Stats {
    /// Stats of plain values. `p99` is reported only with 20 samples or more.
    ///
    /// # Panics
    ///
    /// If `values` is empty.
    pub(crate) fn of(values: &[f64]) -> Self {
        assert!(!values.is_empty(), "no samples");
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let p50 = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let p99 = (n >= 20).then(|| v[nearest_rank(n, 0.99)]);
        let mean = v.iter().sum::<f64>() / n as f64;
        Self {
            p50,
            p99,
            mean,
            n: n as u64,
        }
    }

    /// Stats of durations, each covering `ops` operations, expressed per operation in `unit`
    /// (a time unit).
    pub(crate) fn per_op(samples: &[Duration], ops: u64, unit: Unit) -> Self {
        let scale = unit.scale();
        let v: Vec<f64> = samples
            .iter()
            .map(|d| d.as_secs_f64() * scale / ops as f64)
            .collect();
        Self::of(&v)
    }

    /// Rates (`amount` per second, in `unit`'s scale) from durations that each moved `amount`
    /// things. The median rate is the rate of the median duration; no p99 is given.
    pub(crate) fn rate(samples: &[Duration], amount: f64, unit: Unit) -> Self {
        let v: Vec<f64> = samples
            .iter()
            .map(|d| amount / d.as_secs_f64() / unit.scale())
            .collect();
        Self {
            p99: None,
            ..Self::of(&v)
        }
    }
}

/// Index of the nearest-rank percentile `q` in a sorted slice of `n` values.
fn nearest_rank(n: usize, q: f64) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p99() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&v);
        assert_eq!(s.p50, 50.5);
        assert_eq!(s.p99, Some(99.0));
        assert_eq!(s.mean, 50.5);
        assert_eq!(s.n, 100);
        let s = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.p50, s.p99), (2.0, None));
    }

    #[test]
    fn per_op_and_rate() {
        let d = [Duration::from_micros(10); 4];
        let s = Stats::per_op(&d, 10, Unit::Ns);
        assert!((s.p50 - 1000.0).abs() < 1e-6);
        let s = Stats::rate(&[Duration::from_secs(2)], 4e9, Unit::GBps);
        assert!((s.p50 - 2.0).abs() < 1e-9);
        let s = Stats::rate(&[Duration::from_millis(500)], 1000.0, Unit::MsgPerSec);
        assert!((s.p50 - 2000.0).abs() < 1e-9);
    }
}
