//! Start-up shared by every service: connect (retrying while the database or NATS come up),
//! migrate, provision streams, then run the relay, the consumers, any extra task and the HTTP
//! server until the shutdown token fires, and wait for all of them to finish their work.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use messaging::db::Migration;
use messaging::{Consumer, ConsumerSpec, Handler, Outbox, Relay, RelayConfig, Shutdown};
use shared_events::EventKind;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::error::{no_route, wrong_method};
use crate::extract::BODY_LIMIT;
use crate::settings::CommonSettings;

/// Logs to stderr; `RUST_LOG` takes `info`, `debug`, or per-target directives like
/// `info,sqlx=warn`.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| "info,sqlx=warn,async_nats=warn".parse().unwrap_or_default());
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
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
            Err(e) if tries < 20 => {
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
        messaging::db::migrate(&pool, migrations)
            .await
            .context("migrating the database")?;
        let client = retry("NATS", || messaging::nats::connect(&settings.nats)).await?;
        let js = messaging::nats::jetstream(client.clone());
        messaging::nats::ensure_streams(&js)
            .await
            .context("provisioning JetStream streams")?;
        Ok(Infra {
            pool,
            client,
            js,
            outbox: Outbox::new(settings.service),
        })
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Collects what a service runs besides its routes.
pub struct ServiceBuilder {
    settings: CommonSettings,
    infra: Infra,
    shutdown: Shutdown,
    tasks: Vec<Task>,
    relay: RelayConfig,
}

impl ServiceBuilder {
    pub fn new(settings: CommonSettings, infra: Infra, shutdown: Shutdown) -> ServiceBuilder {
        ServiceBuilder {
            settings,
            infra,
            shutdown,
            tasks: Vec::new(),
            relay: RelayConfig::default(),
        }
    }

    pub fn infra(&self) -> &Infra {
        &self.infra
    }

    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Provisions this service's durable consumer of `kind` and runs `handler` on it.
    pub async fn consume<H: Handler>(&mut self, kind: EventKind, handler: H) -> anyhow::Result<()> {
        let spec = ConsumerSpec::new(self.settings.service, kind);
        let consumer = Consumer::provision(
            self.infra.js.clone(),
            self.infra.pool.clone(),
            self.infra.outbox.clone(),
            spec,
            handler,
        )
        .await
        .with_context(|| format!("provisioning the consumer of {}", kind.subject()))?;
        let shutdown = self.shutdown.clone();
        self.tasks.push(Box::pin(consumer.run(shutdown)));
        Ok(())
    }

    /// Runs `task` alongside the server; it must return once the shutdown token fires.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(Box::pin(task));
    }

    /// Binds the HTTP listener with `routes` plus health and metrics.
    pub async fn serve(self, routes: Router) -> anyhow::Result<Service> {
        let router = routes
            .merge(crate::health::routes(
                self.infra.pool.clone(),
                self.infra.client.clone(),
            ))
            .fallback(no_route)
            .method_not_allowed_fallback(wrong_method)
            .layer(DefaultBodyLimit::max(BODY_LIMIT));
        let listener = TcpListener::bind(self.settings.http_addr)
            .await
            .with_context(|| format!("listening on {}", self.settings.http_addr))?;
        let port = listener.local_addr()?.port();
        let relay = Relay::new(
            self.infra.pool.clone(),
            self.infra.js.clone(),
            self.infra.outbox.clone(),
            self.relay,
        );
        let mut tasks = self.tasks;
        tasks.push(Box::pin(relay.run(self.shutdown.clone())));
        // Make sure the recorder exists before the first event is counted.
        let _ = messaging::metrics::prometheus();
        Ok(Service {
            service: self.settings.service,
            port,
            listener,
            router,
            tasks,
            shutdown: self.shutdown,
        })
    }
}

/// A built service, listening; [`Service::run_until_stopped`] runs it.
pub struct Service {
    service: &'static str,
    port: u16,
    listener: TcpListener,
    router: Router,
    tasks: Vec<Task>,
    shutdown: Shutdown,
}

impl Service {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handles: Vec<_> = self.tasks.into_iter().map(tokio::spawn).collect();
        tracing::info!(service = self.service, port = self.port, "listening");
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(self.shutdown.clone().cancelled_owned())
            .await;
        // Whatever ended the server ends the rest too.
        self.shutdown.cancel();
        for handle in handles {
            let _ = handle.await;
        }
        tracing::info!(service = self.service, "stopped");
        served.context("HTTP server")
    }
}
