//! The whole system in one test process: the four services on port 0, each with a fresh
//! database, against a nats-server of the test's own (or the servers a test gives, such as a
//! three-node cluster); and helpers that look only through the public HTTP APIs.

use std::collections::HashMap;
use std::time::Duration;

use messaging::Shutdown;
use serde_json::{Value, json};
use service_kit::CommonSettings;
use service_kit::startup::Tasks;
use test_support::{NatsServer, TestDb, eventually_ok};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(60);
pub const ADMIN: &str = "test-admin-token";

pub use saga_client::{ALL, Svc};

#[derive(Clone, Debug)]
pub struct Options {
    pub success_rate: f64,
    pub seed: u64,
    pub saga_timeout: Duration,
    pub compensation_timeout: Duration,
    pub auto_provision: i64,
    /// `None`: no admin token configured, admin calls answer 403.
    pub admin_token: Option<&'static str>,
    /// NATS servers to use (comma-separated, like `NATS_URL`) instead of a private nats-server.
    pub nats_url: Option<String>,
    /// Replicas of every stream the services provision (`NATS_STREAM_REPLICAS`).
    pub stream_replicas: usize,
    /// order-service refuses new orders while the oldest in flight is older than this; zero
    /// (the tests' default): it takes every order.
    pub admission_max_age: Duration,
    /// The reconciliation leaves records younger than this alone.
    pub reconcile_grace: Duration,
    /// The most orders of one list a reconciliation run compares.
    pub reconcile_max_orders: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            success_rate: 1.0,
            seed: 7,
            saga_timeout: Duration::from_secs(30),
            compensation_timeout: Duration::from_secs(300),
            auto_provision: 0,
            admin_token: Some(ADMIN),
            nats_url: None,
            stream_replicas: 1,
            admission_max_age: Duration::ZERO,
            reconcile_grace: Duration::from_secs(1),
            reconcile_max_orders: 10_000,
        }
    }
}

/// The stack's NATS: a nats-server of its own, or the servers the test gave.
pub enum StackNats {
    Own(Box<NatsServer>),
    Given(String),
}

impl StackNats {
    pub fn url(&self) -> String {
        match self {
            StackNats::Own(server) => server.url(),
            StackNats::Given(url) => url.clone(),
        }
    }
}

/// A second instance of a service, beside the stack's own.
pub struct Instance {
    stop: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    /// Stops it as a deployment would.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

struct Running {
    stop: Shutdown,
    tasks: Tasks,
    task: JoinHandle<anyhow::Result<()>>,
}

pub struct Stack {
    pub nats: StackNats,
    dbs: HashMap<Svc, TestDb>,
    running: HashMap<Svc, Running>,
    ports: HashMap<Svc, u16>,
    pub options: Options,
    pub http: reqwest::Client,
}

impl Stack {
    pub async fn start(options: Options) -> Stack {
        let nats = match &options.nats_url {
            Some(url) => StackNats::Given(url.clone()),
            None => StackNats::Own(Box::new(NatsServer::start().await.expect("nats-server"))),
        };
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
        common.admin_token = self.options.admin_token.map(Into::into);
        common.nats.stream_replicas = self.options.stream_replicas;
        common
    }

    pub async fn start_service(&mut self, svc: Svc) {
        // A restarted service comes back on its old port, as it would in production.
        let port = self.ports.get(&svc).copied().unwrap_or(0);
        let (service, stop) = self.build(svc, port).await;
        let port = service.port();
        self.ports.insert(svc, port);
        let tasks = service.tasks();
        let task = tokio::spawn(service.run_until_stopped());
        self.running.insert(svc, Running { stop, tasks, task });
    }

    /// Starts another instance of `svc` on its own port, with the same database and NATS.
    pub async fn start_instance(&self, svc: Svc) -> Instance {
        let (service, stop) = self.build(svc, 0).await;
        let task = tokio::spawn(service.run_until_stopped());
        Instance { stop, task }
    }

    async fn build(&self, svc: Svc, port: u16) -> (service_kit::Service, Shutdown) {
        let stop = Shutdown::new();
        let o = self.options.clone();
        let common = |name| {
            let mut common = self.common(name, svc);
            common.http_addr.set_port(port);
            common
        };
        let service = match svc {
            Svc::Order => {
                order_service::build(
                    order_service::Settings {
                        common: common(order_service::SERVICE),
                        admission: order_service::admission::AdmissionSettings {
                            max_age: o.admission_max_age,
                            stuck_after: o.saga_timeout,
                            max_writing: 0,
                            ..Default::default()
                        },
                    },
                    stop.clone(),
                )
                .await
            }
            Svc::Payment => {
                payment_service::build(
                    payment_settings(common(payment_service::SERVICE), o.success_rate, o.seed),
                    stop.clone(),
                )
                .await
            }
            Svc::Inventory => {
                inventory_service::build(
                    inventory_service::Settings {
                        common: common(inventory_service::SERVICE),
                        auto_provision: o.auto_provision,
                    },
                    stop.clone(),
                )
                .await
            }
            Svc::Saga => {
                saga_coordinator::build(
                    saga_coordinator::Settings {
                        common: common(saga_coordinator::SERVICE),
                        timeouts: saga_coordinator::Timeouts {
                            saga: o.saga_timeout,
                            compensation: o.compensation_timeout,
                        },
                        // On demand only (POST /admin/reconcile), against this stack.
                        reconcile: saga_coordinator::reconcile::ReconcileSettings {
                            interval: Duration::ZERO,
                            grace: o.reconcile_grace,
                            window: Duration::from_secs(3600),
                            max_orders: o.reconcile_max_orders,
                            saga_timeout: o.saga_timeout,
                            keep: Duration::from_secs(3600),
                        },
                        peers: Some(saga_coordinator::reconcile::peers::PeerUrls {
                            order: self.url(Svc::Order, ""),
                            payment: self.url(Svc::Payment, ""),
                            inventory: self.url(Svc::Inventory, ""),
                        }),
                    },
                    stop.clone(),
                )
                .await
            }
        }
        .unwrap_or_else(|e| panic!("starting {svc:?}: {e:#}"));
        (service, stop)
    }

    /// The tasks a running service runs beside its HTTP server.
    pub fn tasks(&self, svc: Svc) -> Tasks {
        self.running[&svc].tasks.clone()
    }

    /// Waits until a service stops by itself, and returns how it ended.
    pub async fn ended(&mut self, svc: Svc) -> anyhow::Result<()> {
        let running = self.running.remove(&svc).expect("a running service");
        match tokio::time::timeout(WAIT, running.task).await {
            Ok(joined) => joined.expect("the service's task"),
            Err(_) => panic!("{svc:?} still running after {WAIT:?}"),
        }
    }

    /// Stops a service as a deployment would (in-flight work finishes first).
    pub async fn stop_service(&mut self, svc: Svc) {
        if let Some(running) = self.running.remove(&svc) {
            running.stop.cancel();
            let _ = running.task.await;
        }
    }

    /// The URL of a service's database.
    pub fn database_url(&self, svc: Svc) -> String {
        self.dbs[&svc].url.clone()
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

    /// An admin call: `method path` with `body`, with the admin token when `token` says so.
    pub async fn admin(
        &self,
        svc: Svc,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(svc, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin call");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /admin/reconcile` with the admin token: the run, or its status and answer.
    pub async fn reconcile_now(&self) -> Result<Value, String> {
        let (status, run) = self
            .admin(
                Svc::Saga,
                reqwest::Method::POST,
                "/admin/reconcile",
                None,
                Some(ADMIN),
            )
            .await;
        if status == 200 {
            Ok(run)
        } else {
            Err(format!("{status} {run}"))
        }
    }

    /// `PUT /admin/simulation` on payment-service, with the admin token.
    pub async fn set_simulation(&self, body: Value) -> (u16, Value) {
        self.admin(
            Svc::Payment,
            reqwest::Method::PUT,
            "/admin/simulation",
            Some(body),
            Some(ADMIN),
        )
        .await
    }

    /// Runs `sagactl` with `args` against this stack (its URLs and admin token), in-process.
    pub async fn sagactl(&self, args: &[&str]) -> Result<String, String> {
        use clap::Parser as _;
        let saga_url = self.url(Svc::Saga, "");
        let payment_url = self.url(Svc::Payment, "");
        let inventory_url = self.url(Svc::Inventory, "");
        let mut argv = vec![
            "sagactl",
            "--saga-url",
            &saga_url,
            "--payment-url",
            &payment_url,
            "--inventory-url",
            &inventory_url,
            "--token",
            ADMIN,
        ];
        argv.extend_from_slice(args);
        let cli = sagactl::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let mut out = String::new();
        sagactl::run(cli, &mut out)
            .await
            .map(|()| out)
            .map_err(|e| format!("{e:#}"))
    }

    /// A JetStream context of the test's own on the stack's NATS, to read or change the streams
    /// as an operator would.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = messaging::nats::connect(&messaging::nats::NatsSettings::new(
            self.nats.url(),
            "e2e-operator",
        ))
        .await
        .expect("nats");
        messaging::nats::jetstream(client)
    }

    /// Publishes `message` on `subject` straight to JetStream (as a foreign or broken producer
    /// would), and waits until it is stored.
    pub async fn publish(
        &self,
        subject: &str,
        message: async_nats::jetstream::message::PublishMessage,
    ) {
        self.jetstream()
            .await
            .send_publish(subject.to_owned(), message)
            .await
            .expect("publish")
            .await
            .expect("stored");
    }

    /// A saga driven to FAILED: its order confirmed (two units of p-1 at 10, which the caller
    /// stocks), then payment-service is down while the customer cancels, and the cancellation it
    /// would have refunded on is lost, so the compensation cannot finish. payment-service is
    /// started again before it returns (orderId, sagaId).
    pub async fn failed_saga(&mut self) -> (String, String) {
        let (order_id, saga_id) = ids(&self.order(&[("p-1", 2, "10")]).await);
        self.order_becomes(&order_id, "CONFIRMED").await;
        self.until(
            Svc::Inventory,
            &format!("/reservations/{order_id}"),
            "committed",
            |r| r["status"] == "COMMITTED",
        )
        .await;
        self.stop_service(Svc::Payment).await;
        let (status, _) = self
            .post(
                Svc::Order,
                &format!("/orders/{order_id}/cancel"),
                &json!({"reason": "changed my mind"}),
            )
            .await;
        assert_eq!(status, 200);
        self.until(
            Svc::Inventory,
            &format!("/reservations/{order_id}"),
            "released",
            |r| r["status"] == "RELEASED",
        )
        .await;
        let js = self.jetstream().await;
        let orders = js.get_stream("ORDERS").await.expect("ORDERS");
        let cancelled = orders
            .get_last_raw_message_by_subject("order.cancelled.v1")
            .await
            .expect("the order's cancellation");
        assert!(String::from_utf8_lossy(&cancelled.payload).contains(&order_id));
        orders
            .delete_message(cancelled.sequence)
            .await
            .expect("drop the cancellation");
        self.saga_becomes(&saga_id, "FAILED").await;
        self.start_service(Svc::Payment).await;
        (order_id, saga_id)
    }

    /// The Prometheus text of every service, one after another.
    pub async fn metrics(&self) -> String {
        let mut all = String::new();
        for svc in ALL {
            let response = self
                .http
                .get(self.url(svc, "/metrics"))
                .send()
                .await
                .expect("metrics");
            all.push_str(&response.text().await.expect("metrics text"));
        }
        all
    }

    /// Waits until `GET path` on `svc` answers a body that `check` accepts, and returns it.
    pub async fn until(
        &self,
        svc: Svc,
        path: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        match eventually_ok(what, WAIT, || async {
            let (_, body) = self.get(svc, path).await;
            if check(&body) {
                Ok(body)
            } else {
                Err(body.to_string())
            }
        })
        .await
        {
            Ok(body) => body,
            Err(e) => panic!("{e}"),
        }
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

    /// The invariants of SPEC section 5, through the public APIs only (see `saga_client`).
    pub async fn check_invariants(
        &self,
        orders: &[String],
        stock_set: &[(&str, i64)],
    ) -> Result<(), String> {
        self.tally(orders, stock_set).await.map(|_| ())
    }

    /// [`Stack::check_invariants`], and how the orders ended when they hold.
    pub async fn tally(
        &self,
        orders: &[String],
        stock_set: &[(&str, i64)],
    ) -> Result<saga_client::Tally, String> {
        let base = ALL.iter().map(|svc| (*svc, self.url(*svc, ""))).collect();
        let stock: Vec<(String, i64)> =
            stock_set.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        saga_client::Client::new(base)
            .check_invariants(orders, &stock)
            .await
    }
}

/// The sagaId and orderId of an order response.
/// payment-service's settings with `common`, approving `success_rate` of the charges (seeded
/// with `seed`), without added latency.
pub fn payment_settings(
    common: CommonSettings,
    success_rate: f64,
    seed: u64,
) -> payment_service::Settings {
    payment_service::Settings {
        common,
        simulation: payment_service::Simulation {
            success_rate: payment_service::gateway::SuccessRate::new(success_rate).expect("rate"),
            seed,
            latency: Duration::ZERO,
        },
    }
}

pub fn ids(order: &Value) -> (String, String) {
    (
        order["orderId"].as_str().expect("orderId").to_owned(),
        order["sagaId"].as_str().expect("sagaId").to_owned(),
    )
}

pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// Where the workspace's binaries are built: the directory above this test binary's `deps/`.
pub fn bin_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .to_path_buf()
}

/// The event types of a saga's history, in order.
pub fn event_types(saga: &Value) -> Vec<String> {
    saga["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["eventType"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The four services' command lines, as their binaries parse them.
pub fn services() -> Vec<(&'static str, clap::Command)> {
    use service_kit::settings::command;
    vec![
        (
            "order-service",
            command::<order_service::Args>(&order_service::DEFAULTS),
        ),
        (
            "payment-service",
            command::<payment_service::Args>(&payment_service::DEFAULTS),
        ),
        (
            "inventory-service",
            command::<inventory_service::Args>(&inventory_service::DEFAULTS),
        ),
        (
            "saga-coordinator",
            command::<saga_coordinator::Args>(&saga_coordinator::DEFAULTS),
        ),
    ]
}
