//! `sagactl`: what an operator does to the order saga, over the services' HTTP APIs: look at
//! sagas and retry or abort one, read and replay or discard dead letters, change the payment
//! simulation at run time, and read the audit log. Text for people, `--json` for scripts.
//!
//! The library holds the whole tool ([`Cli`], [`run`]) so that tests drive it in-process; the
//! binary only parses the command line and prints. Each subcommand group is a module of its own
//! under `commands/` (its arguments, its calls, the API's answers as types, and its text); this
//! file holds what they share: the global flags, the HTTP client, and the dispatch.

mod commands;

use std::fmt::Write as _;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use commands::audit::AuditArgs;
pub use commands::dlq::{Dlq, DlqFilter};
pub use commands::reconcile::{ReconcileArgs, ReconcileList};
pub use commands::sagas::{SagaFilter, Sagas};
pub use commands::simulation::Simulation;

#[derive(Debug, Parser)]
#[command(
    name = "sagactl",
    version = build_info::VERSION,
    about = "Operate the order saga: sagas, dead letters, payment simulation, audit log",
    long_about = "Operate the order saga over the services' HTTP APIs.\n\n\
        Reads (sagas list/show/stats, dlq list/show) need no token. Everything that changes \
        something, and reading the simulation settings and the audit log, is an admin call: \
        it sends the admin token (--token, $ADMIN_TOKEN, else the file .run/admin-token that \
        scripts/up.sh writes)."
)]
pub struct Cli {
    /// saga-coordinator's base URL.
    #[arg(
        long,
        env = "SAGA_URL",
        default_value = "http://127.0.0.1:3008",
        global = true
    )]
    pub saga_url: String,
    /// payment-service's base URL (simulation settings, its audit log).
    #[arg(
        long,
        env = "PAYMENT_URL",
        default_value = "http://127.0.0.1:3006",
        global = true
    )]
    pub payment_url: String,
    /// inventory-service's base URL (its audit log).
    #[arg(
        long,
        env = "INVENTORY_URL",
        default_value = "http://127.0.0.1:3007",
        global = true
    )]
    pub inventory_url: String,
    /// The admin token for admin calls [default: the file .run/admin-token, if there is one].
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sagas: list, show one's timeline, stats, retry a compensation, abort one.
    #[command(subcommand)]
    Sagas(Sagas),
    /// Dead letters of every service: list, show, replay (one or by filter), discard.
    #[command(subcommand)]
    Dlq(Dlq),
    /// payment-service's simulated gateway, changed at run time for every instance.
    #[command(subcommand)]
    Simulation(Simulation),
    /// The audit log of admin calls of one service (newest first).
    Audit(AuditArgs),
    /// Compare the four services' records now and re-send what settles each disagreement
    /// (admin); `reconcile list` shows the last runs and what each found.
    Reconcile(ReconcileArgs),
}

/// Runs one command, writing what it prints to `out`.
pub async fn run(cli: Cli, out: &mut String) -> anyhow::Result<()> {
    let api = Api {
        cli: &cli,
        http: reqwest::Client::new(),
    };
    match &cli.command {
        Command::Sagas(command) => commands::sagas::run(command, &api, out).await,
        Command::Dlq(command) => commands::dlq::run(command, &api, out).await,
        Command::Simulation(command) => commands::simulation::run(command, &api, out).await,
        Command::Audit(args) => commands::audit::run(args, &api, out).await,
        Command::Reconcile(args) => commands::reconcile::run(args, &api, out).await,
    }
}

/// The service a call goes to.
#[derive(Clone, Copy, Debug)]
enum Service {
    Saga,
    Payment,
    Inventory,
}

/// The HTTP side: base URLs, the token, and how answers that are not 2xx become errors.
struct Api<'a> {
    cli: &'a Cli,
    http: reqwest::Client,
}

impl Api<'_> {
    /// `path` (with its query) on `service`.
    fn url(&self, service: Service, path: &str) -> String {
        let base = match service {
            Service::Saga => &self.cli.saga_url,
            Service::Payment => &self.cli.payment_url,
            Service::Inventory => &self.cli.inventory_url,
        };
        format!("{}{path}", base.trim_end_matches('/'))
    }

    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = self.cli.token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(token.clone());
        }
        match std::fs::read_to_string(".run/admin-token") {
            Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
            _ => bail!("this is an admin call: give --token or set ADMIN_TOKEN"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        admin: bool,
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.http.request(method.clone(), &url);
        if admin {
            request = request.bearer_auth(self.token()?);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(Answer {
                request: format!("{method} {url}"),
                json: value,
                as_json: self.cli.json,
            });
        }
        // An error may come from something in front of the service (a proxy's page, say), so
        // this reads whatever of the API's error shape is there rather than insisting on it.
        let error = &value["error"];
        let mut message = format!(
            "{} {}: {}",
            status.as_u16(),
            error["code"].as_str().unwrap_or("ERROR"),
            error["message"].as_str().unwrap_or("(no message)")
        );
        for detail in error["details"].as_array().into_iter().flatten() {
            let _ = write!(
                message,
                "\n  {}: {}",
                detail["field"].as_str().unwrap_or("?"),
                detail["message"].as_str().unwrap_or("?")
            );
        }
        bail!(message)
    }

    async fn get(&self, url: String, admin: bool) -> anyhow::Result<Answer> {
        self.call(reqwest::Method::GET, url, admin, None).await
    }

    /// A POST is always an admin call.
    async fn post(&self, url: String, body: Option<Value>) -> anyhow::Result<Answer> {
        self.call(reqwest::Method::POST, url, true, body).await
    }

    /// A PUT is always an admin call.
    async fn put(&self, url: String, body: Value) -> anyhow::Result<Answer> {
        self.call(reqwest::Method::PUT, url, true, Some(body)).await
    }
}

/// A successful answer of the API, as it came.
#[must_use]
struct Answer {
    /// `GET http://…`: what was asked, to say so when the answer cannot be read.
    request: String,
    json: Value,
    /// `--json`: print the answer as it came.
    as_json: bool,
}

impl Answer {
    /// Prints the answer: with `--json` the API's JSON as it came; else `text` of the answer read
    /// into `T`, so that a field renamed or gone is an error rather than a column of dashes.
    fn print<T: DeserializeOwned>(
        self,
        out: &mut String,
        text: fn(&T, &mut String),
    ) -> anyhow::Result<()> {
        let Answer {
            request,
            json,
            as_json,
        } = self;
        if as_json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            return Ok(());
        }
        let answer = serde_json::from_value(json)
            .map_err(|e| anyhow!("{request}: an answer sagactl cannot read: {e}"))?;
        text(&answer, out);
        Ok(())
    }
}

/// `?a=1&b=2` from the parameters given (values percent-encoded).
fn query(params: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[
                ("a", Some("x y&z".into())),
                ("b", None),
                ("c", Some("1".into()))
            ]),
            "?a=x%20y%26z&c=1"
        );
        assert_eq!(query(&[("a", None)]), "");
    }

    fn answer(json: Value, as_json: bool) -> Answer {
        Answer {
            request: "GET http://saga/thing".into(),
            json,
            as_json,
        }
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Thing {
        saga_id: String,
    }

    fn thing(thing: &Thing, out: &mut String) {
        let _ = writeln!(out, "thing {}", thing.saga_id);
    }

    #[test]
    fn an_answer_is_printed_as_text_or_as_the_json_that_came() {
        let json = serde_json::json!({"sagaId": "s", "extra": 1});
        let mut out = String::new();
        answer(json.clone(), false)
            .print(&mut out, thing)
            .expect("readable");
        assert_eq!(out, "thing s\n");
        let mut out = String::new();
        answer(json, true).print(&mut out, thing).expect("printed");
        assert_eq!(out, "{\n  \"extra\": 1,\n  \"sagaId\": \"s\"\n}\n");
    }

    #[test]
    fn an_answer_with_a_field_renamed_is_an_error_that_names_it() {
        let mut out = String::new();
        let error = answer(serde_json::json!({"id": "s"}), false)
            .print(&mut out, thing)
            .expect_err("sagaId is missing");
        assert_eq!(
            error.to_string(),
            "GET http://saga/thing: an answer sagactl cannot read: missing field `sagaId`"
        );
        assert_eq!(out, "");
    }
}
