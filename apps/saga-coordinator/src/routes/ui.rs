//! `GET /ui`: the saga dashboard, a page served from the binary (its files are compiled in), that
//! loads nothing from anywhere but this service: a Content-Security-Policy tells the browser so.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Api;

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/app.css");

/// Everything the page needs comes from this origin; nothing may come from anywhere else.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The routes, each with its description.
pub fn api() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(page_slash))
        .routes(routes!(script))
        .routes(routes!(style))
}

/// The saga dashboard.
#[utoipa::path(get, path = "/ui", tag = "dashboard",
    responses((status = 200, description = "The page", body = String,
        content_type = "text/html; charset=utf-8")))]
async fn page() -> Response {
    file(INDEX, "text/html; charset=utf-8")
}

/// The dashboard, at its one address.
#[utoipa::path(get, path = "/ui/", tag = "dashboard",
    responses((status = 308, description = "To /ui")))]
async fn page_slash() -> Redirect {
    Redirect::permanent("/ui")
}

/// The dashboard's script.
#[utoipa::path(get, path = "/ui/app.js", tag = "dashboard",
    responses((status = 200, description = "The script", body = String,
        content_type = "text/javascript; charset=utf-8")))]
async fn script() -> Response {
    file(SCRIPT, "text/javascript; charset=utf-8")
}

/// The dashboard's styles.
#[utoipa::path(get, path = "/ui/app.css", tag = "dashboard",
    responses((status = 200, description = "The styles", body = String,
        content_type = "text/css; charset=utf-8")))]
async fn style() -> Response {
    file(STYLE, "text/css; charset=utf-8")
}

fn file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(POLICY),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}
