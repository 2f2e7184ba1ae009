//! A client of the four services' public HTTP APIs, and the invariants of the contract
//! (SPEC section 5) checked through them. Tests, the fault-injection harness and the load
//! generator all judge the system with this one check.

use std::collections::HashMap;
use std::str::FromStr;

use futures_util::StreamExt as _;
use rust_decimal::Decimal;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Svc {
    Order,
    Payment,
    Inventory,
    Saga,
}

pub const ALL: [Svc; 4] = [Svc::Order, Svc::Payment, Svc::Inventory, Svc::Saga];

/// Where each service answers, e.g. `http://127.0.0.1:3004`.
#[derive(Clone, Debug)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: HashMap<Svc, String>,
}

/// What the invariant check found, when it holds.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub confirmed: usize,
    pub cancelled: usize,
    pub charged: Decimal,
}

/// Orders the invariant check reads at the same time.
const CHECK_CONCURRENCY: usize = 32;

/// What the services say of one order.
struct Order<'a> {
    id: &'a str,
    order: Value,
    payment: (u16, Value),
    reservation: (u16, Value),
    saga: Value,
}

impl Client {
    /// The order, then its payment, reservation and saga together.
    async fn read_order<'a>(&self, id: &'a String) -> Result<Order<'a>, String> {
        let (_, order) = self.get(Svc::Order, &format!("/orders/{id}")).await?;
        let saga_path = format!("/sagas/{}", order["sagaId"].as_str().unwrap_or(""));
        let payment_path = format!("/payments?orderId={id}");
        let reservation_path = format!("/reservations/{id}");
        let (payment, reservation, saga) = futures_util::try_join!(
            self.get(Svc::Payment, &payment_path),
            self.get(Svc::Inventory, &reservation_path),
            self.get(Svc::Saga, &saga_path),
        )?;
        Ok(Order {
            id,
            order,
            payment,
            reservation,
            saga: saga.1,
        })
    }

    pub fn new(base: HashMap<Svc, String>) -> Client {
        Client {
            http: reqwest::Client::new(),
            base,
        }
    }

    pub fn url(&self, svc: Svc, path: &str) -> String {
        format!("{}{path}", self.base[&svc])
    }

    /// GET: the status and the JSON body (`Null` when there is none).
    pub async fn get(&self, svc: Svc, path: &str) -> Result<(u16, Value), String> {
        let response = self
            .http
            .get(self.url(svc, path))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// The invariants of the contract for these orders and products (`stock_set`: what the admin
    /// set for each product), through the public APIs only:
    /// 1. every order is `CONFIRMED` or `CANCELLED`, and its saga `COMPLETED` or `COMPENSATED`;
    /// 2. `CONFIRMED` ⇔ payment `CONFIRMED` and reservation `COMMITTED`; `CANCELLED` ⇒ nothing
    ///    charged and nothing held;
    /// 3. no product below zero available, nothing left reserved, and on hand plus committed
    ///    equals what was set;
    /// 4. confirmed charges equal the totals of confirmed orders, each charge its order's total.
    pub async fn check_invariants(
        &self,
        orders: &[String],
        stock_set: &[(String, i64)],
    ) -> Result<Tally, String> {
        let money = |v: &Value| Decimal::from_str(&v.to_string()).unwrap_or(Decimal::MIN);
        let mut tally = Tally::default();
        let mut confirmed_total = Decimal::ZERO;
        let mut committed: HashMap<String, i64> = HashMap::new();
        // Several orders read at once (a large run has hundreds of thousands), judged in order.
        let mut read = futures_util::stream::iter(orders)
            .map(|id| self.read_order(id))
            .buffered(CHECK_CONCURRENCY);
        while let Some(found) = read.next().await {
            let Order {
                id,
                order,
                payment: (pay_status, payment),
                reservation: (res_status, reservation),
                saga,
            } = found?;
            let status = order["status"].as_str().unwrap_or("?").to_owned();
            let pay = if pay_status == 404 {
                "NONE"
            } else {
                payment["status"].as_str().unwrap_or("?")
            };
            let res = if res_status == 404 {
                "NONE"
            } else {
                reservation["status"].as_str().unwrap_or("?")
            };
            let saga_status = saga["status"].as_str().unwrap_or("?");
            let seen = format!(
                "order {id}: {status}, payment {pay}, reservation {res}, saga {saga_status}"
            );
            match status.as_str() {
                "CONFIRMED" => {
                    if pay != "CONFIRMED" || res != "COMMITTED" || saga_status != "COMPLETED" {
                        return Err(seen);
                    }
                    confirmed_total += money(&order["totalAmount"]);
                    tally.confirmed += 1;
                }
                "CANCELLED" => {
                    if pay == "CONFIRMED"
                        || res == "RESERVED"
                        || res == "COMMITTED"
                        || saga_status != "COMPENSATED"
                    {
                        return Err(seen);
                    }
                    tally.cancelled += 1;
                }
                _ => return Err(format!("not terminal: {seen}")),
            }
            if pay == "CONFIRMED" {
                if money(&payment["amount"]) != money(&order["totalAmount"]) {
                    return Err(format!(
                        "{seen}: charged {} for a total of {}",
                        payment["amount"], order["totalAmount"]
                    ));
                }
                tally.charged += money(&payment["amount"]);
            }
            if res == "COMMITTED" {
                for item in reservation["items"].as_array().into_iter().flatten() {
                    *committed
                        .entry(item["productId"].as_str().unwrap_or("").to_owned())
                        .or_default() += item["quantity"].as_i64().unwrap_or(0);
                }
            }
        }
        drop(read);
        if tally.charged != confirmed_total {
            return Err(format!(
                "charges {} != confirmed order totals {confirmed_total}",
                tally.charged
            ));
        }
        for (product, set) in stock_set {
            let (_, stock) = self
                .get(Svc::Inventory, &format!("/inventory/{product}"))
                .await?;
            let on_hand = stock["onHand"].as_i64().unwrap_or(-1);
            let available = stock["available"].as_i64().unwrap_or(-1);
            let held = stock["reserved"].as_i64().unwrap_or(-1);
            let sold = committed.get(product).copied().unwrap_or(0);
            if available < 0 || held != 0 || on_hand + sold != *set {
                return Err(format!("{product}: {stock}; committed {sold}, set {set}"));
            }
        }
        Ok(tally)
    }
}
