//! The pages of `GET /orders` that the saga-coordinator's reconciliation reads (orders `PENDING`
//! placed before a time; orders `CANCELLED` that changed within a window) read about a page of
//! rows each, however many orders the window holds. The services' connections make generic plans
//! (`messaging::db::connect`); a generic plan of such a page, made without the window's bounds,
//! walks every order that changed in the window and sorts them for each page, or the whole table
//! backwards to find a few `PENDING` ones.
//!
//! The coordinator reads the window oldest change first (`sort=updated`), which must read a
//! page of index entries per page even on a table never analyzed: `orders` grows faster than
//! autovacuum analyzes it past saturation, and with no statistics the planner intersected every
//! order that changed in the window (`orders_updated`) with every cancelled one for each page.

use std::time::Duration;

use chrono::Utc;
use order_service::rules::OrderStatus;
use order_service::store::{self, ListFilter, Sort};
use sqlx::PgPool;
use test_support::{TestDb, rows_read_per_table};

/// Orders that changed in the last minute, as a minute past saturation leaves them: placed and
/// ended about 900 a second, one in ten cancelled, the newest 1,000 still `PENDING`.
const ORDERS: u32 = 54_000;
const FILL: &str = "
INSERT INTO orders (order_id, saga_id, customer_id, items, total_amount, currency, status,
                    request, created_at, updated_at)
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
        || substr(md5(g::text), 1, 19))::uuid,
       gen_random_uuid(), 'c-listing', '[]', 10, 'EUR', s, '{}', t, t + interval '300 ms'
FROM (SELECT g, now() - make_interval(secs => (54000 - g) / 900.0) AS t,
             CASE WHEN g % 10 = 0 THEN 'CANCELLED'
                  WHEN g > 53000 THEN 'PENDING' ELSE 'CONFIRMED' END AS s
      FROM generate_series(1, 54000) AS g) AS x;";
/// Pages read of each kind.
const PAGES: usize = 10;
/// The most rows a page of 100 may read: the page, and the rows of its status that the filter
/// passes over (orders that changed after the window's end).
const MOST: i64 = 1_000;

/// Rows of `orders` read so far (sequential scans plus index fetches), and entries read of its
/// indexes.
async fn rows_read(url: &str) -> anyhow::Result<(i64, i64)> {
    let pool = PgPool::connect(url).await?;
    let tables = rows_read_per_table(&pool, Duration::from_secs(10))
        .await
        .map_err(anyhow::Error::msg)?;
    let entries: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(idx_tup_read), 0)::bigint FROM pg_stat_user_indexes \
         WHERE relname = 'orders'",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    let rows = tables
        .into_iter()
        .find(|(table, _, _)| table == "orders")
        .map_or(0, |(_, read, _)| read);
    Ok((rows, entries))
}

#[tokio::test]
async fn the_reconciliations_pages_read_a_page_of_rows_each() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let pool = messaging::db::connect(&db.url, 1).await?;
    messaging::db::migrate(&pool, &[order_service::MIGRATIONS]).await?;
    sqlx::raw_sql(FILL).execute(&pool).await?;
    sqlx::raw_sql("ANALYZE orders").execute(&pool).await?;
    pool.close().await;
    let before = rows_read(&db.url).await?.0;

    let pool = messaging::db::connect(&db.url, 1).await?;
    let now = Utc::now();
    let window = ListFilter {
        status: Some(OrderStatus::Cancelled),
        updated_after: Some(now - chrono::Duration::seconds(70)),
        updated_before: Some(now - chrono::Duration::seconds(5)),
        limit: 100,
        ..ListFilter::default()
    };
    let mut cancelled = 0;
    let mut cursor = None;
    for _ in 0..PAGES {
        let page = store::list(
            &pool,
            &ListFilter {
                before: cursor,
                ..window.clone()
            },
        )
        .await?;
        assert_eq!(
            page.len(),
            100,
            "a full page of the window's cancelled orders"
        );
        assert!(page.iter().all(|o| o.status == OrderStatus::Cancelled));
        cancelled += page.len();
        cursor = page.last().map(|o| o.order_id);
    }
    let stuck = ListFilter {
        status: Some(OrderStatus::Pending),
        created_before: Some(now - chrono::Duration::seconds(30)),
        limit: 100,
        ..ListFilter::default()
    };
    for _ in 0..PAGES {
        assert!(
            store::list(&pool, &stuck).await?.is_empty(),
            "no order is stuck"
        );
    }
    pool.close().await;
    let read = rows_read(&db.url).await?.0 - before;

    assert_eq!(cancelled, PAGES * 100);
    let per_page = read / (2 * PAGES as i64);
    println!(
        "rows read per page: {per_page} ({read} in {} pages)",
        2 * PAGES
    );
    assert!(
        per_page <= MOST,
        "a page read {per_page} rows on average ({read} in {} pages) of {ORDERS} orders",
        2 * PAGES
    );
    Ok(())
}

#[tokio::test]
async fn the_window_oldest_change_first_reads_a_page_per_page_without_statistics()
-> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let pool = messaging::db::connect(&db.url, 1).await?;
    messaging::db::migrate(&pool, &[order_service::MIGRATIONS]).await?;
    sqlx::raw_sql(FILL).execute(&pool).await?;
    let analyzed: Option<chrono::DateTime<Utc>> = sqlx::query_scalar(
        "SELECT coalesce(last_analyze, last_autoanalyze) FROM pg_stat_user_tables \
         WHERE relname = 'orders'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(analyzed, None, "the table has no statistics");
    let now = Utc::now();
    let (after, before) = (
        now - chrono::Duration::seconds(70),
        now - chrono::Duration::seconds(5),
    );
    let expected: Vec<(chrono::DateTime<Utc>, uuid::Uuid)> = sqlx::query_as(
        "SELECT updated_at, order_id FROM orders WHERE status = 'CANCELLED' \
         AND updated_at > $1 AND updated_at < $2 ORDER BY updated_at, order_id",
    )
    .bind(after)
    .bind(before)
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    assert!(
        expected.len() > 40 * 100,
        "{} in the window",
        expected.len()
    );
    let (rows_before, entries_before) = rows_read(&db.url).await?;

    let pool = messaging::db::connect(&db.url, 1).await?;
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut at = None;
    loop {
        let page = store::list(
            &pool,
            &ListFilter {
                status: Some(OrderStatus::Cancelled),
                updated_after: Some(after),
                updated_before: Some(before),
                sort: Sort::Updated,
                after_change: at,
                limit: 101,
                ..ListFilter::default()
            },
        )
        .await?;
        pages += 1;
        let more = page.len() == 101;
        seen.extend(page.iter().take(100).map(|o| (o.updated_at, o.order_id)));
        if !more {
            break;
        }
        at = seen.last().copied();
    }
    pool.close().await;
    let (rows, entries) = rows_read(&db.url).await?;
    let (rows, entries) = (rows - rows_before, entries - entries_before);

    assert_eq!(
        seen, expected,
        "every cancelled order of the window once, in order"
    );
    println!("{pages} pages: {rows} rows and {entries} index entries read");
    // A page of 101 rows; the last page fewer.
    assert!(
        entries <= pages * 101,
        "{entries} index entries read in {pages} pages"
    );
    assert!(rows <= pages * 101, "{rows} rows read in {pages} pages");
    Ok(())
}
