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

/// The most orders read from one list in one run: a run reads the rest next time.
const MAX_LISTED: usize = 10_000;
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
    /// in that window; every page, up to [`MAX_LISTED`] orders.
    pub async fn orders(
        &self,
        status: &str,
        created_before: Option<DateTime<Utc>>,
        updated: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> anyhow::Result<Vec<OrderRecord>> {
        let mut query = format!("{}/orders?status={status}&limit={BATCH}", self.urls.order);
        if let Some(at) = created_before {
            query.push_str(&format!("&createdBefore={}", rfc3339(at)));
        }
        if let Some((after, before)) = updated {
            // Oldest change first, so that each page reads a page however many orders
            // changed in the window.
            query.push_str(&format!(
                "&updatedAfter={}&updatedBefore={}&sort=updated",
                rfc3339(after),
                rfc3339(before)
            ));
        }
        let query = query.replace('+', "%2B");
        let mut orders = Vec::new();
        let mut next = String::new();
        loop {
            let page: Page<OrderRecord> = self.get(&format!("{query}{next}")).await?;
            orders.extend(page.items);
            next = match (page.next_after, page.next_cursor) {
                _ if orders.len() >= MAX_LISTED => return Ok(orders),
                (Some(after), _) => format!("&after={}", after.replace('+', "%2B")),
                (None, Some(cursor)) => format!("&cursor={cursor}"),
                (None, None) => return Ok(orders),
            };
        }
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
