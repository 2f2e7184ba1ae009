//! The HTTP API of saga-coordinator: the sagas (`GET /sagas/{sagaId}`, `GET /sagas`,
//! `GET /sagas/stats`), what an operator does to one (`POST /sagas/{sagaId}/retry`,
//! `POST /sagas/{sagaId}/abort`), the dead letters ([`dlq`]), and the dashboard ([`ui`]).

pub mod dlq;
pub mod ui;

use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Actor, AdminToken};
use service_kit::extract::{OptionalJson, Page, keep, page_limit, query_value};
use service_kit::{ApiError, ApiPath, ApiQuery, FieldError, Infra};
use shared_events::{AbortReason, Reaction};
use uuid::Uuid;

use crate::Timeouts;
use crate::rules::{Input, SagaStatus};
use crate::store::{self, ListFilter, SagaView, Seen};

#[derive(Clone)]
pub struct Api {
    pub infra: Infra,
    pub admin: AdminToken,
    pub timeouts: Timeouts,
}

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/sagas", get(list))
        .route("/sagas/stats", get(stats))
        .route("/sagas/{saga_id}", get(get_one))
        .route("/sagas/{saga_id}/retry", post(retry))
        .route("/sagas/{saga_id}/abort", post(abort))
        .merge(dlq::router())
        .merge(ui::router())
        .with_state(api)
}

async fn view_of(api: &Api, saga_id: Uuid) -> Result<SagaView, ApiError> {
    store::get(&api.infra.pool, saga_id, api.timeouts.compensation)
        .await
        .context("reading a saga")?
        .ok_or_else(|| ApiError::not_found(format!("no saga {saga_id}")))
}

async fn get_one(
    State(api): State<Api>,
    ApiPath(saga_id): ApiPath<Uuid>,
) -> Result<Json<SagaView>, ApiError> {
    view_of(&api, saga_id).await.map(Json)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    status: Option<String>,
    order_id: Option<Uuid>,
    reason: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    stuck: Option<String>,
    limit: Option<u32>,
    cursor: Option<Uuid>,
}

/// An RFC 3339 time.
struct Time(DateTime<Utc>);

impl std::str::FromStr for Time {
    type Err = String;
    fn from_str(text: &str) -> Result<Time, String> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Time(t.with_timezone(&Utc)))
            .map_err(|_| "must be an RFC 3339 time such as 2026-11-29T12:00:00Z".to_owned())
    }
}

/// `true` or `false`.
struct Flag(bool);

impl std::str::FromStr for Flag {
    type Err = &'static str;
    fn from_str(text: &str) -> Result<Flag, &'static str> {
        match text {
            "true" => Ok(Flag(true)),
            "false" => Ok(Flag(false)),
            _ => Err("must be true or false"),
        }
    }
}

/// `GET /sagas?status=&orderId=&reason=&createdAfter=&createdBefore=&stuck=&limit=&cursor=`:
/// a page of sagas, newest first; the filters combine.
async fn list(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<SagaView, Uuid>>, ApiError> {
    let limit = page_limit(query.limit)?;
    let mut errors = Vec::new();
    let e = &mut errors;
    let filter = ListFilter {
        status: keep(e, query_value("status", query.status.as_deref())),
        order_id: query.order_id,
        reason: keep(e, query_value("reason", query.reason.as_deref())),
        created_after: keep(
            e,
            query_value::<Time>("createdAfter", query.created_after.as_deref()),
        )
        .map(|t| t.0),
        created_before: keep(
            e,
            query_value::<Time>("createdBefore", query.created_before.as_deref()),
        )
        .map(|t| t.0),
        stuck: keep(e, query_value::<Flag>("stuck", query.stuck.as_deref())).map(|f| f.0),
        before: query.cursor,
        limit: limit + 1,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let items = store::list(&api.infra.pool, &filter, api.timeouts.compensation)
        .await
        .context("listing sagas")?;
    Ok(Json(Page::from_fetched(items, limit, |s| s.saga_id)))
}

/// A stats window: `90s`, `15m`, `2h`, from one minute to a day.
#[derive(Clone, Copy)]
struct Window(Duration);

impl std::str::FromStr for Window {
    type Err = &'static str;
    fn from_str(text: &str) -> Result<Window, &'static str> {
        const WRONG: &str = "must be 1m to 24h, written like 90s, 15m or 2h";
        let (number, unit) = text.split_at(text.len().saturating_sub(1));
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(WRONG),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WRONG);
        }
        let seconds = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .ok_or(WRONG)?;
        if (60..=86_400).contains(&seconds) {
            Ok(Window(Duration::from_secs(seconds)))
        } else {
            Err(WRONG)
        }
    }
}

#[derive(Deserialize)]
struct StatsQuery {
    window: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    window: String,
    by_status: serde_json::Map<String, serde_json::Value>,
    by_reason: serde_json::Map<String, serde_json::Value>,
    stuck: i64,
    in_flight: i64,
    ended: i64,
    duration: Durations,
    /// Sagas ended in each minute of the window (at most the last hour), oldest first.
    ended_per_minute: Vec<store::Minute>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Durations {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// `GET /sagas/stats?window=15m`: counts over all sagas, and how long the sagas that ended in the
/// window took.
async fn stats(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let text = query
        .window
        .filter(|w| !w.is_empty())
        .unwrap_or("15m".into());
    let Window(window) = text
        .parse()
        .map_err(|e: &str| ApiError::validation(vec![FieldError::new("window", e)]))?;
    let pool = &api.infra.pool;
    let counts = store::counts(pool).await.context("counting sagas")?;
    let stuck = store::stuck(pool, api.timeouts.compensation)
        .await
        .context("counting stuck sagas")?;
    let ends = store::ends(pool, window)
        .await
        .context("timing ended sagas")?;
    let minutes = (window.as_secs() / 60).clamp(1, 60) as i64;
    let ended_per_minute = store::ended_per_minute(pool, minutes)
        .await
        .context("counting sagas ended per minute")?;
    let count_of = |status: SagaStatus| -> i64 {
        counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.n)
            .sum()
    };
    let by_status = SagaStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), count_of(*s).into()))
        .collect();
    let by_reason = AbortReason::ALL
        .iter()
        .map(|r| {
            let n: i64 = counts
                .iter()
                .filter(|c| c.reason == Some(*r))
                .map(|c| c.n)
                .sum();
            (r.as_str().to_owned(), n.into())
        })
        .collect();
    Ok(Json(Stats {
        window: text,
        by_status,
        by_reason,
        stuck,
        in_flight: count_of(SagaStatus::Started) + count_of(SagaStatus::Compensating),
        ended: ends.ended,
        duration: Durations {
            p50_ms: ends.p50_ms.unwrap_or(0.0),
            p90_ms: ends.p90_ms.unwrap_or(0.0),
            p99_ms: ends.p99_ms.unwrap_or(0.0),
            max_ms: ends.max_ms.unwrap_or(0.0),
        },
        ended_per_minute,
    }))
}

/// An operator's note: at most 500 characters, no control characters.
pub(crate) fn note(detail: Option<String>) -> Result<Option<String>, ApiError> {
    let detail = detail.filter(|d| !d.trim().is_empty());
    if detail
        .as_ref()
        .is_some_and(|d| d.chars().count() > 500 || d.chars().any(char::is_control))
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "detail",
            "must be at most 500 characters, without control characters",
        )]));
    }
    Ok(detail)
}

/// What an operator does to a saga.
#[derive(Clone, Copy)]
enum Action {
    Retry,
    Abort,
}

/// Applies an operator's action to a saga under its lock: the new state, the history entry,
/// the decision it publishes, and the audit entry, in one transaction. Answers 202 with the saga.
async fn act(
    api: &Api,
    saga_id: Uuid,
    actor: &Actor,
    action: Action,
    detail: Option<String>,
) -> Result<(StatusCode, Json<SagaView>), ApiError> {
    let infra = &api.infra;
    let mut tx = infra.pool.begin().await?;
    let (saga, trace) = store::lock_one(&mut tx, saga_id)
        .await
        .context("locking the saga")?
        .ok_or_else(|| ApiError::not_found(format!("no saga {saga_id}")))?;
    let (name, input) = match action {
        Action::Retry if saga.retryable() => ("retry", Input::OperatorRetry),
        Action::Abort if saga.abortable() => (
            "abort",
            Input::OperatorAbort {
                detail: detail.clone(),
            },
        ),
        Action::Retry => {
            return Err(ApiError::conflict(
                "SAGA_NOT_RETRYABLE",
                format!(
                    "saga {saga_id} is {}: only COMPENSATING or FAILED sagas can be retried",
                    saga.status
                ),
            ));
        }
        Action::Abort => {
            return Err(ApiError::conflict(
                "SAGA_NOT_ABORTABLE",
                format!(
                    "saga {saga_id} is {}: only STARTED sagas can be aborted",
                    saga.status
                ),
            ));
        }
    };
    let (next, reaction) = saga.apply(input);
    let mut seen = vec![Seen::operator(
        saga_id,
        name,
        actor.as_str(),
        detail.clone(),
    )];
    let mut events = Vec::new();
    if let Reaction::Emit(decision) = reaction {
        let mut event = infra.outbox.event(decision, saga_id, None);
        // The decision continues the saga's own trace (the operator's request is a trace of its
        // own).
        event.trace = trace.map(shared_events::TraceParent::child).or(event.trace);
        crate::reactions::decided(&event);
        seen.push(Seen::of(&event));
        events.push(event);
    }
    let ends = store::save(&mut tx, &[&next], &seen)
        .await
        .context("saving the saga")?;
    if matches!(action, Action::Retry) {
        store::restart_compensation(&mut tx, saga_id)
            .await
            .context("restarting the compensation deadline")?;
    }
    service_kit::audit::record(
        &mut tx,
        actor,
        &format!("saga.{name}"),
        &saga_id.to_string(),
        detail.as_deref(),
    )
    .await
    .context("auditing the action")?;
    let written = infra
        .outbox
        .add_all(&mut tx, events)
        .await
        .context("writing the decision to the outbox")?;
    infra
        .outbox
        .commit(tx, written)
        .await
        .context("committing the action")?;
    crate::metrics::ended(&ends);
    Ok((StatusCode::ACCEPTED, Json(view_of(api, saga_id).await?)))
}

/// `POST /sagas/{sagaId}/retry` (admin): for a `COMPENSATING` or `FAILED` saga, every participant
/// that still holds something for the order undoes it again, with a fresh compensation deadline.
async fn retry(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiPath(saga_id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<SagaView>), ApiError> {
    let actor = api.admin.check(&headers)?;
    act(&api, saga_id, &actor, Action::Retry, None).await
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    detail: Option<String>,
}

/// `POST /sagas/{sagaId}/abort` `{"detail"}` (admin): a `STARTED` saga is aborted now with
/// reason `OPERATOR`, and its order cancelled and compensated.
async fn abort(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiPath(saga_id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<AbortBody>,
) -> Result<(StatusCode, Json<SagaView>), ApiError> {
    let actor = api.admin.check(&headers)?;
    let detail = note(body.detail)?;
    act(&api, saga_id, &actor, Action::Abort, detail).await
}
