//! The dead letters of every service: `GET /dlq`, `GET /dlq/{id}`, and what an operator does to
//! them (admin calls): `POST /dlq/{id}/replay`, `POST /dlq/replay` (by filter),
//! `POST /dlq/{id}/discard`.
//!
//! A replay publishes the original message again, to its original subject, under a new
//! `Nats-Msg-Id`, for the consumer that dead-lettered it (the others ack it untouched, see
//! `messaging::consumer::REPLAY_FOR`). That consumer's inbox drops it if the event was handled
//! since; if it fails again it is dead-lettered again, as a new entry: nothing replays by itself,
//! so a poison message never loops.

use std::future::IntoFuture;

use anyhow::Context as _;
use async_nats::jetstream::message::PublishMessage;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::api::{BodyErrors, Conflict, Errors, Invalid, NotFound, Refused};
use service_kit::auth::Actor;
use service_kit::extract::{OptionalJson, Page, keep, page_limit, query_value};
use service_kit::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::DlqStatus;
use super::store::{self as dlq, DeadLetter, Filter};
use crate::routes::{Api, note};

/// The routes, each with its description.
pub fn api() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(replay_matching))
        .routes(routes!(get_one))
        .routes(routes!(replay))
        .routes(routes!(discard))
}

/// A page of dead letters.
pub type DeadLetterPage = Page<DeadLetterEntry, i64>;

/// A dead letter as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterEntry {
    id: i64,
    consumer: String,
    subject: String,
    reason: String,
    detail: Option<String>,
    delivered: Option<i64>,
    dead_lettered_at: DateTime<Utc>,
    event_id: Option<Uuid>,
    event_type: Option<String>,
    status: DlqStatus,
    /// The original message body: JSON when it parses, else the text (invalid UTF-8 replaced).
    #[schema(value_type = Object)]
    payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_changed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_changed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_detail: Option<String>,
    /// The original message's headers (`GET /dlq/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    headers: Option<Value>,
}

fn entry(d: DeadLetter, with_headers: bool) -> DeadLetterEntry {
    let l = d.letter;
    let payload = serde_json::from_slice(&l.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&l.payload).into_owned()));
    DeadLetterEntry {
        id: l.id,
        consumer: l.consumer,
        subject: l.subject,
        reason: l.reason,
        detail: l.detail,
        delivered: l.delivered,
        dead_lettered_at: l.dead_lettered_at,
        event_id: l.event_id,
        event_type: l.event_type,
        status: d.status,
        payload,
        status_changed_at: d.status_at,
        status_changed_by: d.status_by,
        status_detail: d.status_detail,
        headers: with_headers.then_some(l.headers.0),
    }
}

/// A consumer name, subject or reason to filter on: 1 to 200 visible characters.
struct Word(String);

impl std::str::FromStr for Word {
    type Err = &'static str;
    fn from_str(text: &str) -> Result<Word, &'static str> {
        if text.chars().count() <= 200 && !text.chars().any(char::is_control) {
            Ok(Word(text.to_owned()))
        } else {
            Err("must be at most 200 characters, without control characters")
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only dead letters of this durable consumer, e.g. payment-service-order-created-v1.
    consumer: Option<String>,
    /// Only dead letters of this original subject, e.g. order.created.v1.
    subject: Option<String>,
    /// Only dead letters for this reason, e.g. MALFORMED or RETRIES_EXHAUSTED.
    reason: Option<String>,
    /// Only dead letters in this status.
    #[param(value_type = Option<DlqStatus>)]
    status: Option<String>,
    /// Entries per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The page after this entry: the `nextCursor` of the previous page.
    cursor: Option<i64>,
}

/// `GET /dlq?consumer=&subject=&reason=&status=&limit=&cursor=`: every service's dead letters,
/// oldest first; the filters combine.
#[utoipa::path(get, path = "/dlq", tag = "dead letters", params(ListQuery),
    responses((status = 200, description = "A page of dead letters", body = DeadLetterPage),
        Invalid, Errors))]
async fn list(
    State(api): State<Api>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let limit = page_limit(query.limit)?;
    let mut errors = Vec::new();
    let e = &mut errors;
    let word = |field: &str, raw: &Option<String>| query_value::<Word>(field, raw.as_deref());
    let filter = Filter {
        consumer: keep(e, word("consumer", &query.consumer)).map(|w| w.0),
        subject: keep(e, word("subject", &query.subject)).map(|w| w.0),
        reason: keep(e, word("reason", &query.reason)).map(|w| w.0),
        status: keep(e, query_value("status", query.status.as_deref())),
        after: query.cursor,
        limit: limit + 1,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let items = dlq::list(&api.infra.pool, &filter)
        .await
        .context("listing dead letters")?;
    let page = Page::from_fetched(items, limit, |d| d.letter.id);
    Ok(Json(Page {
        items: page.items.into_iter().map(|d| entry(d, false)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One dead letter, with the original message's headers.
#[utoipa::path(get, path = "/dlq/{id}", tag = "dead letters",
    params(("id" = i64, Path, description = "The entry's id: its sequence in the DLQ stream")),
    responses((status = 200, description = "The dead letter", body = DeadLetterEntry),
        NotFound, Errors))]
async fn get_one(
    State(api): State<Api>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeadLetterEntry>, ApiError> {
    dlq::get(&api.infra.pool, id)
        .await
        .context("reading a dead letter")?
        .map(|d| Json(entry(d, true)))
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {id}")))
}

/// Entry `id`, locked for this transaction, if it is `DEAD`: else 404 or 409.
async fn lock_dead_entry(tx: &mut sqlx::PgConnection, id: i64) -> Result<DeadLetter, ApiError> {
    let d = dlq::lock(tx, id)
        .await
        .context("locking the dead letter")?
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {id}")))?;
    if d.status.can_act() {
        Ok(d)
    } else {
        Err(ApiError::conflict(
            "DLQ_ENTRY_NOT_DEAD",
            format!(
                "dead letter {id} is {}: only DEAD entries can be replayed or discarded",
                d.status
            ),
        ))
    }
}

/// Publishes each entry's original message again, to its original subject, under a new
/// `Nats-Msg-Id`, for the consumer that dead-lettered it; waits until JetStream has stored all.
async fn publish(api: &Api, entries: &[DeadLetter]) -> Result<(), ApiError> {
    let mut acks = Vec::with_capacity(entries.len());
    for d in entries.iter().map(|d| &d.letter) {
        let mut message = PublishMessage::build()
            .message_id(format!("replay-{}-{}", d.id, Uuid::now_v7()))
            .header(messaging::consumer::REPLAY_FOR, d.consumer.as_str())
            .header(messaging::consumer::REPLAY_OF, d.id.to_string().as_str());
        if let Some(headers) = d.headers.0.as_object() {
            for (name, value) in headers {
                if let Some(value) = value.as_str()
                    && messaging::consumer::kept_header(name)
                {
                    message = message.header(name.as_str(), value);
                }
            }
        }
        let message = message.payload(d.payload.clone().into());
        let ack = api
            .infra
            .js
            .send_publish(d.subject.clone(), message)
            .await
            .map_err(|e| unavailable(format!("publishing dead letter {}: {e}", d.id)))?;
        acks.push(ack.into_future());
    }
    for (d, ack) in entries.iter().zip(join_all(acks).await) {
        ack.map_err(|e| unavailable(format!("publishing dead letter {}: {e}", d.letter.id)))?;
    }
    Ok(())
}

fn unavailable(why: String) -> ApiError {
    ApiError::dependency_away(
        "UNAVAILABLE",
        "NATS did not take the replay; nothing was changed, try again",
        format!("replay failed: {why}"),
    )
}

/// Replays `entries` (locked, `DEAD`) and marks them `REPLAYED`, with the audit entry, in `tx`.
async fn replay_locked(
    api: &Api,
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    entries: Vec<DeadLetter>,
    actor: &Actor,
    audit_target: &str,
) -> Result<Vec<DeadLetter>, ApiError> {
    publish(api, &entries).await?;
    let ids: Vec<i64> = entries.iter().map(|d| d.letter.id).collect();
    let marked = dlq::mark(&mut tx, &ids, DlqStatus::Replayed, actor.as_str(), None)
        .await
        .context("marking dead letters replayed")?;
    let detail = format!("replayed {} dead letter(s): {ids:?}", ids.len());
    service_kit::audit::record(&mut tx, actor, "dlq.replay", audit_target, Some(&detail))
        .await
        .context("auditing the replay")?;
    tx.commit().await.context("committing the replay")?;
    Ok(marked)
}

/// `POST /dlq/{id}/replay` (admin): the original message is published again, to its original
/// subject, under a new `Nats-Msg-Id`, for the consumer that dead-lettered it.
#[utoipa::path(post, path = "/dlq/{id}/replay", tag = "dead letters",
    params(("id" = i64, Path, description = "The entry's id")),
    security(("admin_token" = [])),
    responses((status = 202, description = "The entry, REPLAYED", body = DeadLetterEntry),
        Refused, NotFound, Conflict, Errors))]
async fn replay(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<DeadLetterEntry>), ApiError> {
    let actor = api.admin.check(&headers)?;
    let mut tx = api.infra.pool.begin().await?;
    let d = lock_dead_entry(&mut tx, id).await?;
    let marked = replay_locked(&api, tx, vec![d], &actor, &id.to_string()).await?;
    let d = marked
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("replayed dead letter vanished"))?;
    Ok((StatusCode::ACCEPTED, Json(entry(d, true))))
}

/// Which `DEAD` entries to replay: each filter optional, at least one; all must hold.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayMatching {
    consumer: Option<String>,
    subject: Option<String>,
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Replayed {
    replayed: usize,
}

/// `POST /dlq/replay` `{"consumer", "subject", "reason"}` (each optional, at least one; admin):
/// replays every `DEAD` entry that matches.
#[utoipa::path(post, path = "/dlq/replay", tag = "dead letters", request_body = ReplayMatching,
    security(("admin_token" = [])),
    responses((status = 202, description = "How many entries were replayed", body = Replayed),
        Refused, Invalid, BodyErrors, Errors))]
async fn replay_matching(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReplayMatching>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    const CHUNK: i64 = 500;
    let actor = api.admin.check(&headers)?;
    let check = |field: &str, value: Option<String>| -> Result<Option<String>, ApiError> {
        Ok(query_value::<Word>(field, value.as_deref())?.map(|w| w.0))
    };
    let filter = Filter {
        consumer: check("consumer", body.consumer)?,
        subject: check("subject", body.subject)?,
        reason: check("reason", body.reason)?,
        limit: CHUNK,
        ..Filter::default()
    };
    if filter.consumer.is_none() && filter.subject.is_none() && filter.reason.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "give at least one of consumer, subject and reason",
        )]));
    }
    let target = format!(
        "consumer={} subject={} reason={}",
        filter.consumer.as_deref().unwrap_or("*"),
        filter.subject.as_deref().unwrap_or("*"),
        filter.reason.as_deref().unwrap_or("*")
    );
    let mut replayed = 0;
    loop {
        let mut tx = api.infra.pool.begin().await?;
        let entries = dlq::lock_dead(&mut tx, &filter)
            .await
            .context("locking matching dead letters")?;
        if entries.is_empty() {
            break;
        }
        let taken = entries.len();
        replay_locked(&api, tx, entries, &actor, &target).await?;
        replayed += taken;
        if (taken as i64) < CHUNK {
            break;
        }
    }
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DiscardBody {
    /// Why (at most 500 characters): kept with the entry and in the audit log.
    detail: Option<String>,
}

/// `POST /dlq/{id}/discard` `{"detail"}` (admin): the entry becomes `DISCARDED`; nothing is
/// published.
#[utoipa::path(post, path = "/dlq/{id}/discard", tag = "dead letters",
    params(("id" = i64, Path, description = "The entry's id")),
    request_body(content = Option<DiscardBody>, description = "Optional"),
    security(("admin_token" = [])),
    responses((status = 200, description = "The entry, DISCARDED", body = DeadLetterEntry),
        Refused, NotFound, Conflict, Invalid, BodyErrors, Errors))]
async fn discard(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    OptionalJson(body): OptionalJson<DiscardBody>,
) -> Result<Json<DeadLetterEntry>, ApiError> {
    let actor = api.admin.check(&headers)?;
    let detail = note(body.detail)?;
    let mut tx = api.infra.pool.begin().await?;
    lock_dead_entry(&mut tx, id).await?;
    let marked = dlq::mark(
        &mut tx,
        &[id],
        DlqStatus::Discarded,
        actor.as_str(),
        detail.as_deref(),
    )
    .await
    .context("marking the dead letter discarded")?;
    service_kit::audit::record(
        &mut tx,
        &actor,
        "dlq.discard",
        &id.to_string(),
        detail.as_deref(),
    )
    .await
    .context("auditing the discard")?;
    tx.commit().await.context("committing the discard")?;
    let d = marked
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("discarded dead letter vanished"))?;
    Ok(Json(entry(d, true)))
}
