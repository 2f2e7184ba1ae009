//! Reconciliation: each kind of disagreement made by losing the event that would have settled
//! it (an outbox row dropped before it was sent, or messages deleted from their stream), then
//! `POST /admin/reconcile` finds it, re-sends what settles it, and the invariants hold again.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use sqlx::Executor as _;
use test_support::eventually_ok;

const PRODUCT: &str = "p-reconcile";
const STOCK: i64 = 100;

async fn stack() -> Stack {
    let stack = Stack::start(Options {
        saga_timeout: Duration::from_secs(2),
        compensation_timeout: Duration::from_secs(300),
        reconcile_grace: Duration::from_millis(500),
        ..Options::default()
    })
    .await;
    stack.set_stock(PRODUCT, STOCK).await;
    stack
}

/// Makes `svc`'s outbox drop every event whose subject starts with `prefix` (its state change
/// still commits): the event is lost before it is ever sent.
async fn lose(stack: &Stack, svc: Svc, prefix: &str) {
    let pool = sqlx::PgPool::connect(&stack.database_url(svc))
        .await
        .expect("database");
    let sql = format!(
        "CREATE FUNCTION lose_events() RETURNS trigger AS $$ BEGIN \
             IF NEW.subject LIKE '{prefix}%' THEN RETURN NULL; END IF; RETURN NEW; \
         END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER lose_events BEFORE INSERT ON messaging_outbox \
             FOR EACH ROW EXECUTE FUNCTION lose_events();"
    );
    pool.execute(sqlx::AssertSqlSafe(sql))
        .await
        .expect("trigger");
    pool.close().await;
}

/// Lets `svc`'s outbox send every event again (undoes [`lose`]).
async fn send_again(stack: &Stack, svc: Svc) {
    let pool = sqlx::PgPool::connect(&stack.database_url(svc))
        .await
        .expect("database");
    pool.execute("DROP TRIGGER lose_events ON messaging_outbox")
        .await
        .expect("drop the trigger");
    pool.close().await;
}

/// Runs the reconciliation until a run finds a mismatch of `kind` for `order_id`; returns it.
async fn reconcile_finds(stack: &Stack, kind: &str, order_id: &str) -> Value {
    let mut found = reconcile_finds_each(stack, kind, &[order_id]).await;
    found.remove(order_id).expect("found")
}

/// Runs the reconciliation until its runs have found a mismatch of `kind` for each of
/// `order_ids` (one run may find some and settle them, the next the rest); returns them by order.
async fn reconcile_finds_each(
    stack: &Stack,
    kind: &str,
    order_ids: &[&str],
) -> std::collections::HashMap<String, Value> {
    let found = std::sync::Mutex::new(std::collections::HashMap::new());
    let all = eventually_ok(
        &format!("a {kind} mismatch for each of {order_ids:?}"),
        WAIT,
        || async {
            let run = stack.reconcile_now().await?;
            let mut found = found.lock().expect("not poisoned");
            for m in run["mismatches"].as_array().into_iter().flatten() {
                if m["kind"] == kind
                    && let Some(id) = m["orderId"].as_str()
                    && order_ids.contains(&id)
                {
                    found.entry(id.to_owned()).or_insert_with(|| m.clone());
                }
            }
            if found.len() == order_ids.len() {
                Ok(found.clone())
            } else {
                Err(run.to_string())
            }
        },
    )
    .await;
    all.unwrap_or_else(|e| panic!("{e}"))
}

/// A confirmed order of one unit.
async fn confirmed(stack: &Stack) -> (String, String) {
    let order = stack.order(&[(PRODUCT, 1, "12.50")]).await;
    let (order_id, saga_id) = ids(&order);
    stack.order_becomes(&order_id, "CONFIRMED").await;
    stack.saga_becomes(&saga_id, "COMPLETED").await;
    (order_id, saga_id)
}

async fn cancel(stack: &Stack, order_id: &str) {
    let (status, order) = stack
        .post(
            Svc::Order,
            &format!("/orders/{order_id}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(status, 200, "{order}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_creation_was_lost_is_created_again_and_ends() {
    let stack = stack().await;
    lose(&stack, Svc::Order, "order.created.").await;
    let order = stack.order(&[(PRODUCT, 2, "10")]).await;
    let (order_id, saga_id) = ids(&order);
    let (status, _) = stack.get(Svc::Saga, &format!("/sagas/{saga_id}")).await;
    assert_eq!(
        status, 404,
        "no saga: order.created never left order-service"
    );
    let found = reconcile_finds(&stack, "ORDER_WITHOUT_SAGA", &order_id).await;
    assert_eq!(found["action"], "re-sent order.created");
    assert_eq!(found["sagaId"], saga_id.as_str());
    stack.order_becomes(&order_id, "CONFIRMED").await;
    stack.saga_becomes(&saga_id, "COMPLETED").await;
    stack
        .invariants_hold(&[order_id], &[(PRODUCT, STOCK)])
        .await;
    let (_, runs) = stack.get(Svc::Saga, "/admin/reconcile").await;
    assert!(
        runs["items"][0]["mismatches"].is_array(),
        "GET /admin/reconcile lists the runs: {runs}"
    );
    let metrics = stack.metrics().await;
    assert!(
        metrics.contains("saga_reconcile_mismatches{kind=\"ORDER_WITHOUT_SAGA\"}"),
        "the gauge by kind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_and_hold_left_for_a_cancelled_order_are_undone() {
    let stack = stack().await;
    let (order_id, saga_id) = confirmed(&stack).await;
    lose(&stack, Svc::Order, "order.cancelled.").await;
    cancel(&stack, &order_id).await;
    let (_, payment) = stack
        .get(Svc::Payment, &format!("/payments?orderId={order_id}"))
        .await;
    assert_eq!(
        payment["status"], "CONFIRMED",
        "nobody heard of the cancellation"
    );
    let found = reconcile_finds(&stack, "HELD_FOR_CANCELLED_ORDER", &order_id).await;
    assert_eq!(found["action"], "re-sent order.cancelled");
    stack.saga_becomes(&saga_id, "COMPENSATED").await;
    stack
        .invariants_hold(&[order_id], &[(PRODUCT, STOCK)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_event_was_lost_is_heard_and_the_saga_compensated() {
    let stack = stack().await;
    let (order_id, saga_id) = confirmed(&stack).await;
    lose(&stack, Svc::Payment, "payment.refunded.").await;
    cancel(&stack, &order_id).await;
    stack
        .until(
            Svc::Payment,
            &format!("/payments?orderId={order_id}"),
            "the payment refunded",
            |p| p["status"] == "REFUNDED",
        )
        .await;
    stack
        .until(
            Svc::Saga,
            &format!("/sagas/{saga_id}"),
            "the saga waiting for the refund",
            |s| s["status"] == "COMPENSATING" && s["inventory"]["status"] == "RELEASED",
        )
        .await;
    // An operator's retry asks payment to refund again: it has refunded, and says nothing new.
    stack
        .sagactl(&["sagas", "retry", &saga_id])
        .await
        .expect("retry");
    let found = reconcile_finds(&stack, "UNDO_NOT_HEARD", &order_id).await;
    assert_eq!(found["action"], "re-sent payment.refunded");
    stack.saga_becomes(&saga_id, "COMPENSATED").await;
    stack
        .invariants_hold(&[order_id], &[(PRODUCT, STOCK)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_saga_whose_order_was_cancelled_and_released_behind_its_back_is_compensated() {
    let mut stack = stack().await;
    let (order_id, saga_id) = confirmed(&stack).await;
    // The coordinator is away while the order is cancelled and undone, and the events that
    // said so are lost before it comes back.
    stack.stop_service(Svc::Saga).await;
    cancel(&stack, &order_id).await;
    stack
        .until(
            Svc::Inventory,
            &format!("/reservations/{order_id}"),
            "the reservation released",
            |r| r["status"] == "RELEASED",
        )
        .await;
    stack
        .until(
            Svc::Payment,
            &format!("/payments?orderId={order_id}"),
            "the payment refunded",
            |p| p["status"] == "REFUNDED",
        )
        .await;
    let client = messaging::nats::connect(&messaging::nats::NatsSettings::new(
        stack.nats.url(),
        "e2e-loser",
    ))
    .await
    .expect("nats");
    let js = messaging::nats::jetstream(client);
    for (stream, subject) in [
        ("ORDERS", "order.cancelled.v1"),
        ("PAYMENTS", "payment.refunded.v1"),
        ("PAYMENTS", "payment.refunded.v2"),
        ("INVENTORY", "inventory.released.v1"),
    ] {
        let stream = js.get_stream(stream).await.expect("stream");
        let message = stream
            .get_last_raw_message_by_subject(subject)
            .await
            .expect("the event to lose");
        stream
            .delete_message(message.sequence)
            .await
            .expect("deleted");
    }
    stack.start_service(Svc::Saga).await;
    let saga = stack.saga_becomes(&saga_id, "COMPLETED").await;
    assert_eq!(saga["payment"]["status"], "CONFIRMED", "{saga}");
    let found = reconcile_finds(&stack, "UNDONE_FOR_COMPLETED_SAGA", &order_id).await;
    assert_eq!(
        found["action"],
        "re-sent order.cancelled, payment.refunded, inventory.released"
    );
    stack.saga_becomes(&saga_id, "COMPENSATED").await;
    stack
        .invariants_hold(&[order_id], &[(PRODUCT, STOCK)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_order_whose_saga_ended_unheard_hears_how_it_ended() {
    let stack = stack().await;
    lose(&stack, Svc::Saga, "saga.").await;
    let (confirmed_id, confirmed_saga) = ids(&stack.order(&[(PRODUCT, 1, "12.50")]).await);
    // More than the stock: inventory refuses, the saga aborts and compensates.
    let (sold_out_id, sold_out_saga) = ids(&stack.order(&[(PRODUCT, STOCK as u32 + 1, "1")]).await);
    stack.saga_becomes(&confirmed_saga, "COMPLETED").await;
    let aborted = stack.saga_becomes(&sold_out_saga, "COMPENSATING").await;
    assert_eq!(aborted["reason"], "INVENTORY_UNAVAILABLE", "{aborted}");
    for order_id in [&confirmed_id, &sold_out_id] {
        let (_, order) = stack.get(Svc::Order, &format!("/orders/{order_id}")).await;
        assert_eq!(
            order["status"], "PENDING",
            "saga.completed and saga.aborted never left the coordinator: {order}"
        );
    }
    send_again(&stack, Svc::Saga).await;
    // Both are found, in one run or two (orders made a few milliseconds apart pass their
    // deadline between two runs).
    let found =
        reconcile_finds_each(&stack, "OUTCOME_NOT_HEARD", &[&confirmed_id, &sold_out_id]).await;
    let completed = &found[&confirmed_id];
    assert_eq!(completed["action"], "re-sent saga.completed", "{completed}");
    assert_eq!(completed["sagaId"], confirmed_saga.as_str());
    let aborted = &found[&sold_out_id];
    assert_eq!(aborted["action"], "re-sent saga.aborted", "{aborted}");
    stack.order_becomes(&confirmed_id, "CONFIRMED").await;
    let cancelled = stack.order_becomes(&sold_out_id, "CANCELLED").await;
    assert_eq!(cancelled["cancellationReason"], "INVENTORY_UNAVAILABLE");
    // The cancellation the order now sends has the payment refunded: the saga settles.
    stack.saga_becomes(&sold_out_saga, "COMPENSATED").await;
    stack
        .invariants_hold(&[confirmed_id, sold_out_id], &[(PRODUCT, STOCK)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_is_an_admin_call_and_records_that_agree_are_no_mismatch() {
    let stack = stack().await;
    let (order_id, _) = confirmed(&stack).await;
    let (status, _) = stack
        .admin(
            Svc::Saga,
            reqwest::Method::POST,
            "/admin/reconcile",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, run) = stack
        .admin(
            Svc::Saga,
            reqwest::Method::POST,
            "/admin/reconcile",
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["mismatches"], json!([]), "{run}");
    assert_eq!(run["trigger"], "OPERATOR");
    let (status, bad) = stack
        .admin(
            Svc::Saga,
            reqwest::Method::POST,
            "/admin/reconcile",
            Some(json!({"since": "yesterday"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    let text = stack
        .sagactl(&["reconcile", "--since", "2026-01-01T00:00:00Z"])
        .await
        .expect("sagactl reconcile");
    assert!(text.contains("0 mismatches"), "{text}");
    let listed = stack
        .sagactl(&["reconcile", "list"])
        .await
        .expect("sagactl reconcile list");
    assert!(listed.matches("run ").count() >= 2, "{listed}");
    stack
        .invariants_hold(&[order_id], &[(PRODUCT, STOCK)])
        .await;
}

/// A window with more cancellations than a run compares (`RECONCILE_MAX_ORDERS`, here 2) is
/// compared oldest change first, and the next run goes on where the last one stopped: no order
/// of the window is left uncompared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_with_more_cancellations_than_a_run_compares_is_gone_on_with_by_the_next() {
    let stack = Stack::start(Options {
        saga_timeout: Duration::from_secs(2),
        compensation_timeout: Duration::from_secs(300),
        // No grace: the three cancellations are in the first run's window, whenever it runs.
        reconcile_grace: Duration::ZERO,
        reconcile_max_orders: 2,
        ..Options::default()
    })
    .await;
    stack.set_stock(PRODUCT, STOCK).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(confirmed(&stack).await);
    }
    lose(&stack, Svc::Order, "order.cancelled.").await;
    for (order_id, _) in &orders {
        cancel(&stack, order_id).await;
    }
    // Runs until every order has been found held for its cancellation by some run.
    let runs = eventually_ok("every cancelled order compared", WAIT, || async {
        stack.reconcile_now().await?;
        let (_, runs) = stack.get(Svc::Saga, "/admin/reconcile?limit=100").await;
        let found: Vec<&Value> = runs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["mismatches"].as_array().into_iter().flatten())
            .filter(|m| m["kind"] == "HELD_FOR_CANCELLED_ORDER")
            .collect();
        if orders
            .iter()
            .all(|(order_id, _)| found.iter().any(|m| m["orderId"] == order_id.as_str()))
        {
            Ok(runs)
        } else {
            Err(runs.to_string())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // The first run that found any compared the two oldest cancellations, and recorded how
    // far it reached, short of its window's end.
    let first = runs["items"]
        .as_array()
        .expect("runs")
        .iter()
        .rev()
        .find(|r| r["mismatches"].as_array().is_some_and(|m| !m.is_empty()))
        .expect("a run that found something");
    let mut first_found: Vec<&str> = first["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .map(|m| m["orderId"].as_str().expect("orderId"))
        .collect();
    first_found.sort_unstable();
    let mut oldest: Vec<&str> = orders[..2].iter().map(|(o, _)| o.as_str()).collect();
    oldest.sort_unstable();
    assert_eq!(first_found, oldest, "{first}");
    assert!(first["reached"].is_string(), "{first}");
    for (_, saga_id) in &orders {
        stack.saga_becomes(saga_id, "COMPENSATED").await;
    }
    let ids: Vec<String> = orders.iter().map(|(o, _)| o.clone()).collect();
    stack.invariants_hold(&ids, &[(PRODUCT, STOCK)]).await;
}
