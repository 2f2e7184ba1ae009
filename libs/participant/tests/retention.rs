//! Cancelled-first orders are forgotten once past their retention, and only then.

use std::time::Duration;

use sqlx::Executor;

#[tokio::test]
async fn cancelled_first_orders_are_kept_for_the_retention_then_deleted() -> anyhow::Result<()> {
    let db = test_support::TestDb::create().await?;
    let pool = db.pool(2).await?;
    // The participants' table as their migration 1000 makes it, then the index of 1002,
    // statement by statement (as the migrator runs it).
    pool.execute(
        "CREATE TABLE cancelled_orders (order_id UUID PRIMARY KEY, \
         cancelled_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    for statement in participant::cancellations::BY_AGE.sql.split(";\n") {
        if !statement.trim().is_empty() {
            pool.execute(sqlx::AssertSqlSafe(statement.to_owned()))
                .await?;
        }
    }
    let retention = participant::cancellations::retention();
    assert_eq!(retention, Duration::from_secs(8 * 24 * 3600));
    // Three past the retention, two within it (one a minute short of it).
    sqlx::query(
        "INSERT INTO cancelled_orders (order_id, cancelled_at) \
         SELECT gen_random_uuid(), now() - make_interval(secs => a) \
         FROM unnest($1::float8[]) AS a",
    )
    .bind(vec![
        retention.as_secs_f64() + 60.0,
        retention.as_secs_f64() * 2.0,
        retention.as_secs_f64() * 10.0,
        retention.as_secs_f64() - 60.0,
        0.0,
    ])
    .execute(&pool)
    .await?;

    let deleted = participant::cancellations::prune(&pool, retention).await?;
    assert_eq!(deleted, 3);
    let ages: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM now() - cancelled_at)::float8 FROM cancelled_orders \
         ORDER BY cancelled_at",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(ages.len(), 2, "left: {ages:?}");
    assert!(
        ages.iter().all(|a| *a < retention.as_secs_f64()),
        "{ages:?}"
    );
    // Nothing more to delete.
    assert_eq!(
        participant::cancellations::prune(&pool, retention).await?,
        0
    );
    Ok(())
}
