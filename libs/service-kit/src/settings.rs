//! Settings every service reads from the environment, with documented defaults. A value that is
//! set but unusable stops start-up with a message naming the variable.

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use messaging::nats::NatsSettings;

#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not valid: {reason}")]
pub struct SettingsError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(name: &str, value: &str, reason: impl Display) -> SettingsError {
        SettingsError {
            name: name.into(),
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}

/// The variable's value, if set and not empty.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable parsed as `T`, or `default` when unset.
pub fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, SettingsError>
where
    T::Err: Display,
{
    match env_var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| SettingsError::new(name, &v, e)),
    }
}

#[derive(Clone, Debug)]
pub struct CommonSettings {
    /// The service name: in logs, metrics, event `producer` and durable consumer names.
    pub service: &'static str,
    /// `HOST` (default 127.0.0.1) and `PORT` (the service's default port).
    pub http_addr: SocketAddr,
    /// `DATABASE_URL` (default `postgres://saga:saga@127.0.0.1:5432/<the service's database>`).
    pub database_url: String,
    /// `DB_MAX_CONNECTIONS` (default 10).
    pub db_max_connections: u32,
    pub nats: NatsSettings,
    /// `ADMIN_TOKEN`: unset means admin calls answer 403.
    pub admin_token: Option<String>,
}

impl CommonSettings {
    pub fn from_env(
        service: &'static str,
        default_port: u16,
        default_database: &str,
    ) -> Result<CommonSettings, SettingsError> {
        let host: IpAddr = env_or("HOST", IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let port: u16 = env_or("PORT", default_port)?;
        let db_max_connections: u32 = env_or("DB_MAX_CONNECTIONS", 10)?;
        if db_max_connections == 0 {
            return Err(SettingsError::new(
                "DB_MAX_CONNECTIONS",
                "0",
                "must be at least 1",
            ));
        }
        Ok(CommonSettings {
            service,
            http_addr: SocketAddr::new(host, port),
            database_url: env_var("DATABASE_URL").unwrap_or_else(|| {
                format!("postgres://saga:saga@127.0.0.1:5432/{default_database}")
            }),
            db_max_connections,
            nats: NatsSettings::from_env(service),
            admin_token: env_var("ADMIN_TOKEN"),
        })
    }

    /// Settings for a test: port 0, the given database and NATS.
    pub fn for_test(service: &'static str, database_url: &str, nats_url: &str) -> CommonSettings {
        CommonSettings {
            service,
            http_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            database_url: database_url.into(),
            db_max_connections: 5,
            nats: NatsSettings::new(nats_url, service),
            admin_token: Some("test-admin-token".into()),
        }
    }
}
