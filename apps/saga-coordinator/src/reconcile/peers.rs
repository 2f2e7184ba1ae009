//! The other services as the reconciliation reads them: through their public HTTP APIs only,
//! a page or a hundred orders per call.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::compare::{OrderRecord, PaymentRecord, ReservationRecord};

/// Where the other services answer (`ORDER_SERVICE_URL`, `PAYMENT_SERVICE_URL`,
/// `INVENTORY_SERVICE_URL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUrls {
    pub order: String,
    pub payment: String,
    pub inventory: String,
}

#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
    urls: PeerUrls,
}

/// A page of a list, as every service answers one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<Uuid>,
    /// Where the next page of a `sort=updated` listing starts. An order-service of the previous
    /// release ignores `sort` and pages newest first with `nextCursor` alone.
    #[serde(default)]
    next_after: Option<String>,
}

/// The orders a lookup by ids returns.
#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// An order of a list, with when it last changed (which orders one run compared, when a list
/// was cut).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    #[serde(flatten)]
    record: OrderRecord,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

impl Listed {
    /// Whether the order lies within the bounds asked for (`createdBefore`, and `updatedAfter`
    /// to `updatedBefore`, both excluded, as order-service applies them). An order-service of
    /// the previous release ignores these parameters and lists every order in the status,
    /// newest first: without this check, orders still on their way would be taken for stuck
    /// or for cancelled in the window, and their events re-sent for nothing.
    fn within(
        &self,
        created_before: Option<DateTime<Utc>>,
        updated: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> bool {
        let created = match (created_before, self.created_at) {
            (Some(before), Some(at)) => at < before,
            _ => true,
        };
        let changed = match (updated, self.updated_at) {
            (Some((after, before)), Some(at)) => after < at && at < before,
            _ => true,
        };
        created && changed
    }
}

/// Orders read from one list, up to the most asked for.
pub struct Listing {
    pub orders: Vec<OrderRecord>,
    /// The list went on past the most asked for.
    cut: bool,
    /// When the first and the last order read last changed, when the pages came oldest change
    /// first (an order-service that knows `sort=updated`).
    changes: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Listing {
    /// How far a window of changes that ends at `end` was read: to its end, or, for a list cut
    /// oldest change first, to the last change read. A list cut newest first (an order-service
    /// of the previous release), or one whose orders all changed at one instant (going on from
    /// it would read the same orders again), cannot be gone on with: the rest of its window is
    /// left, with a warning.
    pub fn reached(&self, end: DateTime<Utc>) -> DateTime<Utc> {
        match (self.cut, self.changes) {
            (false, _) => end,
            (true, Some((first, last))) if last > first => last,
            (true, _) => {
                tracing::warn!(
                    listed = self.orders.len(),
                    "a window of cancelled orders holds more than a run compares and cannot be \
                     gone on with; the rest of it is not compared"
                );
                end
            }
        }
    }
}

/// Orders per page and per lookup.
pub const BATCH: usize = 100;

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Peers {
    pub fn new(urls: PeerUrls) -> Peers {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Peers { http, urls }
    }

    async fn get<T: DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {url}: {status}");
        }
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: reading the answer"))
    }

    /// Orders in `status` placed before `created_before`, or (with `updated`) that last changed
    /// in that window, oldest change first; every page, up to `most` orders.
    pub async fn orders(
        &self,
        status: &str,
        created_before: Option<DateTime<Utc>>,
        updated: Option<(DateTime<Utc>, DateTime<Utc>)>,
        most: usize,
    ) -> anyhow::Result<Listing> {
        let mut query = format!("{}/orders?status={status}&limit={BATCH}", self.urls.order);
        if let Some(at) = created_before {
            query.push_str(&format!("&createdBefore={}", rfc3339(at)));
        }
        if let Some((after, before)) = updated {
            // Oldest change first, so that each page reads a page however many orders
            // changed in the window, and a window cut at `most` can be gone on with.
            query.push_str(&format!(
                "&updatedAfter={}&updatedBefore={}&sort=updated",
                rfc3339(after),
                rfc3339(before)
            ));
        }
        let query = query.replace('+', "%2B");
        let mut listed: Vec<Listed> = Vec::new();
        let mut next = String::new();
        let mut by_change = true;
        let cut = loop {
            let page: Page<Listed> = self.get(&format!("{query}{next}")).await?;
            let more = page.next_after.is_some() || page.next_cursor.is_some();
            if page.next_after.is_none() && page.next_cursor.is_some() {
                // An order-service of the previous release: newest first.
                by_change = false;
            }
            listed.extend(page.items);
            if listed.len() >= most {
                let cut = more || listed.len() > most;
                listed.truncate(most);
                break cut;
            }
            next = match (page.next_after, page.next_cursor) {
                (Some(after), _) => format!("&after={}", after.replace('+', "%2B")),
                (None, Some(cursor)) => format!("&cursor={cursor}"),
                (None, None) => break false,
            };
        };
        // Only an order-service of the previous release lists orders outside the bounds; what
        // it listed still counts towards `most`, so that a run reads no more pages than before.
        listed.retain(|l| l.within(created_before, updated));
        let changes = match (listed.first(), listed.last()) {
            (Some(first), Some(last)) if by_change && updated.is_some() => {
                first.updated_at.zip(last.updated_at)
            }
            _ => None,
        };
        Ok(Listing {
            orders: listed.into_iter().map(|l| l.record).collect(),
            cut,
            changes,
        })
    }

    /// The payments of up to [`BATCH`] orders, by order.
    pub async fn payments(
        &self,
        order_ids: &[Uuid],
    ) -> anyhow::Result<HashMap<Uuid, PaymentRecord>> {
        if order_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let url = format!(
            "{}/payments/search?orderIds={}",
            self.urls.payment,
            join(order_ids)
        );
        let found: Items<PaymentRecord> = self.get(&url).await?;
        Ok(found.items.into_iter().map(|p| (p.order_id, p)).collect())
    }

    /// The reservations of up to [`BATCH`] orders, by order.
    pub async fn reservations(
        &self,
        order_ids: &[Uuid],
    ) -> anyhow::Result<HashMap<Uuid, ReservationRecord>> {
        if order_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let url = format!(
            "{}/reservations/search?orderIds={}",
            self.urls.inventory,
            join(order_ids)
        );
        let found: Items<ReservationRecord> = self.get(&url).await?;
        Ok(found.items.into_iter().map(|r| (r.order_id, r)).collect())
    }
}

fn join(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    fn listing(cut: bool, changes: Option<(DateTime<Utc>, DateTime<Utc>)>) -> Listing {
        Listing {
            orders: Vec::new(),
            cut,
            changes,
        }
    }

    fn listed(created: i64, updated: i64) -> Listed {
        let record: OrderRecord = serde_json::from_value(serde_json::json!({
            "orderId": Uuid::nil(),
            "sagaId": Uuid::nil(),
            "customerId": "c-1",
            "items": [{"productId": "p-1", "quantity": 1, "unitPrice": 1}],
            "totalAmount": 1,
            "currency": "EUR",
            "status": "PENDING",
            "createdAt": at(created),
            "updatedAt": at(updated),
        }))
        .expect("an order");
        Listed {
            record,
            created_at: Some(at(created)),
            updated_at: Some(at(updated)),
        }
    }

    #[test]
    fn a_listed_order_is_read_with_its_times() {
        let page: Page<Listed> = serde_json::from_value(serde_json::json!({
            "items": [{"createdAt": "2026-12-07T21:45:56.838214Z", "currency": "EUR",
                "customerId": "c-e2e", "items": [{"productId": "p-1", "quantity": 101,
                "totalPrice": 101, "unitPrice": 1}],
                "orderId": "01a25278-7966-7134-84bc-cd696cb7093a",
                "sagaId": "01a25278-7966-7134-84bc-cd6a62001d29", "status": "PENDING",
                "totalAmount": 101, "updatedAt": "2026-12-07T21:45:57.838214Z"}],
            "nextCursor": null
        }))
        .expect("a page");
        let listed = &page.items[0];
        let created: DateTime<Utc> = "2026-12-07T21:45:56.838214Z".parse().expect("a time");
        assert_eq!(listed.created_at, Some(created));
        assert!(listed.updated_at > listed.created_at);
        assert!(listed.within(Some(created + chrono::Duration::seconds(1)), None));
    }

    #[test]
    fn orders_outside_the_bounds_an_older_order_service_ignored_are_left_out() {
        // Placed at 10: stuck only if placed before the bound.
        assert!(listed(10, 10).within(Some(at(11)), None));
        assert!(!listed(10, 10).within(Some(at(10)), None));
        assert!(!listed(10, 10).within(Some(at(9)), None));
        // Changed at 10: in the window (after, before), both excluded.
        assert!(listed(1, 10).within(None, Some((at(9), at(11)))));
        assert!(!listed(1, 10).within(None, Some((at(10), at(11)))));
        assert!(!listed(1, 10).within(None, Some((at(9), at(10)))));
        assert!(!listed(1, 10).within(None, Some((at(11), at(20)))));
        // No bounds, or no times in the answer: kept.
        assert!(listed(1, 10).within(None, None));
        let mut untimed = listed(1, 10);
        untimed.created_at = None;
        untimed.updated_at = None;
        assert!(untimed.within(Some(at(0)), Some((at(20), at(30)))));
    }

    #[test]
    fn a_window_read_whole_reaches_its_end() {
        assert_eq!(listing(false, Some((at(1), at(5)))).reached(at(60)), at(60));
        assert_eq!(listing(false, None).reached(at(60)), at(60));
    }

    #[test]
    fn a_window_cut_oldest_change_first_reaches_its_last_change_read() {
        assert_eq!(listing(true, Some((at(1), at(5)))).reached(at(60)), at(5));
    }

    #[test]
    fn a_window_that_cannot_be_gone_on_with_reaches_its_end() {
        // Newest first (an order-service of the previous release): no changes known.
        assert_eq!(listing(true, None).reached(at(60)), at(60));
        // Every order read changed at one instant: going on from it would read them again.
        assert_eq!(listing(true, Some((at(5), at(5)))).reached(at(60)), at(60));
        // Newest first after all: the last read is older than the first.
        assert_eq!(listing(true, Some((at(5), at(1)))).reached(at(60)), at(60));
    }
}
