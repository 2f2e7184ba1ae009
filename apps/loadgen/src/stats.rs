//! Latency histograms and the binomial interval of the payment success share.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Microsecond latencies from 1 µs to 10 minutes, 3 significant digits.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(
            Histogram::new_with_bounds(1, 600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
        )
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let _ = self.0.record((d.as_micros() as u64).clamp(1, 600_000_000));
    }

    fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.0.len(),
            p50_ms: self.ms(0.5),
            p90_ms: self.ms(0.9),
            p99_ms: self.ms(0.99),
            max_ms: self.0.max() as f64 / 1000.0,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.0.max() as f64 / 1000.0,
            self.0.len()
        )
    }
}

/// Quantiles of a latency, in milliseconds, as the report gives them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The Wilson score interval at 95% for `successes` out of `n`.
pub fn wilson95(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let p = successes as f64 / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    // At a share of exactly 0 or 1 the bound on that side is exactly 0 or 1; computed, it can
    // land a rounding error inside, which would put a configured rate of 1.0 outside.
    let lo = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if p == 1.0 {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_reaches_the_edge_at_a_share_of_zero_or_one() {
        assert_eq!(wilson95(2000, 2000).1, 1.0);
        assert_eq!(wilson95(0, 2000).0, 0.0);
        assert!(wilson95(2000, 2000).0 > 0.99);
    }

    #[test]
    fn wilson_interval_matches_known_values() {
        let (lo, hi) = wilson95(90, 100);
        assert!(
            (lo - 0.8256).abs() < 1e-3 && (hi - 0.9448).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson95(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson95(100, 100);
        assert!(hi == 1.0 && lo > 0.96);
    }

    #[test]
    fn latencies_report_quantiles() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert!((s.p50_ms - 50.0).abs() < 0.5);
        assert!((s.max_ms - 100.0).abs() < 0.5);
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["p99Ms"].is_number() && json["count"] == 100);
    }
}
