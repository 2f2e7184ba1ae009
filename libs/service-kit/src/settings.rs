//! The settings every service reads: each a command-line flag and an environment variable (clap),
//! with its default, all listed by `--help`. A value that is set but unusable stops start-up at
//! once with a message naming the setting (a bad boolean, log filter or database URL included).
//!
//! A service's own settings are a clap `Parser` that flattens [`CommonArgs`]; [`parse`] reads it
//! with the service's own defaults for `PORT` and `DATABASE_URL`, and [`command`] is the same
//! command, for tests that compare what `--help` lists with what the code reads.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, CommandFactory, Parser, ValueEnum};
use messaging::nats::NatsSettings;
use shared_events::Majors;
use tracing_subscriber::filter::Targets;

/// Where a service listens and keeps its data by default.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub service: &'static str,
    pub port: u16,
    /// The service's database on a local PostgreSQL (`postgres://saga:saga@127.0.0.1:5432/<this>`).
    pub database: &'static str,
}

impl Defaults {
    pub fn database_url(&self) -> String {
        format!("postgres://saga:saga@127.0.0.1:5432/{}", self.database)
    }
}

/// The command of a service's settings `C`, with the service's defaults and name.
pub fn command<C: CommandFactory>(defaults: &Defaults) -> clap::Command {
    C::command()
        .name(defaults.service)
        .mut_arg("port", |a| {
            a.default_value(defaults.port.to_string()).required(false)
        })
        .mut_arg("database_url", |a| {
            a.default_value(defaults.database_url()).required(false)
        })
}

/// A service's settings: clap's, with the common ones inside.
pub trait ServiceArgs: Parser {
    fn common(&self) -> &CommonArgs;
}

/// Reads a service's settings from its command line and environment; `--help`, `--version` and
/// errors exit here, before anything starts.
pub fn parse<C: ServiceArgs>(defaults: &Defaults) -> C {
    try_parse_from(defaults, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] from the given arguments, returning the error.
pub fn try_parse_from<C: ServiceArgs, I, T>(defaults: &Defaults, args: I) -> Result<C, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = command::<C>(defaults);
    let matches = command.try_get_matches_from_mut(args)?;
    let parsed = C::from_arg_matches(&matches)?;
    // Checked here rather than by clap, whose messages repeat the value: these may hold a
    // password.
    let common = parsed.common();
    let secret_checks = [
        ("--database-url", database_url(&common.database_url)),
        ("--nats-url", nats_urls(&common.nats_url)),
    ];
    for (flag, check) in secret_checks {
        if let Err(why) = check {
            return Err(command.error(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {why}"),
            ));
        }
    }
    Ok(parsed)
}

/// What every service reads.
#[derive(Clone, Debug, Args)]
pub struct CommonArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port the HTTP server listens on (0: any free port).
    #[arg(long, env = "PORT")]
    pub port: u16,
    /// The service's own PostgreSQL database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Connections in the database pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// NATS servers, comma-separated (several: the nodes of a cluster); each may hold a user and
    /// password (nats://user:pass@host:4222).
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true
    )]
    pub nats_url: String,
    /// A NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "NATS_CREDS_FILE")]
    pub nats_creds_file: Option<PathBuf>,
    /// A CA certificate to trust for NATS over TLS (setting it also requires TLS).
    #[arg(long, env = "NATS_TLS_CA_FILE")]
    pub nats_tls_ca_file: Option<PathBuf>,
    /// Require TLS to NATS (true or false).
    #[arg(long, env = "NATS_TLS_REQUIRED", default_value = "false",
          value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub nats_tls_required: bool,
    /// Replicas of every stream this service creates, 1 to 5 (3 on a three-node cluster).
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_stream_replicas: u8,
    /// The token of admin calls (Authorization: Bearer <token>); unset: admin calls answer 403.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A request not answered within this many milliseconds is answered 503 TIMEOUT (a hung
    /// handler does not hold its connection forever).
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub http_request_timeout_ms: u64,
    /// The most HTTP connections held open at once, idle ones included; while that many are
    /// open, new connections wait in the listen queue until one closes.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections: u32,
    /// The major versions of its events this service publishes, comma-separated: each event
    /// goes out in every listed major it has (an event that has none of them, in its newest).
    /// During a change-over every consumer must know one of them (docs/upgrading.md).
    #[arg(long, env = "PUBLISH_MAJORS", default_value_t = Majors::all(),
          value_parser = publish_majors)]
    pub publish_majors: Majors,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// How a service logs and traces.
#[derive(Clone, Debug, Args)]
pub struct TelemetryArgs {
    /// What to log: a level (error, warn, info, debug, trace) or per-target directives such as
    /// info,sqlx=warn.
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn,async_nats=warn",
          value_parser = log_filter)]
    pub rust_log: Targets,
    /// text (readable, colours only on a terminal) or json (one object per line).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export spans by OTLP over HTTP (protobuf) to <endpoint>/v1/traces, e.g.
    /// http://127.0.0.1:4318. Unset: no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = http_url)]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// The service name the exported spans carry [default: the service's name].
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn database_url(text: &str) -> Result<(), String> {
    let postgres = text.starts_with("postgres://") || text.starts_with("postgresql://");
    match text.parse::<sqlx::postgres::PgConnectOptions>() {
        Ok(_) if postgres => Ok(()),
        _ => Err("not a PostgreSQL URL such as postgres://user:password@host:5432/database".into()),
    }
}

fn nats_urls(text: &str) -> Result<(), String> {
    for url in text.split(',').map(str::trim) {
        if url.is_empty() {
            return Err("an empty server in the list".into());
        }
        url.parse::<async_nats::ServerAddr>()
            .map_err(|_| format!("{} is not a NATS server address", redact(url)))?;
    }
    Ok(())
}

/// A URL with any password replaced, for messages.
fn redact(url: &str) -> String {
    NatsSettings::new(url, "").redacted_url()
}

fn publish_majors(text: &str) -> Result<Majors, String> {
    Majors::parse(text).map_err(|e| e.to_string())
}

fn log_filter(text: &str) -> Result<Targets, String> {
    text.parse::<Targets>()
        .map_err(|e| format!("not a log filter such as info or info,sqlx=warn ({e})"))
}

fn http_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') || rest.chars().any(char::is_whitespace) {
        return Err("must be a URL such as http://127.0.0.1:4318".into());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[derive(Clone, Debug)]
pub struct CommonSettings {
    /// The service name: in logs, metrics, event `producer` and durable consumer names.
    pub service: &'static str,
    /// `HOST` and `PORT`.
    pub http_addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    pub nats: NatsSettings,
    /// `ADMIN_TOKEN`: unset means admin calls answer 403.
    pub admin_token: Option<String>,
    /// `PUBLISH_MAJORS`.
    pub publish_majors: Majors,
    /// `HTTP_REQUEST_TIMEOUT_MS`.
    pub request_timeout: std::time::Duration,
    /// `HTTP_MAX_CONNECTIONS`.
    pub max_connections: usize,
}

impl CommonSettings {
    pub fn from_args(service: &'static str, args: &CommonArgs) -> CommonSettings {
        CommonSettings {
            service,
            http_addr: SocketAddr::new(args.host, args.port),
            database_url: args.database_url.clone(),
            db_max_connections: args.db_max_connections,
            nats: NatsSettings {
                url: args.nats_url.clone(),
                creds_file: args.nats_creds_file.clone(),
                tls_ca_file: args.nats_tls_ca_file.clone(),
                require_tls: args.nats_tls_required,
                client_name: service.into(),
                stream_replicas: usize::from(args.nats_stream_replicas),
            },
            admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
            publish_majors: args.publish_majors.clone(),
            request_timeout: std::time::Duration::from_millis(args.http_request_timeout_ms),
            max_connections: args.http_max_connections as usize,
        }
    }

    /// Settings for a test: port 0, the given database and NATS.
    pub fn for_test(service: &'static str, database_url: &str, nats_url: &str) -> CommonSettings {
        CommonSettings {
            service,
            http_addr: SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0),
            database_url: database_url.into(),
            db_max_connections: 5,
            nats: NatsSettings::new(nats_url, service),
            admin_token: Some("test-admin-token".into()),
            publish_majors: Majors::all(),
            request_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Every environment variable a command reads (its arguments' `env`), sorted.
pub fn environment(command: &clap::Command) -> Vec<String> {
    let mut names: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for sub in command.get_subcommands() {
        names.extend(environment(sub));
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        common: CommonArgs,
    }

    impl ServiceArgs for Probe {
        fn common(&self) -> &CommonArgs {
            &self.common
        }
    }

    const DEFAULTS: Defaults = Defaults {
        service: "probe",
        port: 3999,
        database: "probe",
    };

    fn parse_from(args: &[&str]) -> Result<Probe, clap::Error> {
        try_parse_from(&DEFAULTS, args)
    }

    #[test]
    fn defaults_are_the_services_own() {
        let probe = parse_from(&["probe"]).unwrap();
        assert_eq!(probe.common.port, 3999);
        assert_eq!(
            probe.common.database_url,
            "postgres://saga:saga@127.0.0.1:5432/probe"
        );
        assert_eq!(probe.common.nats_stream_replicas, 1);
        assert_eq!(probe.common.publish_majors, Majors::all());
        assert_eq!(probe.common.publish_majors.to_string(), "1,2");
        assert!(!probe.common.nats_tls_required);
    }

    #[test]
    fn unusable_values_are_refused_at_once_with_the_setting_named() {
        for (args, setting) in [
            (
                &["probe", "--nats-tls-required", "maybe"][..],
                "--nats-tls-required",
            ),
            (&["probe", "--rust-log", "info,=="][..], "--rust-log"),
            (
                &["probe", "--database-url", "mysql:/x"][..],
                "--database-url",
            ),
            (
                &["probe", "--db-max-connections", "0"][..],
                "--db-max-connections",
            ),
            (
                &["probe", "--nats-stream-replicas", "7"][..],
                "--nats-stream-replicas",
            ),
            (
                &["probe", "--otel-exporter-otlp-endpoint", "collector:4318"][..],
                "--otel-exporter-otlp-endpoint",
            ),
            (&["probe", "--log-format", "xml"][..], "--log-format"),
            (&["probe", "--publish-majors", "3"][..], "--publish-majors"),
            (
                &["probe", "--publish-majors", "one"][..],
                "--publish-majors",
            ),
            (&["probe", "--port", "70000"][..], "--port"),
        ] {
            let error = parse_from(args).expect_err(setting).to_string();
            assert!(error.contains(setting), "{setting}: {error}");
        }
    }

    #[test]
    fn help_lists_every_environment_variable() {
        let help = command::<Probe>(&DEFAULTS).render_long_help().to_string();
        let names = environment(&command::<Probe>(&DEFAULTS));
        assert!(names.contains(&"DATABASE_URL".to_owned()));
        for name in names {
            assert!(
                help.contains(&format!("[env: {name}")),
                "{name} missing from --help"
            );
        }
        assert!(help.contains("[default: 3999]"), "{help}");
    }

    #[test]
    fn passwords_in_urls_are_not_echoed() {
        for args in [
            &["probe", "--nats-url", "nats://u:s3cret@host:notaport"][..],
            &[
                "probe",
                "--database-url",
                "postgres://u:s3cret@host:notaport/db",
            ][..],
        ] {
            let error = parse_from(args).expect_err("bad port").to_string();
            assert!(!error.contains("s3cret"), "{error}");
            assert!(error.contains("invalid value"), "{error}");
        }
    }
}
