//! What saga-coordinator reports to Prometheus besides the metrics of every service: sagas by
//! status, stuck sagas, how long sagas take, and dead letters by status. The gauges are read from
//! the database when `/metrics` is scraped, so they cost nothing in between.

use std::time::Duration;

use metrics::{Unit, describe_gauge, describe_histogram};
use sqlx::PgPool;

use crate::dlq::DlqStatus;
use crate::rules::SagaStatus;
use crate::store::{self, Ended};

/// Sagas in each status (gauge). Labels: `status`.
pub const SAGAS: &str = "saga_sagas";
/// Sagas past a deadline the sweep has not dealt with yet (gauge).
pub const STUCK: &str = "saga_stuck";
/// From start to `COMPLETED` or `COMPENSATED` (histogram). Labels: `outcome` (`completed`,
/// `compensated`).
pub const DURATION: &str = "saga_duration_seconds";
/// Dead letters of every service in each status (gauge). Labels: `status`.
pub const DLQ_ENTRIES: &str = "saga_dlq_entries";
/// Disagreements the last reconciliation run found, by kind (gauge). Labels: `kind`.
pub const RECONCILE_MISMATCHES: &str = "saga_reconcile_mismatches";
/// Reconciliation runs (counter). Labels: `outcome` (`finished`, `failed`).
pub const RECONCILE_RUNS: &str = "saga_reconcile_runs_total";

pub fn describe() {
    describe_gauge!(SAGAS, "Sagas in each status");
    describe_gauge!(
        STUCK,
        "Sagas past a deadline that the sweep has not dealt with yet"
    );
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Time from a saga's start to COMPLETED or COMPENSATED"
    );
    describe_gauge!(DLQ_ENTRIES, "Dead letters of every service in each status");
    describe_gauge!(
        RECONCILE_MISMATCHES,
        "Records that disagree, found by the last reconciliation run, by kind"
    );
    metrics::describe_counter!(RECONCILE_RUNS, "Reconciliation runs, by outcome");
    // Exported from the start, at zero until the first run: an alert or a rate over them is
    // defined before any run has finished (and while reconciliation is off).
    for kind in crate::reconcile::compare::MismatchKind::ALL {
        metrics::gauge!(RECONCILE_MISMATCHES, "kind" => kind.as_str()).set(0.0);
    }
    for outcome in ["finished", "failed"] {
        metrics::counter!(RECONCILE_RUNS, "outcome" => outcome).increment(0);
    }
}

/// Records how long the sagas that just ended took.
pub fn ended(ends: &[Ended]) {
    for end in ends {
        let outcome = match end.status {
            SagaStatus::Completed => "completed",
            _ => "compensated",
        };
        metrics::histogram!(DURATION, "outcome" => outcome).record(end.seconds);
    }
}

/// Brings the gauges up to date from the database.
pub async fn refresh(pool: &PgPool, compensation_timeout: Duration) {
    if let Ok(counts) = store::counts(pool).await {
        for status in SagaStatus::ALL {
            let n: i64 = counts
                .iter()
                .filter(|c| c.status == *status)
                .map(|c| c.n)
                .sum();
            metrics::gauge!(SAGAS, "status" => status.as_str()).set(n as f64);
        }
    }
    if let Ok(n) = store::stuck(pool, compensation_timeout).await {
        metrics::gauge!(STUCK).set(n as f64);
    }
    if let Ok(counts) = crate::dlq::store::counts(pool).await {
        for status in DlqStatus::ALL {
            let n = counts
                .iter()
                .find(|c| c.status == *status)
                .map_or(0, |c| c.n);
            metrics::gauge!(DLQ_ENTRIES, "status" => status.as_str()).set(n as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::reconcile::compare::MismatchKind;

    #[test]
    fn the_reconciliation_metrics_are_exported_before_any_run() {
        let handle = messaging::metrics::prometheus();
        super::describe();
        let text = handle.render();
        for kind in MismatchKind::ALL {
            let line = format!(
                "{}{{kind=\"{}\"}} 0",
                super::RECONCILE_MISMATCHES,
                kind.as_str()
            );
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
        for outcome in ["finished", "failed"] {
            let line = format!("{}{{outcome=\"{outcome}\"}} 0", super::RECONCILE_RUNS);
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }
}
