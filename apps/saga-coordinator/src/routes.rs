//! The HTTP API of saga-coordinator: the sagas (`GET /sagas/{sagaId}`, `GET /sagas`,
//! `GET /sagas/stats`), what an operator does to one (`POST /sagas/{sagaId}/retry`,
//! `POST /sagas/{sagaId}/abort`), the dead letters ([`dlq`]), and the dashboard ([`ui`]).

pub mod reconcile;
pub mod ui;

use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::Context as _;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::api::{BodyErrors, Conflict, Errors, Invalid, NotFound, Refused};
use service_kit::auth::{Actor, AdminToken};
use service_kit::extract::{OptionalJson, Page, Time, keep, page_limit, query_value};
use service_kit::{ApiError, ApiPath, ApiQuery, FieldError, Infra};
use shared_events::{AbortReason, Reaction};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::Timeouts;
use crate::rules::{Input, InventoryStatus, PaymentStatus, SagaStatus};
use crate::store::{self, HistoryRecord, ListFilter, SagaRecord, Seen};

/// A participant of the saga: where it stands, and the id of what it did. The payment has a
/// `paymentId` and the inventory a `reservationId`, each `null` until the participant has
/// done its part (and after a refusal, which has no id).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant<S> {
    pub status: S,
    /// The payment's id: on the payment only, `null` until the charge is made.
    // Outer `None`: not the payment, left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub payment_id: Option<Option<Uuid>>,
    /// The reservation's id: on the inventory only, `null` until the stock is reserved.
    // Outer `None`: not the inventory, left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub reservation_id: Option<Option<Uuid>>,
}

/// An event the saga saw or emitted, or an operator's action on it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Who acted, on an operator's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The operator's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<HistoryRecord> for HistoryEntry {
    fn from(h: HistoryRecord) -> HistoryEntry {
        HistoryEntry {
            event_id: h.event_id,
            event_type: h.event_type,
            occurred_at: h.occurred_at,
            received_at: h.received_at,
            actor: h.actor,
            detail: h.detail,
        }
    }
}

/// A saga as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SagaView {
    pub saga_id: Uuid,
    pub order_id: Uuid,
    pub status: SagaStatus,
    pub reason: Option<AbortReason>,
    pub payment: Participant<PaymentStatus>,
    pub inventory: Participant<InventoryStatus>,
    pub deadline: DateTime<Utc>,
    /// When a `COMPENSATING` saga becomes `FAILED` unless its compensation finishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compensation_deadline: Option<DateTime<Utc>>,
    /// When it last reached `COMPLETED` or `COMPENSATED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The trace of everything its order caused (32 hex digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

impl From<SagaRecord> for SagaView {
    fn from(r: SagaRecord) -> SagaView {
        let saga = r.saga;
        SagaView {
            saga_id: saga.saga_id,
            order_id: saga.order_id,
            status: saga.status,
            reason: saga.reason,
            payment: Participant {
                status: saga.payment,
                payment_id: Some(saga.payment_id),
                reservation_id: None,
            },
            inventory: Participant {
                status: saga.inventory,
                payment_id: None,
                reservation_id: Some(saga.reservation_id),
            },
            deadline: r.deadline,
            compensation_deadline: r.compensation_deadline,
            ended_at: r.ended_at,
            trace_id: r.trace_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            history: r
                .history
                .map(|h| h.into_iter().map(HistoryEntry::from).collect()),
        }
    }
}

#[derive(Clone)]
pub struct Api {
    pub infra: Infra,
    pub admin: AdminToken,
    pub timeouts: Timeouts,
    /// Runs the reconciliation when an operator asks.
    pub reconciler: std::sync::Arc<crate::reconcile::Reconciler>,
}

/// What the service's description says of it.
pub const ABOUT: &str = "Follows every order's saga, persists it with its history, decides its \
    outcome and enforces its deadlines; what an operator does to sagas and to every service's \
    dead letters; the dashboard (/ui).";

/// The routes, each with its description.
pub fn api() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stats))
        .routes(routes!(get_one))
        .routes(routes!(retry))
        .routes(routes!(abort))
        .merge(crate::dlq::routes::api())
        .merge(reconcile::api())
        .merge(ui::api())
}

/// A page of sagas.
pub type SagaPage = Page<SagaView, Uuid>;

async fn view_of(api: &Api, saga_id: Uuid) -> Result<SagaView, ApiError> {
    store::get(&api.infra.pool, saga_id, api.timeouts.compensation)
        .await
        .context("reading a saga")?
        .map(SagaView::from)
        .ok_or_else(|| ApiError::not_found(format!("no saga {saga_id}")))
}

/// One saga: its participants, deadlines, trace and history (events and operator actions).
#[utoipa::path(get, path = "/sagas/{saga_id}", tag = "sagas",
    params(("saga_id" = Uuid, Path, description = "The saga's id")),
    responses((status = 200, description = "The saga", body = SagaView), NotFound, Errors))]
async fn get_one(
    State(api): State<Api>,
    ApiPath(saga_id): ApiPath<Uuid>,
) -> Result<Json<SagaView>, ApiError> {
    view_of(&api, saga_id).await.map(Json)
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only sagas in this status.
    #[param(value_type = Option<SagaStatus>)]
    status: Option<String>,
    /// Only the saga of this order.
    order_id: Option<Uuid>,
    /// Only sagas aborted or compensated for this reason.
    #[param(value_type = Option<AbortReason>)]
    reason: Option<String>,
    /// Only sagas created at or after this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    created_after: Option<String>,
    /// Only sagas created before this time (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    created_before: Option<String>,
    /// true: only sagas past a deadline that no sweep has dealt with yet; false: the others.
    #[param(value_type = Option<bool>)]
    stuck: Option<String>,
    /// Sagas per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The page after this saga: the `nextCursor` of the previous page.
    cursor: Option<Uuid>,
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
#[utoipa::path(get, path = "/sagas", tag = "sagas", params(ListQuery),
    responses((status = 200, description = "A page of sagas", body = SagaPage), Invalid, Errors))]
async fn list(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<SagaPage>, ApiError> {
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
    Ok(Json(
        Page::from_fetched(items, limit, |s| s.saga.saga_id).map(SagaView::from),
    ))
}

/// A stats window: `90s`, `15m`, `2h`, from one minute to a day.
#[derive(Clone, Copy)]
struct Window(Duration);

impl std::str::FromStr for Window {
    type Err = &'static str;
    fn from_str(text: &str) -> Result<Window, &'static str> {
        const WRONG: &str = "must be 1m to 24h, written like 90s, 15m or 2h";
        let mut chars = text.chars();
        let scale = match chars.next_back() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            _ => return Err(WRONG),
        };
        let number = chars.as_str();
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// The window for ended sagas and durations: 1m to 24h, like 90s, 15m or 2h (default 15m).
    #[param(pattern = "^[0-9]+[smh]$")]
    window: Option<String>,
}

/// Counts over all sagas, and how long those that ended in the window took.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Stats {
    window: String,
    /// Every status, with how many sagas are in it.
    by_status: BTreeMap<String, i64>,
    /// Every abort reason, with how many sagas were aborted or compensated for it.
    by_reason: BTreeMap<String, i64>,
    stuck: i64,
    in_flight: i64,
    ended: i64,
    duration: Durations,
    /// Sagas ended in each minute of the window (at most the last hour), oldest first.
    ended_per_minute: Vec<store::Minute>,
}

/// From start to `COMPLETED` or `COMPENSATED`, of the sagas that ended in the window (0 when
/// none did).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Durations {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// `GET /sagas/stats?window=15m`: counts over all sagas, and how long the sagas that ended in the
/// window took.
#[utoipa::path(get, path = "/sagas/stats", tag = "sagas", params(StatsQuery),
    responses((status = 200, description = "The stats", body = Stats), Invalid, Errors))]
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
    // One snapshot: the counts, the stuck and the ended agree with each other.
    let mut tx = api.infra.pool.begin().await.context("reading the stats")?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .context("reading the stats")?;
    let counts = store::counts(&mut *tx).await.context("counting sagas")?;
    let stuck = store::stuck(&mut *tx, api.timeouts.compensation)
        .await
        .context("counting stuck sagas")?;
    let ends = store::ends(&mut *tx, window)
        .await
        .context("timing ended sagas")?;
    let minutes = (window.as_secs() / 60).clamp(1, 60) as i64;
    let ended_per_minute = store::ended_per_minute(&mut *tx, minutes)
        .await
        .context("counting sagas ended per minute")?;
    tx.commit().await.context("reading the stats")?;
    let count_of = |status: SagaStatus| -> i64 {
        counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.n)
            .sum()
    };
    let by_status = SagaStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), count_of(*s)))
        .collect();
    let by_reason = AbortReason::ALL
        .iter()
        .map(|r| {
            let n: i64 = counts
                .iter()
                .filter(|c| c.reason == Some(*r))
                .map(|c| c.n)
                .sum();
            (r.as_str().to_owned(), n)
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
    service_kit::extract::note("detail", detail)
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
#[utoipa::path(post, path = "/sagas/{saga_id}/retry", tag = "sagas",
    params(("saga_id" = Uuid, Path, description = "The saga's id")),
    security(("admin_token" = [])),
    responses((status = 202, description = "The saga, COMPENSATING again", body = SagaView),
        Refused, NotFound, Conflict, Errors))]
async fn retry(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiPath(saga_id): ApiPath<Uuid>,
) -> Result<(StatusCode, Json<SagaView>), ApiError> {
    let actor = api.admin.check(&headers)?;
    act(&api, saga_id, &actor, Action::Retry, None).await
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    /// Why (at most 500 characters): in the saga's history, on the order, in the audit log.
    detail: Option<String>,
}

/// `POST /sagas/{sagaId}/abort` `{"detail"}` (admin): a `STARTED` saga is aborted now with
/// reason `OPERATOR`, and its order cancelled and compensated.
#[utoipa::path(post, path = "/sagas/{saga_id}/abort", tag = "sagas",
    params(("saga_id" = Uuid, Path, description = "The saga's id")),
    request_body(content = Option<AbortBody>, description = "Optional"),
    security(("admin_token" = [])),
    responses((status = 202, description = "The saga, aborted", body = SagaView),
        Refused, NotFound, Conflict, Invalid, BodyErrors, Errors))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_a_number_and_a_unit_from_a_minute_to_a_day() {
        let seconds = |text: &str| text.parse::<Window>().map(|w| w.0.as_secs());
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("15m"), Ok(900));
        assert_eq!(seconds("24h"), Ok(86_400));
        for bad in [
            "59s",
            "25h",
            "",
            "m",
            "15",
            "1.5h",
            "-1h",
            "1\u{80}",
            "\u{80}",
            "99999999999999999999h",
        ] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
    }
}
