//! No statement reads rows in proportion to a table's size. Every table is filled as
//! `scripts/bench.sh --stored` fills it (the SQL of scripts/seed/), the tables behind the rare
//! paths (orders cancelled before they were created, dead letters) with thousands of rows more;
//! then orders flow, and the rows each order read from each table (rows read by sequential scans
//! plus rows fetched through an index, as PostgreSQL counts them per table) must stay a handful.
//! A statement that scans a table per event, as a generic plan made while the table was small
//! can (a hashed subplan over `cancelled_orders` did), reads thousands per order here; so does
//! one that scans a table once a run of the reconciliation (which is made once among them).

use std::collections::BTreeMap;

use futures_util::future::join_all;
use sqlx::{Executor, PgPool};
use test_support::rows_read_per_table;

use crate::common::*;

/// Orders stored by the seed, over 30 days.
const STORED: u64 = 20_000;
/// Rows added to the tables of the rare paths.
const RARE: u64 = 5_000;
/// Orders placed once the tables are full.
const ORDERS: usize = 150;
/// The most rows an order may read from one table: a handful per event, and what is read once
/// at start or now and then (a gauge over a partial index) spread over the orders; a statement
/// that reads a whole table per event reads thousands.
const MOST: f64 = 100.0;

/// What scripts/seed.sh runs in `db`, for [`STORED`] orders over 30 days.
fn seed_sql(db: &str) -> String {
    let own = match db {
        "orders" => include_str!("../../../../scripts/seed/orders.sql"),
        "payments" => include_str!("../../../../scripts/seed/payments.sql"),
        "inventory" => include_str!("../../../../scripts/seed/inventory.sql"),
        _ => include_str!("../../../../scripts/seed/sagas.sql"),
    };
    let participant = match db {
        "payments" | "inventory" => include_str!("../../../../scripts/seed/participant.sql"),
        _ => "",
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    [
        include_str!("../../../../scripts/seed/common.sql"),
        own,
        participant,
        include_str!("../../../../scripts/seed/every.sql"),
    ]
    .join("\n")
    .replace("@ORDERS@", &STORED.to_string())
    .replace("@DAYS@", "30")
    .replace("@NOW@", &now.to_string())
}

/// The rare paths' tables, filled further.
fn rare_sql(svc: Svc) -> String {
    let mut sql = format!(
        "INSERT INTO messaging_dead_letters (consumer, stream, stream_sequence, reason, dead_at) \
         SELECT 'seed-consumer', 'ORDERS', 1000000 + s, 'RETRIES_EXHAUSTED', \
                now() - s * interval '1 minute' FROM generate_series(1, {RARE}) AS s;"
    );
    match svc {
        Svc::Payment | Svc::Inventory => sql.push_str(&format!(
            "INSERT INTO cancelled_orders (order_id, cancelled_at) \
             SELECT gen_random_uuid(), now() - s * interval '1 minute' \
             FROM generate_series(1, {RARE}) AS s;"
        )),
        Svc::Saga => sql.push_str(&format!(
            "INSERT INTO dead_letters (id, consumer, subject, reason, dead_lettered_at, payload, \
                                       headers, status, status_at) \
             SELECT 1000000 + s, 'payment-service-order-created-v1', 'order.created.v1', \
                    'RETRIES_EXHAUSTED', now() - s * interval '1 minute', '\\x00', '{{}}', \
                    CASE WHEN s % 2 = 0 THEN 'DEAD' ELSE 'DISCARDED' END, \
                    CASE WHEN s % 2 = 1 THEN now() END \
             FROM generate_series(1, {RARE}) AS s;"
        )),
        Svc::Order => {}
    }
    sql + "ANALYZE;"
}

async fn place(stack: &Stack, n: usize) -> Vec<String> {
    let mut placed = Vec::new();
    for _ in 0..n.div_ceil(10) {
        let batch = join_all((0..10).map(|_| stack.order(&[("p-1", 1, "2.5")]))).await;
        placed.extend(batch.iter().map(|o| ids(o).0));
    }
    placed.truncate(n);
    for id in &placed {
        stack.order_becomes(id, "CONFIRMED").await;
    }
    placed
}

/// Per table of each database: rows read by sequential scans plus rows fetched through an
/// index, and the rows it holds. Read once no other session is connected: a session publishes
/// its counts when it ends.
async fn counts(stack: &Stack) -> BTreeMap<String, (i64, i64)> {
    let mut out = BTreeMap::new();
    for (svc, db) in DBS {
        let pool = PgPool::connect(&stack.database_url(svc)).await.expect("db");
        let rows = rows_read_per_table(&pool, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{db}: {e}"));
        for (table, read, held) in rows {
            out.insert(format!("{db}.{table}"), (read, held));
        }
        pool.close().await;
    }
    out
}

const DBS: [(Svc, &str); 4] = [
    (Svc::Order, "orders"),
    (Svc::Payment, "payments"),
    (Svc::Inventory, "inventory"),
    (Svc::Saga, "sagas"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_table_is_read_in_proportion_to_what_it_holds() {
    let mut stack = Stack::start(Options::default()).await;
    stack.set_stock("p-1", 1_000_000).await;
    // The tables filled while the services are stopped (the seed's own reads, such as its
    // foreign-key checks, are not the orders'), then the services started on them.
    for svc in ALL {
        stack.stop_service(svc).await;
    }
    for (svc, db) in DBS {
        let pool = PgPool::connect(&stack.database_url(svc)).await.expect("db");
        pool.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(seed_sql(db))))
            .await
            .unwrap_or_else(|e| panic!("seeding {db}: {e}"));
        pool.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(rare_sql(svc))))
            .await
            .unwrap_or_else(|e| panic!("filling {db}'s rare tables: {e}"));
        pool.close().await;
    }
    let before = counts(&stack).await;
    for svc in ALL {
        stack.start_service(svc).await;
    }
    let placed = place(&stack, ORDERS).await;
    // One reconciliation run among them: its reads of the runs kept (43,200 over 30 days) and
    // of the other services' records count too.
    let run = stack.reconcile_now().await.expect("a reconciliation run");
    assert!(run["error"].is_null(), "{run}");
    for svc in ALL {
        stack.stop_service(svc).await;
    }
    let after = counts(&stack).await;

    let read: BTreeMap<&String, (f64, i64)> = after
        .iter()
        .map(|(table, (read, held))| {
            let was = before.get(table).map_or(0, |(read, _)| *read);
            (table, ((read - was) as f64 / placed.len() as f64, *held))
        })
        .collect();
    println!("rows read per order (and rows held), by table: {read:#?}");
    for table in [
        "orders.orders",
        "payments.payments",
        "payments.cancelled_orders",
        "inventory.reservations",
        "inventory.cancelled_orders",
        "sagas.sagas",
        "sagas.saga_history",
        "sagas.dead_letters",
        "sagas.messaging_inbox",
        "sagas.reconcile_runs",
    ] {
        let held = read.get(&table.to_owned()).map_or(0, |(_, held)| *held);
        assert!(
            held >= 2_000,
            "{table} holds {held} rows: too few to tell a scan from a look-up"
        );
    }
    let over: Vec<String> = read
        .iter()
        .filter(|(_, (per_order, _))| *per_order > MOST)
        .map(|(t, (per_order, held))| format!("{t}: {per_order:.0} rows per order of {held}"))
        .collect();
    assert!(
        over.is_empty(),
        "tables read in proportion to their size (more than {MOST} rows per order): {over:?}"
    );
}
