//! The migrator: each migration once, in the ledger of its release, and a binary that starts on a
//! database a later release migrated unless a contraction there needs what it does not know.

use messaging::db::{MigrationReport, SchemaError, migrate};

use crate::rig::*;

const LATER: &[Migration] = &[
    Migration::expand(
        1001,
        "a column only this release writes",
        "ALTER TABLE effects ADD COLUMN note TEXT",
    ),
    Migration::contract(
        1002,
        "a column no binary that knows 1001 needs",
        "ALTER TABLE effects DROP COLUMN instance",
        1001,
    ),
];

async fn fresh() -> (TestDb, PgPool) {
    let db = TestDb::create().await.expect("test database");
    let pool = db.pool(2).await.expect("pool");
    (db, pool)
}

async fn versions(pool: &PgPool, table: &str) -> Vec<i64> {
    let sql = format!("SELECT version FROM {table} ORDER BY version");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .expect("versions")
}

#[tokio::test]
async fn migrations_after_the_first_release_are_recorded_where_its_binaries_do_not_look() {
    let (_db, pool) = fresh().await;
    let first = migrate(&pool, &[EFFECTS, LATER]).await.expect("migrate");
    assert_eq!(first.applied, [1000, 1001, 1002]);
    assert_eq!(
        versions(&pool, "_sqlx_migrations").await,
        [1, 2, 3, 4, 5, 6],
        "the first release's ledger holds only the migrations it knows"
    );
    assert_eq!(
        versions(&pool, "messaging_schema_changes").await,
        [1000, 1001, 1002]
    );
    let again = migrate(&pool, &[EFFECTS, LATER]).await.expect("again");
    assert_eq!(again, MigrationReport::default(), "nothing twice");
}

#[tokio::test]
async fn a_binary_starts_on_a_database_a_later_release_expanded() {
    let (_db, pool) = fresh().await;
    migrate(&pool, &[EFFECTS, &LATER[..1]])
        .await
        .expect("the later release");
    // The release before it: it knows 1000 only.
    let report = migrate(&pool, &[EFFECTS])
        .await
        .expect("the earlier release starts");
    assert_eq!(report.unknown, [1001]);
    assert!(report.applied.is_empty());
}

#[tokio::test]
async fn a_binary_refuses_a_database_contracted_past_what_it_knows() {
    let (_db, pool) = fresh().await;
    migrate(&pool, &[EFFECTS, LATER])
        .await
        .expect("the later release");
    match migrate(&pool, &[EFFECTS]).await {
        Err(SchemaError::TooOld { version, needs, .. }) => {
            assert_eq!((version, needs), (1002, 1001));
        }
        other => panic!("expected TooOld, got {other:?}"),
    }
    // A binary that knows 1001 (the release between) runs on it.
    let report = migrate(&pool, &[EFFECTS, &LATER[..1]])
        .await
        .expect("knows 1001");
    assert_eq!(report.unknown, [1002]);
}

#[tokio::test]
async fn a_migration_changed_after_it_was_applied_stops_the_start() {
    let (_db, pool) = fresh().await;
    migrate(&pool, &[EFFECTS]).await.expect("migrate");
    let changed = [Migration::expand(1000, "test effects", "SELECT 1")];
    match migrate(&pool, &[&changed]).await {
        Err(SchemaError::Changed { version, .. }) => assert_eq!(version, 1000),
        other => panic!("expected Changed, got {other:?}"),
    }
}

#[tokio::test]
async fn instances_starting_at_once_apply_each_migration_once() {
    let (_db, pool) = fresh().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { migrate(&pool, &[EFFECTS, LATER]).await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.expect("task").expect("migrate").applied);
    }
    applied.sort_unstable();
    assert_eq!(applied, [1000, 1001, 1002]);
}

#[tokio::test]
async fn instances_starting_at_once_build_an_index_concurrently_without_a_deadlock() {
    // Each instance its own connection, as separate processes have: while one builds the index
    // (which waits for every other transaction to end), the others wait for the migration lock.
    const INDEXED: &[Migration] = &[Migration::expand_outside_transaction(
        1001,
        "effects by instance, built without holding writes back",
        "DROP INDEX CONCURRENTLY IF EXISTS effects_by_instance;\n\
         CREATE INDEX CONCURRENTLY effects_by_instance ON effects (instance);\n",
    )];
    let (db, _pool) = fresh().await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let pool = db.pool(1).await.expect("pool");
        runs.push(tokio::spawn(async move {
            migrate(&pool, &[EFFECTS, INDEXED]).await
        }));
    }
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.await.expect("task").expect("migrate").applied);
    }
    applied.sort_unstable();
    assert_eq!(applied, [1000, 1001]);
}
