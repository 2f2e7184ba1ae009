//! Every SQL statement of payment-service: the `payments` and `cancelled_orders` tables.

use chrono::{DateTime, Utc};
use shared_events::{Currency, Money};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Simulation;
use crate::gateway::SuccessRate;
use crate::rules::{Book, Payment, PaymentFailure, PaymentStatus};

const COLUMNS: &str =
    "payment_id, order_id, saga_id, amount, currency, status, reason, created_at, updated_at";

/// A payment as its row holds it.
#[derive(sqlx::FromRow)]
struct PaymentRow {
    payment_id: Uuid,
    order_id: Uuid,
    saga_id: Uuid,
    amount: Money,
    currency: Currency,
    status: PaymentStatus,
    reason: Option<PaymentFailure>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PaymentRow> for Payment {
    fn from(r: PaymentRow) -> Payment {
        Payment {
            payment_id: r.payment_id,
            order_id: r.order_id,
            saga_id: r.saga_id,
            amount: r.amount,
            currency: r.currency,
            status: r.status,
            reason: r.reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The payment of an order, if it was charged.
pub async fn by_order(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1");
    let row: Option<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Payment::from))
}

/// The payments of `order_ids`, those that were charged.
pub async fn by_orders(pool: &PgPool, order_ids: &[Uuid]) -> Result<Vec<Payment>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE order_id = ANY($1) ORDER BY order_id");
    let rows: Vec<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(order_ids)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Payment::from).collect())
}

pub async fn by_id(
    conn: &mut PgConnection,
    payment_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM payments WHERE payment_id = $1");
    let row: Option<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(payment_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Payment::from))
}

/// Where the payments of `order_ids` stand. Called in a transaction serialised on those orders
/// (see `Reactions::serialise_on`).
pub async fn load(conn: &mut PgConnection, order_ids: &[Uuid]) -> Result<Book, sqlx::Error> {
    let known =
        participant::cancellations::load::<PaymentRow>(conn, "payments", COLUMNS, order_ids)
            .await?;
    let payments = known
        .rows
        .into_iter()
        .map(|(order, row)| (order, Payment::from(row)))
        .collect();
    Ok(Book::new(payments, known.cancelled_first))
}

/// Writes what the book's decisions changed, in one statement: new charges, refunds, and
/// cancellations seen first.
pub async fn save(conn: &mut PgConnection, book: &Book) -> Result<(), sqlx::Error> {
    if !book.is_changed() {
        return Ok(());
    }
    let changes = book.changes();
    let charged = &changes.charged;
    let ids: Vec<Uuid> = charged.iter().map(|p| p.payment_id).collect();
    let orders: Vec<Uuid> = charged.iter().map(|p| p.order_id).collect();
    let sagas: Vec<Uuid> = charged.iter().map(|p| p.saga_id).collect();
    let amounts: Vec<Money> = charged.iter().map(|p| p.amount).collect();
    let currencies: Vec<&Currency> = charged.iter().map(|p| &p.currency).collect();
    let statuses: Vec<PaymentStatus> = charged.iter().map(|p| p.status).collect();
    let reasons: Vec<Option<PaymentFailure>> = charged.iter().map(|p| p.reason).collect();
    sqlx::query(
        "WITH charged AS ( \
             INSERT INTO payments (payment_id, order_id, saga_id, amount, currency, status, reason) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[], $5::text[], \
                                  $6::text[], $7::text[])), \
         refunded AS ( \
             UPDATE payments SET status = $10, updated_at = now() \
             WHERE payment_id = ANY($8)) \
         INSERT INTO cancelled_orders (order_id) SELECT * FROM unnest($9::uuid[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&sagas)
    .bind(&amounts)
    .bind(&currencies)
    .bind(&statuses)
    .bind(&reasons)
    .bind(&changes.refunded)
    .bind(changes.marked)
    .bind(PaymentStatus::Refunded)
    .execute(conn)
    .await?;
    Ok(())
}

/// The simulation settings in force, with when and by whom they were last set.
#[derive(Clone, Debug)]
pub struct SimulationRow {
    pub simulation: Simulation,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    /// Whether this start applied the environment's values (first start, or changed values).
    pub from_environment: bool,
}

/// The `simulation` row as stored.
#[derive(sqlx::FromRow)]
struct RawSimulation {
    success_rate: f64,
    seed: i64,
    latency_ms: i64,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

fn simulation_row(
    raw: RawSimulation,
    from_environment: bool,
) -> Result<SimulationRow, sqlx::Error> {
    let corrupt = |e: String| sqlx::Error::Decode(e.into());
    Ok(SimulationRow {
        simulation: Simulation {
            success_rate: SuccessRate::new(raw.success_rate).map_err(corrupt)?,
            // The column holds the u64 seed's bits.
            seed: raw.seed as u64,
            latency: std::time::Duration::from_millis(u64::try_from(raw.latency_ms).unwrap_or(0)),
        },
        updated_at: raw.updated_at,
        updated_by: raw.updated_by,
        from_environment,
    })
}

const SIMULATION_COLUMNS: &str = "success_rate, seed, latency_ms, updated_at, updated_by";

/// At start: writes the environment's simulation settings if there are none yet, or if they
/// differ from the environment's values last applied (the deployment changed them); otherwise
/// keeps what is stored (changed at run time). Returns the settings in force.
pub async fn init_simulation(
    pool: &PgPool,
    env: &Simulation,
) -> Result<SimulationRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO simulation (success_rate, seed, latency_ms, env_success_rate, env_seed, \
         env_latency_ms, updated_by) VALUES ($1, $2, $3, $1, $2, $3, 'environment') \
         ON CONFLICT (id) DO UPDATE SET success_rate = $1, seed = $2, latency_ms = $3, \
         env_success_rate = $1, env_seed = $2, env_latency_ms = $3, updated_at = now(), \
         updated_by = 'environment' \
         WHERE (simulation.env_success_rate, simulation.env_seed, simulation.env_latency_ms) \
               IS DISTINCT FROM ($1, $2, $3) \
         RETURNING {SIMULATION_COLUMNS}"
    );
    let written: Option<RawSimulation> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(env.success_rate.get())
        .bind(env.seed as i64)
        .bind(env.latency.as_millis() as i64)
        .fetch_optional(pool)
        .await?;
    match written {
        Some(raw) => simulation_row(raw, true),
        None => {
            let mut conn = pool.acquire().await?;
            simulation(&mut conn).await
        }
    }
}

/// The simulation settings in force now, read in the caller's transaction.
pub async fn simulation(conn: &mut PgConnection) -> Result<SimulationRow, sqlx::Error> {
    let sql = format!("SELECT {SIMULATION_COLUMNS} FROM simulation");
    let raw: RawSimulation = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await?;
    simulation_row(raw, false)
}

/// Replaces the simulation settings (an admin's change), under the row's lock.
pub async fn set_simulation(
    conn: &mut PgConnection,
    next: &Simulation,
    by: &str,
) -> Result<SimulationRow, sqlx::Error> {
    let sql = format!(
        "UPDATE simulation SET success_rate = $1, seed = $2, latency_ms = $3, updated_at = now(), \
         updated_by = $4 RETURNING {SIMULATION_COLUMNS}"
    );
    let raw: RawSimulation = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(next.success_rate.get())
        .bind(next.seed as i64)
        .bind(next.latency.as_millis() as i64)
        .bind(by)
        .fetch_one(conn)
        .await?;
    simulation_row(raw, false)
}

/// The simulation settings, locked for a change in this transaction.
pub async fn lock_simulation(conn: &mut PgConnection) -> Result<SimulationRow, sqlx::Error> {
    let sql = format!("SELECT {SIMULATION_COLUMNS} FROM simulation FOR UPDATE");
    let raw: RawSimulation = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await?;
    simulation_row(raw, false)
}
