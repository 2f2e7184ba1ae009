//! What every service's HTTP side goes through and reports: each request in a span of its trace
//! (a tower-http request span; its `traceparent` header, or a new trace, becomes the trace of
//! what it causes), and counted and timed by route template for Prometheus
//! (`/orders/{order_id}`, never the raw path, so the number of series stays bounded whatever
//! clients send).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Request as HttpRequest;
use axum::middleware::Next;
use axum::response::Response;
use messaging::trace::{self, TraceParent};
use metrics::{Unit, describe_counter, describe_histogram};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

/// Requests answered. Labels: `route` (the template, or `unmatched`), `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Time to answer a request. Labels: `route`.
pub const HTTP_DURATION: &str = "http_request_duration_seconds";

/// Describes the HTTP metrics (once per process is enough; repeating it is harmless).
pub fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route and status");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route"
    );
}

fn route_of<B>(request: &HttpRequest<B>) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

/// The trace a request continues: its valid `traceparent` header, if it sent one.
fn parent_of<B>(request: &HttpRequest<B>) -> Option<TraceParent> {
    request
        .headers()
        .get(trace::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The request span: method, route template, trace id, status; in the request's trace.
#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &HttpRequest<B>) -> Span {
        let span = tracing::info_span!("request", method = %request.method(),
            route = %route_of(request), trace_id = tracing::field::Empty,
            status = tracing::field::Empty);
        let parent = parent_of(request);
        if let Some(parent) = parent {
            trace::set_parent(&span, parent);
        }
        if let Some(trace) = trace::current_of(&span).or(parent) {
            span.record("trace_id", trace.trace_id_hex());
        }
        span
    }
}

/// Records the status on the request span.
#[derive(Clone, Copy)]
pub struct RequestDone;

impl<B> OnResponse<B> for RequestDone {
    fn on_response(
        self,
        response: &axum::http::Response<B>,
        latency: std::time::Duration,
        span: &Span,
    ) {
        span.record("status", response.status().as_u16());
        tracing::debug!(status = response.status().as_u16(), ?latency, "answered");
    }
}

/// The tower-http layer that gives every request its span.
pub fn request_spans() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    RequestSpan,
    tower_http::trace::DefaultOnRequest,
    RequestDone,
> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(RequestDone)
}

/// Middleware (inside the request span): what the request causes continues its trace, and it is
/// counted and timed under its route template.
pub async fn track(request: Request, next: Next) -> Response {
    let route = route_of(&request);
    // The request span's own context when spans are made; else the caller's trace continued,
    // or a new one.
    let trace = trace::current_of(&Span::current())
        .or_else(|| parent_of(&request).map(TraceParent::child))
        .unwrap_or_else(TraceParent::root);
    let started = Instant::now();
    let response = trace::scope(trace, next.run(request)).await;
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(),
        "status" => response.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    response
}
