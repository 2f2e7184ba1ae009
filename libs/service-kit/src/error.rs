//! The error shape of every HTTP API:
//! `{"error": {"code": "VALIDATION_FAILED", "message": "...", "details": [...]}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
    /// Seconds after which a retry may succeed (`Retry-After`), for a 503.
    pub retry_after: Option<u64>,
    /// What went wrong inside, for the log (never for the client): the request's middleware
    /// logs it once ([`log_errors`]).
    pub cause: Option<Cause>,
}

/// The inside story of an error answer, carried on the response to the one place that logs it.
#[derive(Clone, Debug)]
pub struct Cause {
    /// A failure of the service (error) or of what it depends on (warning).
    pub unexpected: bool,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
            cause: None,
        }
    }

    /// The service takes no more of this work now: a 503 `OVERLOADED` with `Retry-After`.
    pub fn overloaded(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", message)
        }
    }

    pub fn validation(details: Vec<FieldError>) -> ApiError {
        ApiError {
            details,
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
                "the request is not valid",
            )
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// An unexpected failure: answered without its details, which [`log_errors`] logs once.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError {
            cause: Some(Cause {
                unexpected: true,
                message: error.to_string(),
            }),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "an unexpected error occurred",
            )
        }
    }
}

impl ApiError {
    /// Something the service depends on is away: a 503 `code` with `message` and
    /// `Retry-After`; `cause` is logged (at warning) by [`log_errors`].
    pub fn dependency_away(
        code: &'static str,
        message: impl Into<String>,
        cause: impl std::fmt::Display,
    ) -> ApiError {
        ApiError {
            retry_after: Some(1),
            cause: Some(Cause {
                unexpected: false,
                message: cause.to_string(),
            }),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    fn unavailable(error: impl std::fmt::Display) -> ApiError {
        ApiError {
            retry_after: Some(1),
            cause: Some(Cause {
                unexpected: false,
                message: format!("database unavailable: {error}"),
            }),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the database is unavailable; try again",
            )
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        if messaging::db::is_unavailable(&error) {
            ApiError::unavailable(error)
        } else {
            ApiError::internal(error)
        }
    }
}

/// An error with context (`.context("reading an order")`): a 503 when the database could not
/// be reached, else a 500 logged with the whole chain, so the log says which step failed.
impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        if messaging::db::is_unavailable_in(&error) {
            ApiError::unavailable(format!("{error:#}"))
        } else {
            ApiError::internal(format!("{error:#}"))
        }
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInner,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorInner {
    /// A stable code, e.g. VALIDATION_FAILED, NOT_FOUND, SAGA_NOT_RETRYABLE.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// For VALIDATION_FAILED: each field and what is wrong with it.
    pub details: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

/// The answer to a request whose handler panicked (a bug): a 500 in the error shape, logged,
/// instead of a dropped connection.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    ApiError::internal(format!("handler panicked: {why}")).into_response()
}

/// Middleware: logs, once, the inside story of every error answer that has one (an unexpected
/// failure at error, a dependency that was away at warning), in the request's span.
pub async fn log_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    if let Some(cause) = response.extensions().get::<Cause>() {
        let status = response.status().as_u16();
        if cause.unexpected {
            tracing::error!(status, error = %cause.message, "request failed");
        } else {
            tracing::warn!(status, error = %cause.message, "request could not be served");
        }
    }
    response
}

/// The answer to a request that took longer than the service allows (a hung handler): a 503 in
/// the error shape, instead of holding the connection.
pub fn timed_out() -> ApiError {
    ApiError {
        retry_after: Some(1),
        cause: Some(Cause {
            unexpected: true,
            message: "the request took longer than HTTP_REQUEST_TIMEOUT_MS".into(),
        }),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TIMEOUT",
            "the request took too long; try again",
        )
    }
}

/// Gives the answer of the request timeout (tower-http's `TimeoutLayer`, which answers an
/// empty 408 when a handler takes too long: no handler answers 408 itself) the error shape: a
/// 503 `TIMEOUT` with `Retry-After`.
pub async fn shape_timeout(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        timed_out().into_response()
    } else {
        response
    }
}

/// The 404 for paths no route matches.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such resource")
}

/// The 405 for a method a route does not take.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this resource does not take that method",
    )
}
