//! What every service's HTTP side reports to Prometheus, by route template (`/orders/{order_id}`,
//! never the raw path, so the number of series stays bounded whatever clients send).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Unit, describe_counter, describe_histogram};

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

/// Middleware: counts and times every request under its route template.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(),
        "status" => response.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    response
}
