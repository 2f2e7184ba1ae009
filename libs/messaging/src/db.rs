//! PostgreSQL: connection pools, and the one migrator each service database runs at start.
//!
//! A service's migrations are this library's (the outbox and inbox tables, versions below 100)
//! followed by those of the layers above it, in order: the service kit's (100 to 999) and the
//! service's own (from 1000), embedded in the binary.
//!
//! Two ledgers record them:
//! - the migrations of release 0.1.0 and before ([`Migration::frozen`]) are recorded by sqlx's
//!   migrator in `_sqlx_migrations`, as that release's binaries expect: they refuse to start on a
//!   database whose `_sqlx_migrations` holds a version they do not know, so no later migration
//!   is ever added there;
//! - every later migration is recorded in `messaging_schema_changes`, with whether it only
//!   expands the schema ([`Migration::expand`]: what older binaries read and write is left as
//!   it was) or contracts it ([`Migration::contract`]: it drops or tightens something, and names
//!   the oldest migration a binary must know to run on it).
//!
//! A binary therefore starts on a database migrated by a later release, as long as every
//! migration it does not know is an expansion, or a contraction whose named migration it knows:
//! the rollback of a release is routine (docs/upgrading.md). Each ledger is written under an
//! advisory lock, so several instances starting at once are safe.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use sqlx::migrate::{MigrateError, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Acquire as _, PgPool, SqlSafeStr};

/// Where a migration is recorded, and what it means for binaries that do not know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ledger {
    /// `_sqlx_migrations`: the migrations of release 0.1.0 and before. Frozen: nothing is added.
    Sqlx,
    /// `messaging_schema_changes`, as an expansion: a binary that does not know it runs on.
    Expand,
    /// `messaging_schema_changes`, as a contraction: only binaries that know migration `needs`
    /// run on a database it was applied to.
    Contract { needs: i64 },
}

/// One embedded migration.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
    pub ledger: Ledger,
    /// Whether it runs in one transaction. One that cannot (`CREATE INDEX CONCURRENTLY`, which
    /// builds an index without holding writes back) runs statement by statement; each must be
    /// safe to run again, as a failed attempt is tried again whole at the next start.
    pub transaction: bool,
}

impl Migration {
    /// A migration of release 0.1.0 or before, recorded as that release's binaries expect.
    pub const fn frozen(version: i64, description: &'static str, sql: &'static str) -> Migration {
        Migration {
            version,
            description,
            sql,
            ledger: Ledger::Sqlx,
            transaction: true,
        }
    }

    /// A migration that adds and changes nothing older binaries rely on.
    pub const fn expand(version: i64, description: &'static str, sql: &'static str) -> Migration {
        Migration {
            version,
            description,
            sql,
            ledger: Ledger::Expand,
            transaction: true,
        }
    }

    /// An expansion whose statements (separated by `;` at the end of a line) run one at a time
    /// outside a transaction, such as `CREATE INDEX CONCURRENTLY`, which does not block writes
    /// while it builds. Each statement must be safe to run again.
    pub const fn expand_outside_transaction(
        version: i64,
        description: &'static str,
        sql: &'static str,
    ) -> Migration {
        Migration {
            version,
            description,
            sql,
            ledger: Ledger::Expand,
            transaction: false,
        }
    }

    /// A migration that drops or tightens what binaries that do not know migration `needs` use.
    pub const fn contract(
        version: i64,
        description: &'static str,
        sql: &'static str,
        needs: i64,
    ) -> Migration {
        Migration {
            version,
            description,
            sql,
            ledger: Ledger::Contract { needs },
            transaction: true,
        }
    }
}

/// The first version a service may use for its own migrations (the service kit uses 100 to 999).
pub const FIRST_SERVICE_VERSION: i64 = 1000;

const MESSAGING_MIGRATIONS: &[Migration] = &[
    Migration::frozen(
        1,
        "outbox and inbox",
        include_str!("../migrations/0001_outbox_inbox.sql"),
    ),
    Migration::frozen(
        2,
        "dead letters",
        include_str!("../migrations/0002_dead_letters.sql"),
    ),
    Migration::frozen(
        3,
        "outbox trace context",
        include_str!("../migrations/0003_outbox_trace.sql"),
    ),
    Migration::frozen(
        4,
        "outbox with fewer indexes",
        include_str!("../migrations/0004_outbox_fewer_indexes.sql"),
    ),
    Migration::frozen(
        5,
        "inbox keyed by event",
        include_str!("../migrations/0005_inbox_by_event.sql"),
    ),
    Migration::frozen(
        6,
        "dead letters by age",
        include_str!("../migrations/0006_dead_letters_by_age.sql"),
    ),
];

/// Why the database cannot be brought to this binary's schema.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration {version} ({description}) was changed after it was applied")]
    Changed { version: i64, description: String },
    #[error(
        "the database was migrated by a later release with migration {version} ({description}), \
         which drops or tightens what this binary uses: only binaries that know migration \
         {needs} run on it (docs/upgrading.md)"
    )]
    TooOld {
        version: i64,
        description: String,
        needs: i64,
    },
    #[error("{0}")]
    Order(String),
}

/// What [`migrate`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied now.
    pub applied: Vec<i64>,
    /// Versions a later release applied, all expansions (or contractions this binary allows).
    pub unknown: Vec<i64>,
}

/// A row of `messaging_schema_changes`.
#[derive(sqlx::FromRow)]
struct Recorded {
    version: i64,
    description: String,
    checksum: Vec<u8>,
    needs: Option<i64>,
}

/// Brings the database to this binary's schema: this library's migrations and then each layer's
/// (in the order given), each once, in the ledger each belongs to. Versions must rise from layer
/// to layer, so that no layer's migration lands between another's. Fails when the database was
/// contracted past what this binary knows.
pub async fn migrate(
    pool: &PgPool,
    layers: &[&[Migration]],
) -> Result<MigrationReport, SchemaError> {
    let all: Vec<&Migration> = MESSAGING_MIGRATIONS
        .iter()
        .chain(layers.iter().flat_map(|l| l.iter()))
        .collect();
    if let Some(pair) = all.windows(2).find(|w| w[1].version <= w[0].version) {
        return Err(SchemaError::Order(format!(
            "migration {} ({}) must be numbered above {} ({})",
            pair[1].version, pair[1].description, pair[0].version, pair[0].description
        )));
    }
    let frozen = all
        .iter()
        .filter(|m| m.ledger == Ledger::Sqlx)
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
        migrations: Cow::Owned(frozen),
        // A later release never adds to this ledger; should one, its rows are no reason to stop.
        ignore_missing: true,
        ..Migrator::DEFAULT
    };
    migrator.run(pool).await?;
    let later: Vec<&Migration> = all
        .iter()
        .copied()
        .filter(|m| m.ledger != Ledger::Sqlx)
        .collect();
    let known: HashSet<i64> = all.iter().map(|m| m.version).collect();
    migrate_later(pool, &later, &known).await
}

/// The key of the advisory lock held while `messaging_schema_changes` is read and written.
const SCHEMA_LOCK: i64 = 0x5343_4845_4d41; // "SCHEMA"

async fn migrate_later(
    pool: &PgPool,
    later: &[&Migration],
    known: &HashSet<i64>,
) -> Result<MigrationReport, SchemaError> {
    let mut conn = pool.acquire().await?;
    // Asked for again and again rather than waited for in one statement: a statement waiting
    // for the lock is a transaction that `CREATE INDEX CONCURRENTLY`, run by the instance that
    // holds the lock, waits for in turn; PostgreSQL then ends one of the two as a deadlock.
    while !sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(SCHEMA_LOCK)
        .fetch_one(&mut *conn)
        .await?
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result = async {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS messaging_schema_changes ( \
                 version      BIGINT PRIMARY KEY, \
                 description  TEXT NOT NULL, \
                 checksum     BYTEA NOT NULL, \
                 needs        BIGINT, \
                 installed_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *conn)
        .await?;
        let recorded: Vec<Recorded> = sqlx::query_as(
            "SELECT version, description, checksum, needs FROM messaging_schema_changes \
             ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut report = MigrationReport::default();
        for row in &recorded {
            match later.iter().find(|m| m.version == row.version) {
                Some(m) if checksum(m.sql) != row.checksum => {
                    return Err(SchemaError::Changed {
                        version: row.version,
                        description: row.description.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    if let Some(needs) = row.needs.filter(|n| !known.contains(n)) {
                        return Err(SchemaError::TooOld {
                            version: row.version,
                            description: row.description.clone(),
                            needs,
                        });
                    }
                    report.unknown.push(row.version);
                }
            }
        }
        for m in later {
            if recorded.iter().any(|r| r.version == m.version) {
                continue;
            }
            if !m.transaction {
                for statement in m.sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
                        .execute(&mut *conn)
                        .await?;
                }
            }
            let mut tx = conn.begin().await?;
            if m.transaction {
                sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
            }
            let needs = match m.ledger {
                Ledger::Contract { needs } => Some(needs),
                Ledger::Expand | Ledger::Sqlx => None,
            };
            sqlx::query(
                "INSERT INTO messaging_schema_changes (version, description, checksum, needs) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(m.version)
            .bind(m.description)
            .bind(checksum(m.sql))
            .bind(needs)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            report.applied.push(m.version);
        }
        Ok(report)
    }
    .await;
    // Also released when the connection closes, should this fail.
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *conn)
        .await;
    result
}

/// The SHA-256 of a migration's text, to tell a migration changed after it was applied.
fn checksum(sql: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(sql.as_bytes()).to_vec()
}

/// A pool that gives up on a connection after a few seconds, so that a database outage surfaces
/// as an error the caller retries, not as a hang.
///
/// Its connections use generic plans for prepared statements. Every statement of the services
/// looks rows up by key (`= ANY($1)`, `unnest` joins), so one plan serves every execution (the
/// listings, whose best plan depends on the values of their filters, are planned for them:
/// [`fetch_listing`]); by default PostgreSQL would plan many of them again on every
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
        // A request that finds no connection within a second is answered 503: with the database
        // down, at once rather than after the default 30 s; at saturation, before it queues long.
        .acquire_timeout(Duration::from_secs(1))
        // No ping before each use (a round trip per transaction): a connection that died is
        // found by the statement that uses it, whose error is a transient one the caller
        // retries, and the pool then opens a new connection.
        .test_before_acquire(false)
        .connect_with(options)
        .await
}

/// Runs a listing (the filters a request gave, `ORDER BY` a key, `LIMIT`) with a plan made for
/// its values: in a read-only transaction whose `plan_cache_mode` is `force_custom_plan`.
///
/// The pool's generic plans (see [`connect`]) suit the look-ups by key, not a listing: made
/// without the values, the plan of "`CANCELLED` orders that changed in this window, newest
/// first" read every order that changed in the window and sorted them, for each page (52,044
/// rows a page over a minute of 54,000 orders), and that of "`PENDING` orders placed before
/// this time" walked the whole table backwards by key. With the values, PostgreSQL reads the
/// page along the index of the status. A listing costs two round trips more (the transaction's
/// start, with the setting, and its end) and a plan each time.
pub async fn fetch_listing<T>(
    pool: &PgPool,
    query: &mut sqlx::QueryBuilder<sqlx::Postgres>,
) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut tx = pool
        .begin_with("BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_custom_plan")
        .await?;
    let rows = query.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows)
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
