//! Admission: whether a new order may be accepted without pushing order-to-end latency past its
//! bound.
//!
//! The measure is the age of the orders still `PENDING` that wait their turn: a new order is
//! refused while [`Admission::SLACK`] or more of them are older than the bound. Orders are
//! handled in the order they were placed, so that age is what an order accepted now can expect to
//! wait, whatever the machine's speed: past saturation the orders in flight settle at about
//! throughput × the bound (Little's law), instead of growing while clients keep posting.
//!
//! Not every order still `PENDING` waits its turn:
//! - Orders pending longer than the saga deadline ([`AdmissionSettings::stuck_after`]) are stuck,
//!   waiting for their deadline or an operator.
//! - Orders placed before the newest `CONFIRMED` one are held, not queued: an order placed after
//!   them went all the way through payment, inventory, the coordinator and back, so nothing they
//!   wait for is in front of a new order. They are the orders whose outcome an order-service
//!   instance took and died with (it comes back after the 30 s ack wait), or whose events wait
//!   for a redelivery after a NATS server restarted. Counted as a queue, they stopped every new
//!   order until they came back. Only a confirmation overtakes: an order cancelled at its first
//!   refusal (a sold-out product) ends before the orders in front of it at the other
//!   participant, so it says nothing about that queue.
//!
//! The slack keeps a few orders held up on their own from stopping every new order meanwhile: a
//! queue is many orders waiting, not a few.
//!
//! The write path is bounded too: an order is also refused while [`AdmissionSettings::max_writing`]
//! orders are already being written. Past saturation, orders admitted together would otherwise
//! all queue behind one another in the intake (and in the one thread that answers HTTP), and
//! both the POST and the order's end would wait for it.
//!
//! A refusal for the write bound asks the client to come back later the more clients wait to come
//! back ([`pace`]): every refusal costs the one thread that also writes the orders admitted (the
//! request, a read of its `Idempotency-Key`, the answer), and each client told to wait comes back
//! once per `Retry-After`. The clients waiting are counted, not inferred from the refusals of the
//! last second: those stop while the clients sent away for longer are away, and an estimate made
//! from them would ask the next clients for 1 s again. A refusal for the queue keeps
//! [`Admission::RETRY_AFTER`]: the queue drains by itself once the saga moves again (after a
//! participant or NATS came back), and a client told to wait longer would only see that later.
//!
//! The newest confirmed order and the oldest pending ones are short index ranges (`orders_status`
//! is ordered by status and then by order id, and order ids are UUIDv7, ordered by time). They are
//! read at most every [`Admission::REFRESH`], by one request at a time, and only while orders come
//! in: an idle service asks nothing. While one request reads them, the others decide on the last
//! reading if it is recent (aged by the time since it was taken), so that past saturation the
//! requests that come in meanwhile do not each ask the database, whose time is the sagas'.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

/// The age of the oldest order in flight when admission last read it (gauge, seconds).
pub const OLDEST_PENDING: &str = "order_oldest_pending_seconds";
/// New orders refused with `OVERLOADED` (counter), by the rule that refused them (`reason`:
/// `queue` or `writing`).
pub const REFUSED: &str = "order_admission_refused_total";
/// The `Retry-After` that refusals for the write bound give now (gauge, seconds).
pub const RETRY_AFTER_SECONDS: &str = "order_admission_retry_after_seconds";

pub fn describe() {
    metrics::describe_gauge!(
        OLDEST_PENDING,
        metrics::Unit::Seconds,
        "Age of the oldest order in flight, as admission last read it"
    );
    metrics::describe_counter!(REFUSED, "New orders refused with 503 OVERLOADED");
    metrics::describe_gauge!(
        RETRY_AFTER_SECONDS,
        metrics::Unit::Seconds,
        "Retry-After of the refusals for the write bound now"
    );
    // Exported from the start, so that a rate over it is defined before the first refusal.
    for reason in ["queue", "writing"] {
        metrics::counter!(REFUSED, "reason" => reason).increment(0);
    }
    metrics::gauge!(OLDEST_PENDING).set(0.0);
    metrics::gauge!(RETRY_AFTER_SECONDS).set(Admission::RETRY_AFTER as f64);
}

/// How admission is set (`ORDER_ADMISSION_MAX_AGE_MS`, `ORDER_ADMISSION_STUCK_MS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// A new order is refused while [`Admission::SLACK`] orders that wait their turn are older
    /// than this. Zero: every
    /// order is accepted.
    pub max_age: Duration,
    /// Orders pending longer than this are stuck, not queued, and do not count.
    pub stuck_after: Duration,
    /// A new order is refused while this many are being written already (zero: no bound).
    pub max_writing: usize,
    /// The longest `Retry-After` of a refusal for the write bound, in seconds (1: always 1).
    pub retry_after_max: u64,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            max_age: Duration::from_millis(1000),
            stuck_after: Duration::from_secs(30),
            max_writing: 64,
            retry_after_max: 5,
        }
    }
}

/// Why an order was not admitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Overloaded {
    /// [`Admission::SLACK`] orders in flight are at least this old.
    Queue { oldest: Duration },
    /// This many orders are being written already.
    Writing { writing: usize },
}

impl Overloaded {
    /// The rule that refused, as the `reason` label of [`REFUSED`].
    pub fn reason(&self) -> &'static str {
        match self {
            Overloaded::Queue { .. } => "queue",
            Overloaded::Writing { .. } => "writing",
        }
    }
}

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Overloaded::Queue { oldest } => write!(
                f,
                "too many orders in flight ({} of them waiting for {} ms or more); try again later",
                Admission::SLACK,
                oldest.as_millis()
            ),
            Overloaded::Writing { writing } => write!(
                f,
                "{writing} orders are being written already; try again later"
            ),
        }
    }
}

struct Reading {
    at: Instant,
    /// The age of the [`Admission::SLACK`]-th oldest order that waits its turn when it was read
    /// (zero: fewer wait).
    queued: Duration,
}

/// Orders admitted and refused for the write bound since `started`, the `Retry-After` those
/// refusals give meanwhile, and the clients refused in earlier windows that were asked to wait
/// until a time not yet past.
struct Window {
    started: Instant,
    admitted: u64,
    refused: u64,
    retry_after: u64,
    /// (until, clients): the clients each earlier window refused, and when their wait ends.
    away: std::collections::VecDeque<(Instant, u64)>,
}

pub struct Admission {
    settings: AdmissionSettings,
    pool: PgPool,
    last: Mutex<Option<Reading>>,
    window: Mutex<Window>,
    /// Held by the one request that takes a new reading.
    reading: tokio::sync::Mutex<()>,
    /// Readings taken.
    readings: std::sync::atomic::AtomicU64,
}

impl Admission {
    /// How long a reading of the orders in flight is used.
    pub const REFRESH: Duration = Duration::from_millis(20);
    /// How old a reading may be to stand while another request takes a new one.
    pub const STALE: Duration = Duration::from_millis(500);
    /// The `Retry-After` of a refusal, in seconds.
    pub const RETRY_AFTER: u64 = 1;
    /// How many orders in flight must be past the bound for a new one to be refused.
    pub const SLACK: i64 = 20;
    /// How long the counts that set the `Retry-After` of the write bound's refusals are taken over.
    pub const WINDOW: Duration = Duration::from_secs(1);
    /// The share of the orders admitted that the write bound's refusals are paced to stay under.
    pub const REFUSED_SHARE: f64 = 0.1;

    pub fn new(settings: AdmissionSettings, pool: PgPool) -> Admission {
        Admission {
            settings,
            pool,
            last: Mutex::new(None),
            window: Mutex::new(Window {
                started: Instant::now(),
                admitted: 0,
                refused: 0,
                retry_after: Self::RETRY_AFTER,
                away: std::collections::VecDeque::new(),
            }),
            reading: tokio::sync::Mutex::new(()),
            readings: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times the orders in flight were read (one question to the database each).
    pub fn readings(&self) -> u64 {
        self.readings.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a new order may be accepted now, while `writing` orders are being written.
    pub async fn admit(&self, writing: usize) -> Result<(), Overloaded> {
        let decision = self.decide(writing).await;
        self.count(&decision);
        decision
    }

    /// The `Retry-After` of a refusal, in seconds.
    pub fn retry_after(&self, overloaded: &Overloaded) -> u64 {
        match overloaded {
            Overloaded::Queue { .. } => Self::RETRY_AFTER,
            Overloaded::Writing { .. } => self.window().retry_after,
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an answer of the write bound's; past [`Self::WINDOW`], sets the `Retry-After` of
    /// its next refusals from the counts, and starts counting again.
    fn count(&self, decision: &Result<(), Overloaded>) {
        let mut window = self.window();
        match decision {
            Ok(()) => window.admitted += 1,
            Err(Overloaded::Writing { .. }) => window.refused += 1,
            Err(Overloaded::Queue { .. }) => {}
        }
        let now = Instant::now();
        let elapsed = now.duration_since(window.started);
        if elapsed >= Self::WINDOW {
            let Window {
                admitted,
                refused,
                retry_after,
                ref mut away,
                ..
            } = *window;
            if refused > 0 {
                away.push_back((now + Duration::from_secs(retry_after), refused));
            }
            away.retain(|&(until, _)| until > now);
            let waiting: u64 = away.iter().map(|&(_, clients)| clients).sum();
            let next = pace(
                admitted as f64 / elapsed.as_secs_f64(),
                waiting,
                self.settings.retry_after_max,
            );
            if next != retry_after {
                metrics::gauge!(RETRY_AFTER_SECONDS).set(next as f64);
            }
            window.started = now;
            window.admitted = 0;
            window.refused = 0;
            window.retry_after = next;
        }
    }

    async fn decide(&self, writing: usize) -> Result<(), Overloaded> {
        if self.settings.max_writing > 0 && writing >= self.settings.max_writing {
            return Err(Overloaded::Writing { writing });
        }
        if self.settings.max_age.is_zero() {
            return Ok(());
        }
        let queued = match self.cached(Self::REFRESH) {
            Some(queued) => queued,
            None => match self.reading.try_lock() {
                Ok(_reading) => self.read_or_admit().await,
                // Another request is taking a new reading: a recent one stands until it is back;
                // with none recent (the first orders, or the first after a pause), wait for the
                // one being taken. If it failed, the intake will say why.
                Err(_) => match self.cached(Self::STALE) {
                    Some(queued) => queued,
                    None => {
                        let _reading = self.reading.lock().await;
                        self.cached(Self::STALE).unwrap_or(Duration::ZERO)
                    }
                },
            },
        };
        decide(&self.settings, queued)
    }

    /// The last reading, aged by the time since it was taken, if it is younger than `fresh`.
    fn cached(&self, fresh: Duration) -> Option<Duration> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.as_ref()
            .filter(|r| r.at.elapsed() < fresh)
            .map(|r| match r.queued {
                Duration::ZERO => Duration::ZERO,
                queued => queued + r.at.elapsed(),
            })
    }

    async fn read_or_admit(&self) -> Duration {
        // The database is away: the intake will say so, with its own 503.
        self.read().await.unwrap_or(Duration::ZERO)
    }

    /// Reads the age of the oldest order in flight (for the gauge) and of the
    /// [`Self::SLACK`]-th oldest of those that wait their turn (for the rule).
    async fn read(&self) -> Result<Duration, sqlx::Error> {
        let at = Instant::now();
        self.readings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cutoff = uuid_at(std::time::SystemTime::now() - self.settings.stuck_after);
        // The oldest pending order (for the gauge), held or not; the SLACK-th oldest placed after
        // the newest confirmed one (for the rule).
        let (oldest, queued): (Option<Uuid>, Option<Uuid>) = sqlx::query_as(
            "SELECT (SELECT order_id FROM orders WHERE status = 'PENDING' AND order_id > $1 \
                     ORDER BY order_id LIMIT 1), \
                    (SELECT order_id FROM orders WHERE status = 'PENDING' AND order_id > \
                       GREATEST($1, (SELECT order_id FROM orders \
                                     WHERE status = 'CONFIRMED' AND order_id > $1 \
                                     ORDER BY order_id DESC LIMIT 1)) \
                     ORDER BY order_id OFFSET $2 - 1 LIMIT 1)",
        )
        .bind(cutoff)
        .bind(Self::SLACK)
        .fetch_one(&self.pool)
        .await?;
        // (A failed read admits, see `admit`; the intake's own statements say why.)
        metrics::gauge!(OLDEST_PENDING).set(oldest.map_or(0.0, |id| age_of(id).as_secs_f64()));
        let queued = queued.map_or(Duration::ZERO, age_of);
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Reading { at, queued });
        Ok(queued)
    }
}

/// The rule: refuse while the [`Admission::SLACK`]-th oldest order that waits its turn is older
/// than the bound (`queued`: its age).
fn decide(settings: &AdmissionSettings, queued: Duration) -> Result<(), Overloaded> {
    if queued > settings.max_age {
        Err(Overloaded::Queue { oldest: queued })
    } else {
        Ok(())
    }
}

/// The `Retry-After` of the write bound's next refusals, from the orders admitted per second in
/// the last window and the clients refused that are still asked to wait.
///
/// Each of the `waiting` clients comes back once per `Retry-After`: spreading their returns over
/// `waiting / (REFUSED_SHARE × admitted)` seconds keeps the refusals under that share of the
/// orders admitted. At least 1 s, at most `max`; with no client waiting, 1 s again.
fn pace(admitted: f64, waiting: u64, max: u64) -> u64 {
    let spread = waiting as f64 / (Admission::REFUSED_SHARE * admitted.max(1.0));
    (spread.ceil() as u64).clamp(Admission::RETRY_AFTER, max.max(Admission::RETRY_AFTER))
}

/// The smallest UUIDv7 of time `at`: every order id placed at or after `at` sorts above it.
fn uuid_at(at: std::time::SystemTime) -> Uuid {
    let millis = at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

/// How long ago a UUIDv7 was made.
fn age_of(id: Uuid) -> Duration {
    let Some(ts) = id.get_timestamp() else {
        return Duration::ZERO;
    };
    let (secs, nanos) = ts.to_unix();
    let made = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    std::time::SystemTime::now()
        .duration_since(made)
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_refused_only_while_the_orders_in_flight_are_past_the_bound() {
        let settings = AdmissionSettings::default();
        assert!(decide(&settings, Duration::ZERO).is_ok());
        assert!(decide(&settings, Duration::from_millis(999)).is_ok());
        assert_eq!(
            decide(&settings, Duration::from_millis(1200)),
            Err(Overloaded::Queue {
                oldest: Duration::from_millis(1200)
            })
        );
    }

    #[test]
    fn refusals_for_the_write_bound_are_spread_over_more_seconds_the_more_clients_wait() {
        // No client waiting, or few: 1 s.
        assert_eq!(pace(1000.0, 0, 5), 1);
        assert_eq!(pace(1000.0, 100, 5), 1);
        // 448 clients waiting against 1,400 admitted a second: spread over 4 s, so that about
        // 100 come back each second, 7% of the orders admitted.
        assert_eq!(pace(1400.0, 448, 5), 4);
        // The longest is the setting's; nothing admitted is as one admitted a second.
        assert_eq!(pace(980.0, 2000, 5), 5);
        assert_eq!(pace(0.0, 20, 5), 5);
        assert_eq!(pace(1400.0, 448, 3), 3);
        // A setting of 1 (or 0) keeps every refusal at 1 s.
        assert_eq!(pace(1400.0, 448, 1), 1);
        assert_eq!(pace(1400.0, 448, 0), 1);
    }

    #[test]
    fn uuid_bounds_order_like_the_ids_of_their_time() {
        let now = std::time::SystemTime::now();
        let bound = uuid_at(now - Duration::from_secs(1));
        let later = Uuid::now_v7();
        assert!(later > bound);
        assert!(uuid_at(now - Duration::from_secs(2)) < bound);
        let age = age_of(later);
        assert!(age < Duration::from_secs(1), "{age:?}");
        assert!(age_of(bound) >= Duration::from_millis(999));
    }
}
