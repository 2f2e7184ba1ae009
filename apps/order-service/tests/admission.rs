//! Admission's measure on a real database: orders that wait their turn past the bound refuse new
//! orders; orders overtaken by a younger confirmed one (held by a redelivery, not queued), orders
//! stuck past the saga deadline, and a younger cancelled one change nothing of that. Requests
//! that come in together share one reading.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use order_service::admission::{Admission, AdmissionSettings, Overloaded};
use uuid::Uuid;

/// A UUIDv7 order id made `age` ago.
fn id_aged(age: Duration) -> Uuid {
    let at = SystemTime::now() - age;
    let since = at.duration_since(UNIX_EPOCH).expect("after the epoch");
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        since.as_secs(),
        since.subsec_nanos(),
    ))
}

/// Stores `n` orders of `status` placed about `age` ago (1 ms apart, the oldest first).
async fn place(pool: &sqlx::PgPool, status: &str, age: Duration, n: u32) {
    for i in 0..n {
        let id = id_aged(age - Duration::from_millis(u64::from(i)));
        sqlx::query(
            "INSERT INTO orders (order_id, saga_id, customer_id, items, total_amount, currency, \
             status, request) VALUES ($1, $2, 'c-admission', '[]', 1, 'EUR', $3, '{}')",
        )
        .bind(id)
        .bind(Uuid::now_v7())
        .bind(status)
        .execute(pool)
        .await
        .expect("an order");
    }
}

fn settings() -> AdmissionSettings {
    AdmissionSettings {
        max_age: Duration::from_millis(1000),
        stuck_after: Duration::from_secs(10),
        max_writing: 0,
        retry_after_max: 5,
    }
}

/// Admission's answer now, from a fresh reading.
async fn admits(pool: &sqlx::PgPool) -> Result<(), Overloaded> {
    Admission::new(settings(), pool.clone()).admit(0).await
}

/// `n` requests that come in together: their answers.
async fn together(admission: &Arc<Admission>, n: usize) -> Vec<Result<(), Overloaded>> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..n {
        let admission = admission.clone();
        requests.spawn(async move { admission.admit(0).await });
    }
    requests.join_all().await
}

/// Every one of 50 answers is a refusal for the queue.
fn all_refused(answers: Vec<Result<(), Overloaded>>) {
    assert_eq!(answers.len(), 50);
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(Overloaded::Queue { .. }))),
        "{answers:?}"
    );
}

#[tokio::test]
async fn requests_that_come_in_together_share_one_reading() -> anyhow::Result<()> {
    let db = test_support::TestDb::create().await?;
    let pool = db.pool(4).await?;
    messaging::db::migrate(&pool, &[order_service::MIGRATIONS]).await?;
    place(&pool, "PENDING", Duration::from_secs(3), 25).await;
    let admission = Arc::new(Admission::new(settings(), pool.clone()));

    // The first requests wait for the one reading being taken, and all are refused on it.
    all_refused(together(&admission, 50).await);
    assert_eq!(admission.readings(), 1);

    // Once it is older than the refresh, one request takes the next while the others decide on
    // the last one, still refusing.
    tokio::time::sleep(Admission::REFRESH).await;
    all_refused(together(&admission, 50).await);
    assert_eq!(admission.readings(), 2);
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn only_orders_that_wait_their_turn_past_the_bound_refuse_new_ones() -> anyhow::Result<()> {
    let db = test_support::TestDb::create().await?;
    let pool = db.pool(2).await?;
    messaging::db::migrate(&pool, &[order_service::MIGRATIONS]).await?;
    let slack = u32::try_from(Admission::SLACK)?;

    // Stuck past the saga deadline: not a queue.
    place(&pool, "PENDING", Duration::from_secs(20), slack + 5).await;
    assert_eq!(admits(&pool).await, Ok(()));

    // Fewer than the slack past the bound: not a queue.
    place(&pool, "PENDING", Duration::from_secs(3), slack - 1).await;
    assert_eq!(admits(&pool).await, Ok(()));

    // As many as the slack past the bound, nothing younger ended: a queue.
    place(&pool, "PENDING", Duration::from_millis(2900), 1).await;
    match admits(&pool).await {
        Err(Overloaded::Queue { oldest }) => {
            assert!(oldest >= Duration::from_millis(2800), "{oldest:?}")
        }
        other => panic!("not refused: {other:?}"),
    }

    // A younger order cancelled (a sold-out product ends at its first refusal): still a queue.
    place(&pool, "CANCELLED", Duration::from_millis(1500), 1).await;
    assert!(matches!(admits(&pool).await, Err(Overloaded::Queue { .. })));

    // A younger order confirmed went all the way through: the older ones are held, not queued.
    place(&pool, "CONFIRMED", Duration::from_millis(1500), 1).await;
    assert_eq!(admits(&pool).await, Ok(()));

    // Orders behind that one, waiting past the bound: a queue again.
    place(&pool, "PENDING", Duration::from_millis(1400), slack).await;
    match admits(&pool).await {
        Err(Overloaded::Queue { oldest }) => {
            assert!(
                oldest >= Duration::from_millis(1000) && oldest < Duration::from_millis(1500),
                "{oldest:?}"
            )
        }
        other => panic!("not refused: {other:?}"),
    }
    pool.close().await;
    Ok(())
}

#[tokio::test]
async fn the_more_clients_the_write_bound_refuses_the_longer_they_are_asked_to_wait()
-> anyhow::Result<()> {
    let db = test_support::TestDb::create().await?;
    let pool = db.pool(2).await?;
    messaging::db::migrate(&pool, &[order_service::MIGRATIONS]).await?;
    let admission = Admission::new(
        AdmissionSettings {
            max_writing: 4,
            retry_after_max: 5,
            ..settings()
        },
        pool.clone(),
    );
    let writing = Overloaded::Writing { writing: 4 };
    let queue = Overloaded::Queue {
        oldest: Duration::from_secs(2),
    };
    assert_eq!(admission.retry_after(&writing), Admission::RETRY_AFTER);

    // Orders admitted, none refused: refusals would still be asked to come back after 1 s.
    let deadline = tokio::time::Instant::now() + 2 * Admission::WINDOW;
    while tokio::time::Instant::now() < deadline {
        assert_eq!(admission.admit(0).await, Ok(()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(admission.retry_after(&writing), 1);

    // 40 refused for each one admitted: the clients waiting are far more than a tenth of the
    // orders admitted a second, so the Retry-After grows, up to the setting and not past it.
    let deadline = tokio::time::Instant::now() + 10 * Admission::WINDOW;
    let mut seen = vec![admission.retry_after(&writing)];
    while seen.last() != Some(&5) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Retry-After went {seen:?} in 10 windows"
        );
        assert_eq!(admission.admit(0).await, Ok(()));
        for _ in 0..40 {
            assert_eq!(admission.admit(4).await, Err(writing));
        }
        let now = admission.retry_after(&writing);
        assert!(now <= 5, "{now} s past the setting");
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A refusal for the queue is not the clients' doing: it stays at 1 s.
    assert_eq!(admission.retry_after(&queue), Admission::RETRY_AFTER);

    // The refusals stop: once the clients refused have had their wait, 1 s again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5) + 3 * Admission::WINDOW;
    while admission.retry_after(&writing) != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Retry-After stayed at {} s with no refusals",
            admission.retry_after(&writing)
        );
        assert_eq!(admission.admit(0).await, Ok(()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool.close().await;
    Ok(())
}
