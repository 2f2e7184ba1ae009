//! Trace context across services: the W3C `traceparent` of each event.
//!
//! A request's `traceparent` (or a new trace) becomes the trace of everything the order causes:
//! it is stored with each outbox row, sent as the `traceparent` header of the NATS message, and
//! continued by each consumer for the events it emits. That much always happens, so every saga
//! has a trace id whether or not spans are exported.
//!
//! When an OTLP exporter is configured ([`enable`]), the services also make spans (a request,
//! each batch and each event a consumer handles, each publish) whose parents are these contexts,
//! so one trace holds the whole order across the four services. When it is not, no span is made
//! on these paths at all: tracing costs a parse and a format per event, nothing more.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header every event carries its trace context in.
pub const HEADER: &str = "traceparent";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes the spans of the traced paths (call once, when an exporter is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are made and exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub use shared_events::trace_context::{NotATraceParent, TraceParent};

fn span_context(parent: TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(parent.trace_id.to_be_bytes()),
        SpanId::from_bytes(parent.span_id.to_be_bytes()),
        if parent.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    )
}

fn of(context: &SpanContext) -> Option<TraceParent> {
    context.is_valid().then(|| TraceParent {
        trace_id: u128::from_be_bytes(context.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(context.span_id().to_bytes()),
        sampled: context.is_sampled(),
    })
}

tokio::task_local! {
    /// The trace of the request this task serves (set around each HTTP request).
    static CURRENT: TraceParent;
}

/// Runs `work` with `trace` as the trace of what it causes (see [`current`]).
pub async fn scope<F: std::future::Future>(trace: TraceParent, work: F) -> F::Output {
    CURRENT.scope(trace, work).await
}

/// The trace of the request this task serves, if any: what its events continue.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|t| *t).ok()
}

/// The context for work that `parent` caused inside `span`: the span's own context when spans
/// are made, else `parent` continued with a new span id.
pub fn within(parent: TraceParent, span: &Span) -> TraceParent {
    current_of(span).unwrap_or_else(|| parent.child())
}

/// Makes `span` a child of `parent` in its trace (when spans are made; before it is entered).
pub fn set_parent(span: &Span, parent: TraceParent) {
    if enabled() && !span.is_disabled() {
        let context = opentelemetry::Context::new().with_remote_span_context(span_context(parent));
        let _ = span.set_parent(context);
    }
}

/// Links `span` to the trace of `other` (work done for it, in another trace's span).
pub fn link(span: &Span, other: TraceParent) {
    if enabled() && !span.is_disabled() {
        span.add_link(span_context(other));
    }
}

/// The trace context of `span`, if it has one (spans are made and it is enabled).
pub fn current_of(span: &Span) -> Option<TraceParent> {
    if !enabled() || span.is_disabled() {
        return None;
    }
    of(span.context().span().span_context())
}

/// A span for work on behalf of `parent`'s trace, made only when spans are exported.
#[macro_export]
macro_rules! traced_span {
    ($parent:expr, $name:literal $(, $($fields:tt)*)?) => {{
        if $crate::trace::enabled() {
            let span = tracing::info_span!($name $(, $($fields)*)?);
            if let Some(parent) = $parent {
                $crate::trace::set_parent(&span, parent);
            }
            span
        } else {
            tracing::Span::none()
        }
    }};
}
