//! PostgreSQL: connection pools, and the one migrator each service database runs at start.
//!
//! A service's migrator is this library's migrations (the outbox and inbox tables, versions below
//! 100) followed by those of the layers above it, in order: the service kit's (100 to 999) and the
//! service's own (from 1000), embedded in the binary. sqlx takes an advisory lock while
//! migrating, so several instances starting at once are safe.

use std::borrow::Cow;
use std::time::Duration;

use sqlx::migrate::{MigrateError, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, SqlSafeStr};

/// One embedded migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

/// The first version a service may use for its own migrations (the service kit uses 100 to 999).
pub const FIRST_SERVICE_VERSION: i64 = 1000;

const MESSAGING_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "outbox and inbox",
        sql: include_str!("../migrations/0001_outbox_inbox.sql"),
    },
    Migration {
        version: 2,
        description: "dead letters",
        sql: include_str!("../migrations/0002_dead_letters.sql"),
    },
    Migration {
        version: 3,
        description: "outbox trace context",
        sql: include_str!("../migrations/0003_outbox_trace.sql"),
    },
    Migration {
        version: 4,
        description: "outbox with fewer indexes",
        sql: include_str!("../migrations/0004_outbox_fewer_indexes.sql"),
    },
    Migration {
        version: 5,
        description: "inbox keyed by event",
        sql: include_str!("../migrations/0005_inbox_by_event.sql"),
    },
    Migration {
        version: 6,
        description: "dead letters by age",
        sql: include_str!("../migrations/0006_dead_letters_by_age.sql"),
    },
];

/// Applies this library's migrations and then each layer's (in the order given), each once.
/// Versions must rise from layer to layer, so that no layer's migration lands between another's.
pub async fn migrate(pool: &PgPool, layers: &[&[Migration]]) -> Result<(), MigrateError> {
    let all: Vec<&Migration> = MESSAGING_MIGRATIONS
        .iter()
        .chain(layers.iter().flat_map(|l| l.iter()))
        .collect();
    if let Some(pair) = all.windows(2).find(|w| w[1].version <= w[0].version) {
        return Err(MigrateError::Source(
            format!(
                "migration {} ({}) must be numbered above {} ({})",
                pair[1].version, pair[1].description, pair[0].version, pair[0].description
            )
            .into(),
        ));
    }
    let migrations = all
        .into_iter()
        .map(|m| {
            sqlx::migrate::Migration::new(
                m.version,
                Cow::Borrowed(m.description),
                MigrationType::Simple,
                m.sql.into_sql_str(),
                false,
            )
        })
        .collect::<Vec<_>>();
    let migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    migrator.run(pool).await
}

/// A pool that gives up on a connection after a few seconds, so that a database outage surfaces
/// as an error the caller retries, not as a hang.
///
/// Its connections use generic plans for prepared statements. Every statement of the services
/// looks rows up by key (`= ANY($1)`, `unnest` joins) or by the filters actually given, so one
/// plan serves every execution; by default PostgreSQL would plan many of them again on every
/// execution, because a custom plan for a short array looks cheaper than the generic one.
///
/// They also tell the planner not to choose sequential scans where an index serves. A generic
/// plan is made once per connection, often while a table is still empty or its statistics are
/// stale; a plan that scans a table that was empty then gets slower with every row added, until
/// the connection is closed. Every statement here has an index for its lookup, so the index is
/// always the right choice; a table without a usable index is still scanned.
///
/// And they never compile queries to machine code (JIT). PostgreSQL does so for a query whose
/// estimated cost is high, and a plan that must scan a table (a trigger reading its transition
/// table, a small table without an index) is estimated very high once sequential scans are
/// disfavoured: every execution of such a statement then spent milliseconds in LLVM, half of
/// PostgreSQL's CPU at 50 orders/s. Every statement here is short; compiling never pays.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse::<PgConnectOptions>()?.options([
        ("plan_cache_mode", "force_generic_plan"),
        ("enable_seqscan", "off"),
        ("jit", "off"),
    ]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // No ping before each use (a round trip per transaction): a connection that died is
        // found by the statement that uses it, whose error is a transient one the caller
        // retries, and the pool then opens a new connection.
        .test_before_acquire(false)
        .connect_with(options)
        .await
}

/// Whether an error means the database could not be reached (as opposed to a statement failing).
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    ) || matches!(error, sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

/// [`is_unavailable`] for an error with context: whether a database error somewhere in its
/// chain means the database could not be reached.
pub fn is_unavailable_in(error: &anyhow::Error) -> bool {
    sqlx_error_in(error).is_some_and(is_unavailable)
}

/// The database error an error with context was made from, if any.
pub fn sqlx_error_in(error: &anyhow::Error) -> Option<&sqlx::Error> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
}

/// Whether an error will likely go away if the same work is tried again: the database could not
/// be reached, or the transaction lost a deadlock or a serialisation conflict.
pub fn is_transient(error: &sqlx::Error) -> bool {
    is_unavailable(error)
        || matches!(error, sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

/// Begins a transaction serialised with every other that works on one of `keys` (for example
/// everything a service does for one order, before any row of it exists to lock), until it ends:
/// transaction-scoped advisory locks, taken in the same round trip as `BEGIN`. The locks are
/// taken in one statement in ascending order, so transactions locking overlapping sets wait for
/// each other instead of deadlocking.
pub async fn begin_serialised(
    pool: &PgPool,
    keys: &[uuid::Uuid],
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    if keys.is_empty() {
        return pool.begin().await;
    }
    let mut keys: Vec<i64> = keys
        .iter()
        .map(|k| {
            let (hi, lo) = k.as_u64_pair();
            (hi ^ lo) as i64
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // Numbers only: nothing of a request reaches this text.
    let list = keys
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let statement =
        format!("BEGIN; SELECT pg_advisory_xact_lock(k) FROM unnest('{{{list}}}'::bigint[]) AS k");
    pool.begin_with(sqlx::AssertSqlSafe(statement)).await
}

/// Runs a retention `DELETE` (`$1` the age in seconds, `$2` the most rows per round) until a
/// round deletes nothing, so that no deletion holds one long transaction; returns how many rows
/// went.
pub async fn delete_in_batches(
    pool: &PgPool,
    sql: &'static str,
    age: f64,
) -> Result<u64, sqlx::Error> {
    const BATCH: i64 = 10_000;
    let mut total = 0;
    loop {
        let deleted = sqlx::query(sql)
            .bind(age)
            .bind(BATCH)
            .execute(pool)
            .await?
            .rows_affected();
        total += deleted;
        if deleted == 0 {
            return Ok(total);
        }
    }
}
