//! The whole system in one test process: the four services on port 0, each with a fresh
//! database, against a nats-server of the test's own; and helpers that look only through the
//! public HTTP APIs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use messaging::Shutdown;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use service_kit::CommonSettings;
use test_support::{NatsServer, TestDb, eventually_ok};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);
pub const ADMIN: &str = "test-admin-token";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Svc {
    Order,
    Payment,
    Inventory,
    Saga,
}

pub const ALL: [Svc; 4] = [Svc::Order, Svc::Payment, Svc::Inventory, Svc::Saga];

#[derive(Clone, Debug)]
pub struct Options {
    pub success_rate: f64,
    pub seed: u64,
    pub saga_timeout: Duration,
    pub auto_provision: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            success_rate: 1.0,
            seed: 7,
            saga_timeout: Duration::from_secs(30),
            auto_provision: 0,
        }
    }
}

struct Running {
    port: u16,
    stop: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

pub struct Stack {
    pub nats: NatsServer,
    dbs: HashMap<Svc, TestDb>,
    running: HashMap<Svc, Running>,
    ports: HashMap<Svc, u16>,
    pub options: Options,
    pub http: reqwest::Client,
}

impl Stack {
    pub async fn start(options: Options) -> Stack {
        let nats = NatsServer::start().await.expect("nats-server");
        let mut dbs = HashMap::new();
        for svc in ALL {
            dbs.insert(svc, TestDb::create().await.expect("database"));
        }
        let mut stack = Stack {
            nats,
            dbs,
            running: HashMap::new(),
            ports: HashMap::new(),
            options,
            http: reqwest::Client::new(),
        };
        for svc in ALL {
            stack.start_service(svc).await;
        }
        stack
    }

    fn common(&self, name: &'static str, svc: Svc) -> CommonSettings {
        let mut common = CommonSettings::for_test(name, &self.dbs[&svc].url, &self.nats.url());
        // A restarted service comes back on its old port, as it would in production.
        if let Some(port) = self.ports.get(&svc) {
            common.http_addr.set_port(*port);
        }
        common
    }

    pub async fn start_service(&mut self, svc: Svc) {
        let stop = Shutdown::new();
        let o = self.options.clone();
        let service = match svc {
            Svc::Order => {
                order_service::build(
                    order_service::Settings {
                        common: self.common(order_service::SERVICE, svc),
                    },
                    stop.clone(),
                )
                .await
            }
            Svc::Payment => {
                payment_service::build(
                    payment_service::Settings {
                        common: self.common(payment_service::SERVICE, svc),
                        simulation: payment_service::Simulation {
                            success_rate: payment_service::gateway::SuccessRate::new(
                                o.success_rate,
                            )
                            .expect("rate"),
                            seed: o.seed,
                            latency: Duration::ZERO,
                        },
                    },
                    stop.clone(),
                )
                .await
            }
            Svc::Inventory => {
                inventory_service::build(
                    inventory_service::Settings {
                        common: self.common(inventory_service::SERVICE, svc),
                        auto_provision: o.auto_provision,
                    },
                    stop.clone(),
                )
                .await
            }
            Svc::Saga => {
                saga_coordinator::build(
                    saga_coordinator::Settings {
                        common: self.common(saga_coordinator::SERVICE, svc),
                        timeouts: saga_coordinator::Timeouts {
                            saga: o.saga_timeout,
                            compensation: Duration::from_secs(300),
                        },
                    },
                    stop.clone(),
                )
                .await
            }
        }
        .unwrap_or_else(|e| panic!("starting {svc:?}: {e:#}"));
        let port = service.port();
        self.ports.insert(svc, port);
        let task = tokio::spawn(service.run_until_stopped());
        self.running.insert(svc, Running { port, stop, task });
    }

    /// Stops a service as a deployment would (in-flight work finishes first).
    pub async fn stop_service(&mut self, svc: Svc) {
        if let Some(running) = self.running.remove(&svc) {
            running.stop.cancel();
            let _ = running.task.await;
        }
    }

    pub fn url(&self, svc: Svc, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[&svc])
    }

    pub async fn get(&self, svc: Svc, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(svc, path))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, svc: Svc, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(svc, path))
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn set_stock(&self, product: &str, on_hand: i64) {
        let response = self
            .http
            .put(self.url(Svc::Inventory, &format!("/inventory/{product}")))
            .bearer_auth(ADMIN)
            .json(&json!({ "onHand": on_hand }))
            .send()
            .await
            .expect("PUT stock");
        assert_eq!(
            response.status().as_u16(),
            200,
            "setting stock of {product}"
        );
    }

    /// Places an order; panics unless it is accepted.
    pub async fn order(&self, lines: &[(&str, u32, &str)]) -> Value {
        let items: Vec<Value> = lines
            .iter()
            .map(|(p, q, price)| json!({"productId": p, "quantity": q, "unitPrice": price.parse::<f64>().expect("price")}))
            .collect();
        let body = json!({"customerId": "c-e2e", "items": items, "currency": "EUR"});
        let (status, order) = self.post(Svc::Order, "/orders", &body).await;
        assert_eq!(status, 201, "order refused: {order}");
        order
    }

    /// Waits until the order has `status`, and returns it.
    pub async fn order_becomes(&self, order_id: &str, status: &str) -> Value {
        let path = format!("/orders/{order_id}");
        match eventually_ok(&format!("order {order_id} {status}"), WAIT, || async {
            let (_, order) = self.get(Svc::Order, &path).await;
            if order["status"] == status {
                Ok(order)
            } else {
                Err(order.to_string())
            }
        })
        .await
        {
            Ok(order) => order,
            Err(e) => panic!("{e}"),
        }
    }

    pub async fn saga_becomes(&self, saga_id: &str, status: &str) -> Value {
        let path = format!("/sagas/{saga_id}");
        match eventually_ok(&format!("saga {saga_id} {status}"), WAIT, || async {
            let (_, saga) = self.get(Svc::Saga, &path).await;
            if saga["status"] == status {
                Ok(saga)
            } else {
                Err(saga.to_string())
            }
        })
        .await
        {
            Ok(saga) => saga,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits until the invariants of the contract hold for these orders and products, where
    /// `stock_set` is what the admin set for each product.
    pub async fn invariants_hold(&self, orders: &[String], stock_set: &[(&str, i64)]) {
        if let Err(e) = eventually_ok("the invariants", WAIT, || {
            self.check_invariants(orders, stock_set)
        })
        .await
        {
            panic!("{e}");
        }
    }

    /// The invariants of SPEC section 5, through the public APIs only.
    pub async fn check_invariants(
        &self,
        orders: &[String],
        stock_set: &[(&str, i64)],
    ) -> Result<(), String> {
        let money = |v: &Value| Decimal::from_str(&v.to_string()).unwrap_or(Decimal::MIN);
        let mut charged = Decimal::ZERO;
        let mut confirmed_total = Decimal::ZERO;
        let mut committed: HashMap<String, i64> = HashMap::new();
        for id in orders {
            let (_, order) = self.get(Svc::Order, &format!("/orders/{id}")).await;
            let status = order["status"].as_str().unwrap_or("?").to_owned();
            let (pay_status, payment) = self
                .get(Svc::Payment, &format!("/payments?orderId={id}"))
                .await;
            let (res_status, reservation) = self
                .get(Svc::Inventory, &format!("/reservations/{id}"))
                .await;
            let (_, saga) = self
                .get(
                    Svc::Saga,
                    &format!("/sagas/{}", order["sagaId"].as_str().unwrap_or("")),
                )
                .await;
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
                }
                "CANCELLED" => {
                    if pay == "CONFIRMED"
                        || res == "RESERVED"
                        || res == "COMMITTED"
                        || saga_status != "COMPENSATED"
                    {
                        return Err(seen);
                    }
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
                charged += money(&payment["amount"]);
            }
            if res == "COMMITTED" {
                for item in reservation["items"].as_array().into_iter().flatten() {
                    *committed
                        .entry(item["productId"].as_str().unwrap_or("").to_owned())
                        .or_default() += item["quantity"].as_i64().unwrap_or(0);
                }
            }
        }
        if charged != confirmed_total {
            return Err(format!(
                "charges {charged} != confirmed order totals {confirmed_total}"
            ));
        }
        for (product, set) in stock_set {
            let (_, stock) = self
                .get(Svc::Inventory, &format!("/inventory/{product}"))
                .await;
            let on_hand = stock["onHand"].as_i64().unwrap_or(-1);
            let available = stock["available"].as_i64().unwrap_or(-1);
            let held = stock["reserved"].as_i64().unwrap_or(-1);
            let sold = committed.get(*product).copied().unwrap_or(0);
            if available < 0 || held != 0 || on_hand + sold != *set {
                return Err(format!("{product}: {stock}; committed {sold}, set {set}"));
            }
        }
        Ok(())
    }
}

/// The sagaId and orderId of an order response.
pub fn ids(order: &Value) -> (String, String) {
    (
        order["orderId"].as_str().expect("orderId").to_owned(),
        order["sagaId"].as_str().expect("sagaId").to_owned(),
    )
}

pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}
