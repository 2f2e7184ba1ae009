//! Metric names of the messaging plumbing, in one place, described once at start-up.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Events the relay published and JetStream acknowledged. Labels: `subject`.
pub const EVENTS_PUBLISHED: &str = "messaging_events_published_total";
/// Publishes JetStream recognised as already stored (same `Nats-Msg-Id` within its window).
pub const EVENTS_REPUBLISHED: &str = "messaging_events_republished_total";
/// Deliveries a consumer finished with. Labels: `consumer`, `subject`, `outcome`
/// (`handled`, `duplicate`, `retried`, `dead_lettered`).
pub const EVENTS_CONSUMED: &str = "messaging_events_consumed_total";
/// Time a consumer spent on one batch of deliveries, transaction and acks included. Labels:
/// `consumer`.
pub const HANDLER_SECONDS: &str = "messaging_handler_duration_seconds";
/// Deliveries handled together in one transaction. Labels: `consumer`.
pub const BATCH_SIZE: &str = "messaging_batch_size";
/// Outbox rows not yet published. Labels: `service`.
pub const OUTBOX_BACKLOG: &str = "messaging_outbox_backlog";
/// Age of the oldest unpublished outbox row (0 when none). Labels: `service`.
pub const OUTBOX_OLDEST_AGE: &str = "messaging_outbox_oldest_unsent_age_seconds";
/// Messages sent to the DLQ stream. Labels: `consumer`, `reason`.
pub const DEAD_LETTERED: &str = "messaging_dead_lettered_total";
/// Inbox rows deleted past the redelivery horizon.
pub const INBOX_PRUNED: &str = "messaging_inbox_pruned_total";
/// Dead-letter records (`messaging_dead_letters`) deleted past the redelivery horizon.
pub const DEAD_LETTERS_PRUNED: &str = "messaging_dead_letters_pruned_total";
/// Sent outbox rows deleted past the retention.
pub const OUTBOX_PRUNED: &str = "messaging_outbox_pruned_total";

fn describe() {
    describe_counter!(
        EVENTS_PUBLISHED,
        "Events published from the outbox and acknowledged by JetStream"
    );
    describe_counter!(
        EVENTS_REPUBLISHED,
        "Outbox publishes JetStream had already stored (deduplicated)"
    );
    describe_counter!(
        OUTBOX_PRUNED,
        "Sent outbox rows deleted once older than the retention"
    );
    describe_counter!(
        INBOX_PRUNED,
        "Inbox rows deleted once no redelivery of their event was possible"
    );
    describe_counter!(
        DEAD_LETTERS_PRUNED,
        "Dead-letter records deleted once no redelivery of their message was possible"
    );
    describe_counter!(
        EVENTS_CONSUMED,
        "Deliveries finished by a consumer, by outcome"
    );
    describe_histogram!(
        HANDLER_SECONDS,
        Unit::Seconds,
        "Time spent handling one batch of deliveries"
    );
    describe_histogram!(BATCH_SIZE, "Deliveries handled together in one transaction");
    describe_gauge!(OUTBOX_BACKLOG, "Outbox rows not yet published");
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest unpublished outbox row"
    );
    describe_counter!(DEAD_LETTERED, "Messages sent to the dead-letter stream");
}

const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide Prometheus recorder, installed on first use; render it for `GET /metrics`.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        // Only fails if another recorder is already global; ours then simply stays empty.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}
