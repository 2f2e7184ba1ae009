//! Start-up shared by every service: connect (retrying while the database or NATS come up),
//! migrate, provision streams, then run the relay, the consumers, any extra task and the HTTP
//! server until the shutdown token fires, and wait for all of them to finish their work.
//!
//! The tasks are supervised: one that ends or panics before the process is asked to stop stops
//! the whole service with an error (and so the process, non-zero), rather than leaving an HTTP
//! server that answers while nothing handles events any more.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use messaging::db::Migration;
use messaging::nats::ProvisionError;
use messaging::{Consumer, ConsumerSpec, Handler, Outbox, Relay, RelayConfig, Shutdown};
use shared_events::EventKind;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinSet};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::AdminToken;
use crate::error::{no_route, wrong_method};
use crate::extract::BODY_LIMIT;
use crate::health::Refresh;
use crate::settings::{CommonSettings, Defaults, ServiceArgs};

/// A service's whole process: reads its settings (`--help` and bad settings exit here), installs
/// logging and tracing, builds the service with `build` and runs it until it is asked to stop
/// or a task of it dies; then exports the last spans. Exits non-zero if the service failed.
pub fn main<A, F, Fut>(defaults: &Defaults, build: F) -> std::process::ExitCode
where
    A: ServiceArgs,
    F: FnOnce(A, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<Service>>,
{
    let args: A = crate::settings::parse(defaults);
    let telemetry = crate::telemetry::init(defaults.service, &args.common().telemetry);
    // One thread: a service's work is short steps waiting on PostgreSQL and NATS, which one
    // thread keeps up with at any rate the machine reaches, and tasks that never move between
    // threads wake no idle worker (two workers woke each other tens of times per order).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = messaging::shutdown::on_signal();
        build(args, shutdown).await?.run_until_stopped().await
    });
    drop(runtime);
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "{} failed", defaults.service);
    }
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The database pool, the NATS connection and the service's outbox.
#[derive(Clone)]
pub struct Infra {
    pub pool: PgPool,
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub outbox: Outbox,
}

async fn retry<T, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut tries = 0u32;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            // A stream stored with another configuration is not cured by waiting.
            Err(e) if tries < 20 && !is_mismatch(&e) => {
                tries += 1;
                let delay = messaging::backoff::delay(
                    tries,
                    Duration::from_millis(200),
                    Duration::from_secs(3),
                );
                tracing::warn!(error = %format!("{e:#}"), "{what} not reachable yet; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.context(format!("{what} not reachable"))),
        }
    }
}

fn is_mismatch(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ProvisionError>(),
        Some(ProvisionError::Mismatch { .. })
    )
}

impl Infra {
    pub async fn connect(
        settings: &CommonSettings,
        migrations: &[Migration],
    ) -> anyhow::Result<Infra> {
        let url = settings.database_url.clone();
        let max = settings.db_max_connections;
        let pool = retry("PostgreSQL", || {
            let url = url.clone();
            async move { Ok(messaging::db::connect(&url, max).await?) }
        })
        .await?;
        let report = messaging::db::migrate(&pool, &[crate::audit::MIGRATIONS, migrations])
            .await
            .context("migrating the database")?;
        if !report.applied.is_empty() {
            tracing::info!(versions = ?report.applied, "database migrated");
        }
        if !report.unknown.is_empty() {
            tracing::info!(versions = ?report.unknown,
                "the database has migrations of a later release; all of them keep this release working");
        }
        let client = retry("NATS", || messaging::nats::connect(&settings.nats)).await?;
        let js = messaging::nats::jetstream(client.clone());
        // Retried like the connections: a cluster that is starting has no meta leader for a
        // few seconds, and a service started with it would otherwise exit.
        let replicas = settings.nats.stream_replicas;
        retry("JetStream", || async {
            Ok(messaging::nats::ensure_streams(&js, replicas).await?)
        })
        .await
        .context("provisioning JetStream streams")?;
        Ok(Infra {
            pool,
            client,
            js,
            outbox: Outbox::new(settings.service).with_majors(settings.publish_majors.clone()),
        })
    }
}

type Task = (String, Pin<Box<dyn Future<Output = ()> + Send>>);

/// Collects what a service runs besides its routes.
pub struct ServiceBuilder {
    settings: CommonSettings,
    infra: Infra,
    shutdown: Shutdown,
    tasks: Vec<Task>,
    refresh: Option<Refresh>,
}

impl ServiceBuilder {
    pub fn new(settings: CommonSettings, infra: Infra, shutdown: Shutdown) -> ServiceBuilder {
        // The recorder exists before anything is counted or registered at zero, the service's own
        // metrics included.
        let _ = messaging::metrics::prometheus();
        crate::metrics::describe();
        crate::connections::describe();
        ServiceBuilder {
            settings,
            infra,
            shutdown,
            tasks: Vec::new(),
            refresh: None,
        }
    }

    /// The admin token of this service's settings.
    pub fn admin(&self) -> AdminToken {
        AdminToken::new(self.settings.admin_token.as_deref())
    }

    /// Has `refresh` bring the service's own gauges up to date before each `/metrics` read.
    pub fn on_scrape(&mut self, refresh: Refresh) {
        self.refresh = Some(refresh);
    }

    /// Provisions this service's durable consumers of `kind`'s event, one for each major this
    /// build knows (`order.created.v1` and `order.created.v2`), and runs `handler` on each.
    /// Every copy of an event has its event id, so the inbox lets one of them through.
    pub async fn consume<H: Handler + Clone>(
        &mut self,
        kind: EventKind,
        handler: H,
    ) -> anyhow::Result<()> {
        for major in kind.majors() {
            // Retried like the streams (`Infra::connect`): a JetStream request times out while
            // a starting cluster has no meta leader, or while the server is away.
            let consumer = retry("JetStream", || async {
                Ok(Consumer::provision(
                    self.infra.js.clone(),
                    self.infra.pool.clone(),
                    self.infra.outbox.clone(),
                    ConsumerSpec::new(self.settings.service, major),
                    handler.clone(),
                )
                .await?)
            })
            .await
            .with_context(|| format!("provisioning the consumer of {}", major.subject()))?;
            let shutdown = self.shutdown.clone();
            let name = format!("consumer {}", consumer.durable());
            self.tasks.push((name, Box::pin(consumer.run(shutdown))));
        }
        Ok(())
    }

    /// Runs `task` alongside the server under `name`; it must return only once the shutdown
    /// token fires (returning earlier stops the service, as a failure).
    pub fn spawn(&mut self, name: &str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((name.to_owned(), Box::pin(task)));
    }

    /// Binds the HTTP listener with `routes` (described as `about`) plus health, metrics, the
    /// audit log and `GET /openapi.json`, each request counted and timed by its route.
    pub async fn serve(self, routes: OpenApiRouter, about: &str) -> anyhow::Result<Service> {
        let router = app(
            &self.settings,
            &self.infra,
            routes,
            about,
            self.refresh.clone(),
        );
        let listener = TcpListener::bind(self.settings.http_addr)
            .await
            .with_context(|| format!("listening on {}", self.settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let relay = Relay::new(
            self.infra.pool.clone(),
            self.infra.js.clone(),
            self.infra.outbox.clone(),
            RelayConfig::default(),
        );
        let mut tasks = self.tasks;
        // The relay stops last, on a token of its own: what the server and the consumers commit
        // while they finish their work is published by this process before it exits, instead of
        // waiting out the hand-off lease for another instance's poller.
        let relay_stop = Shutdown::new();
        tasks.push((RELAY.into(), Box::pin(relay.run(relay_stop.clone()))));
        let mut running = JoinSet::new();
        let mut names = HashMap::new();
        let mut handles = Vec::new();
        for (name, task) in tasks {
            let handle = running.spawn(task);
            names.insert(handle.id(), name.clone());
            handles.push((name, handle));
        }
        Ok(Service {
            service: self.settings.service,
            port,
            listener,
            max_connections: self.settings.max_connections,
            router,
            running,
            names,
            tasks: Tasks(Arc::new(handles)),
            shutdown: self.shutdown,
            relay_stop,
        })
    }
}

/// A service's whole HTTP side: `routes` (described as `about`) plus health, metrics, the
/// audit log and `GET /openapi.json`, behind the layers every request goes through (timeout,
/// error logging, metrics, request spans, panics caught, the body limit). What
/// [`ServiceBuilder::serve`] serves, and what route tests call with `oneshot`.
pub fn app(
    settings: &CommonSettings,
    infra: &Infra,
    routes: OpenApiRouter,
    about: &str,
    refresh: Option<Refresh>,
) -> Router {
    let (routes, api) = routes.split_for_parts();
    let document = Arc::new(crate::api::describe(settings.service, about, api));
    let admin = AdminToken::new(settings.admin_token.as_deref());
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .merge(crate::health::routes(
            infra.pool.clone(),
            infra.client.clone(),
            refresh,
        ))
        .merge(crate::audit::routes(infra.pool.clone(), admin))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(axum::middleware::map_response(crate::error::shape_timeout))
        .layer(axum::middleware::from_fn(crate::error::log_errors))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(crate::metrics::request_spans())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::error::panicked,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

impl Infra {
    /// An infrastructure that reaches nothing: a pool that connects only when a statement runs
    /// (and then fails), and a NATS client that keeps trying a port nothing listens on. For
    /// route tests of what answers before the database or NATS is needed (bad input, admin
    /// checks, unknown routes), with no running stack.
    pub async fn offline(service: &'static str) -> anyhow::Result<Infra> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(200))
            .connect_lazy("postgres://offline@127.0.0.1:1/offline")?;
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1")
            .await?;
        let js = messaging::nats::jetstream(client.clone());
        Ok(Infra {
            pool,
            client,
            js,
            outbox: Outbox::new(service),
        })
    }
}

/// A built service, listening, its tasks started; [`Service::run_until_stopped`] runs it.
pub struct Service {
    service: &'static str,
    port: u16,
    listener: TcpListener,
    /// `HTTP_MAX_CONNECTIONS`.
    max_connections: usize,
    router: Router,
    running: JoinSet<()>,
    names: HashMap<tokio::task::Id, String>,
    tasks: Tasks,
    shutdown: Shutdown,
    /// Stops the relay once everything else has stopped.
    relay_stop: Shutdown,
}

/// The name of the relay's task.
const RELAY: &str = "relay";

/// The tasks a service runs beside its HTTP server (`relay`, `consumer <durable>`, and those
/// the service added), by name.
#[derive(Clone)]
pub struct Tasks(Arc<Vec<(String, AbortHandle)>>);

impl Tasks {
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Aborts the task `name`, as a crash of that task would end it (for tests of the
    /// supervision). Returns whether there was such a task.
    pub fn kill(&self, name: &str) -> bool {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, handle)| handle.abort())
            .count()
            > 0
    }
}

impl Service {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The tasks beside the HTTP server, to look at or (in tests) kill.
    pub fn tasks(&self) -> Tasks {
        self.tasks.clone()
    }

    /// Serves until the shutdown token fires or a task dies, then stops everything, letting
    /// in-flight work finish. A task that died is the error returned.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        tracing::info!(service = self.service, port = self.port, "listening");
        let listener = crate::connections::Bounded::new(self.listener, self.max_connections);
        let server = axum::serve(listener, self.router)
            .with_graceful_shutdown(self.shutdown.clone().cancelled_owned())
            .into_future();
        tokio::pin!(server);
        let mut served = None;
        let mut died: Option<String> = None;
        let mut others = self.names.values().filter(|n| *n != RELAY).count();
        while served.is_none() || !self.running.is_empty() {
            if served.is_some() && others == 0 {
                self.relay_stop.cancel();
            }
            tokio::select! {
                result = &mut server, if served.is_none() => {
                    // Whatever ended the server ends the rest too.
                    self.shutdown.cancel();
                    served = Some(result);
                }
                Some(ended) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    let (id, why) = match ended {
                        Ok((id, ())) => (id, "ended".to_owned()),
                        Err(e) if e.is_panic() => (e.id(), format!("panicked: {}", panic_message(e))),
                        Err(e) => (e.id(), "was aborted".to_owned()),
                    };
                    let name = self.names.remove(&id).unwrap_or_default();
                    if name != RELAY {
                        others -= 1;
                    }
                    if !self.shutdown.is_cancelled() {
                        tracing::error!(service = self.service, task = %name, "task {why} while the service was running; stopping the service");
                        died.get_or_insert(format!("task {name} {why}"));
                        self.shutdown.cancel();
                    }
                }
            }
        }
        tracing::info!(service = self.service, "stopped");
        if let Some(died) = died {
            anyhow::bail!("{}: {died}", self.service);
        }
        served.unwrap_or(Ok(())).context("HTTP server")
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    let panic = error.into_panic();
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
