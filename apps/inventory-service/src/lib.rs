//! inventory-service: owns stock. It reserves every line of an order or none, commits on
//! confirmation, releases or restocks on cancellation, and shows stock and reservations over
//! HTTP; setting stock is an admin call.
//!
//! - [`rules`]: the stock rules and the set-stock rule, pure.
//! - [`store`]: every SQL statement (`products`, `reservations`, `cancelled_orders`).
//! - [`reactions`]: `order.created.v1`, `order.confirmed.v1`, `order.cancelled.v1`.
//! - [`routes`]: `GET /inventory`, `GET|PUT /inventory/{productId}`, `GET /reservations/{orderId}`.

pub mod reactions;
pub mod routes;
pub mod rules;
pub mod store;

use clap::Parser;
use messaging::Shutdown;
use messaging::db::Migration;
use service_kit::settings::{CommonArgs, Defaults, ServiceArgs};
use service_kit::{CommonSettings, Infra, Service, ServiceBuilder};
use shared_events::EventKind;

pub use crate::rules::MAX_ON_HAND;

pub const SERVICE: &str = "inventory-service";
pub const DEFAULT_PORT: u16 = 3007;

/// Where inventory-service listens and keeps its data by default.
pub const DEFAULTS: Defaults = Defaults {
    service: SERVICE,
    port: DEFAULT_PORT,
    database: "inventory",
};

pub const MIGRATIONS: &[Migration] = &[
    Migration::frozen(1000, "stock", include_str!("../migrations/1000_stock.sql")),
    Migration::frozen(
        1001,
        "reservation updates without index writes",
        include_str!("../migrations/1001_hot_updates.sql"),
    ),
    participant::cancellations::BY_AGE,
];

#[derive(Clone, Debug)]
pub struct Settings {
    pub common: CommonSettings,
    /// `INVENTORY_AUTO_PROVISION`: stock given to a product the first time an order names it
    /// (default 0: unknown products fail the reservation with `UNKNOWN_PRODUCT`).
    pub auto_provision: i64,
}

/// inventory-service's command line and environment.
#[derive(Clone, Debug, Parser)]
#[command(
    version = build_info::VERSION,
    about = "inventory-service: owns stock; reserves, commits and releases it."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stock given to a product the first time an order names it (0: unknown products fail the
    /// reservation with UNKNOWN_PRODUCT).
    #[arg(long, env = "INVENTORY_AUTO_PROVISION", default_value_t = 0,
          value_parser = clap::value_parser!(i64).range(0..=MAX_ON_HAND))]
    pub inventory_auto_provision: i64,
}

impl ServiceArgs for Args {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

impl Args {
    pub fn settings(&self) -> Settings {
        Settings {
            common: CommonSettings::from_args(SERVICE, &self.common),
            auto_provision: self.inventory_auto_provision,
        }
    }
}

/// The service's OpenAPI description, as `GET /openapi.json` serves it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::api::document(SERVICE, routes::ABOUT, routes::api())
}

pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Service> {
    let infra = Infra::connect(&settings.common, MIGRATIONS).await?;
    let mut builder = ServiceBuilder::new(settings.common, infra.clone(), shutdown.clone());
    let retention = participant::cancellations::keep_pruned(infra.pool.clone(), shutdown);
    builder.spawn("cancelled-orders retention", retention);
    let admin = builder.admin();
    let reactions = reactions::Reactions {
        auto_provision: settings.auto_provision,
    };
    for kind in [
        EventKind::OrderCreated,
        EventKind::OrderConfirmed,
        EventKind::OrderCancelled,
    ] {
        builder.consume(kind, reactions.clone()).await?;
    }
    builder
        .serve(
            routes::api().with_state(routes::Api { infra, admin }),
            routes::ABOUT,
        )
        .await
}
