//! Extractors that answer bad input in the API's error shape: 400 for malformed JSON or a bad path
//! or query, 413 for a body over the limit, 415 for a body that is not JSON, 422 for JSON of the
//! wrong shape.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// The body limit of every service (64 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("the body is over {BODY_LIMIT} bytes"),
    )
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "the body must be JSON, sent with Content-Type: application/json",
    )
}

/// A JSON body, or an [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => not_json(),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "MALFORMED_JSON",
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::validation(vec![FieldError::new("body", e.body_text())])
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::bad_request("BAD_REQUEST", other.body_text()),
    }
}

/// A JSON body that may also be absent (an empty body or `null` gives `T::default()`).
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request("BAD_REQUEST", e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json {
            return Err(not_json());
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match <Option<T> as serde::Deserialize>::deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
        {
            Ok(value) => Ok(OptionalJson(value.unwrap_or_default())),
            Err(e) if e.is_data() => Err(ApiError::validation(vec![FieldError::new(
                "body",
                e.to_string(),
            )])),
            Err(e) => Err(ApiError::bad_request(
                "MALFORMED_JSON",
                format!("the body is not valid JSON: {e}"),
            )),
        }
    }
}

/// Path parameters, or a 400 saying which one is wrong.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::bad_request(
                "INVALID_ID",
                format!("invalid path: {}", e.body_text()),
            )),
            Err(other) => Err(ApiError::bad_request("BAD_REQUEST", other.body_text())),
        }
    }
}

/// Query parameters, or a 400 saying which one is wrong.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::bad_request("INVALID_QUERY", e.body_text()))
            }
            Err(other) => Err(ApiError::bad_request("INVALID_QUERY", other.body_text())),
        }
    }
}

/// An optional query parameter, checked by its type (an id, a status) before it goes anywhere
/// near the database; empty counts as absent.
pub fn query_value<T: std::str::FromStr>(
    field: &str,
    raw: Option<&str>,
) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    match raw {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e: T::Err| ApiError::validation(vec![FieldError::new(field, e.to_string())])),
    }
}

/// An RFC 3339 time, as a query parameter (`createdAfter=2026-11-29T12:00:00Z`).
pub struct Time(pub chrono::DateTime<chrono::Utc>);

impl std::str::FromStr for Time {
    type Err = String;
    fn from_str(text: &str) -> Result<Time, String> {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Time(t.with_timezone(&chrono::Utc)))
            .map_err(|_| "must be an RFC 3339 time such as 2026-11-29T12:00:00Z".to_owned())
    }
}

/// A person's note on an action (an order's cancellation, an operator's abort or discard):
/// absent when blank, else at most 500 characters without control characters.
pub fn note(field: &str, text: Option<String>) -> Result<Option<String>, ApiError> {
    let text = text.filter(|t| !t.trim().is_empty());
    if text
        .as_ref()
        .is_some_and(|t| t.chars().count() > 500 || t.chars().any(char::is_control))
    {
        return Err(ApiError::validation(vec![FieldError::new(
            field,
            "must be at most 500 characters, without control characters",
        )]));
    }
    Ok(text)
}

/// The most ids a lookup by a list of ids takes at once.
pub const MAX_IDS: usize = 100;

/// A comma-separated list of 1 to [`MAX_IDS`] UUIDs, as a query parameter
/// (`orderIds=0190…,0190…`).
pub fn id_list(field: &str, raw: Option<&str>) -> Result<Vec<uuid::Uuid>, ApiError> {
    let invalid = |message: String| ApiError::validation(vec![FieldError::new(field, message)]);
    let raw = raw
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("is required".into()))?;
    let ids = raw
        .split(',')
        .map(|id| id.trim().parse::<uuid::Uuid>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("must be comma-separated UUIDs".into()))?;
    if ids.len() > MAX_IDS {
        return Err(invalid(format!("at most {MAX_IDS} ids")));
    }
    Ok(ids)
}

/// Keeps a checked query value, or adds its problems to `errors`, so that a request hears of
/// every bad parameter at once.
pub fn keep<T>(errors: &mut Vec<FieldError>, checked: Result<Option<T>, ApiError>) -> Option<T> {
    checked.unwrap_or_else(|e| {
        errors.extend(e.details);
        None
    })
}

/// Page size: default 20, at most 100.
pub fn page_limit(limit: Option<u32>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(20),
        Some(n @ 1..=100) => Ok(i64::from(n)),
        Some(_) => Err(ApiError::validation(vec![FieldError::new(
            "limit",
            "must be between 1 and 100",
        )])),
    }
}

/// A page of a list: `{"items": [...], "nextCursor": ...}`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next_cursor: Option<C>,
}

impl<T, C> Page<T, C> {
    /// From rows fetched with `limit + 1`: the extra row only tells that another page follows,
    /// starting after the last kept row.
    pub fn from_fetched(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Page<T, C> {
        let more = items.len() as i64 > limit;
        items.truncate(limit.max(0) as usize);
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Page { items, next_cursor }
    }

    /// The same page, each item as `f` makes it (a row as the API shows it).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U, C> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
