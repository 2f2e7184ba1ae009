//! `sagactl`: what an operator does to the order saga, over the services' HTTP APIs: look at
//! sagas and retry or abort one, read and replay or discard dead letters, change the payment
//! simulation at run time, and read the audit log. Text for people, `--json` for scripts.
//!
//! The library holds the whole tool ([`Cli`], [`run`]) so that tests drive it in-process; the
//! binary only parses the command line and prints.

use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

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

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReconcileArgs {
    #[command(subcommand)]
    pub list: Option<ReconcileList>,
    /// Compare the records that changed from this time on (RFC 3339) [default: since the last
    /// run].
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReconcileList {
    /// The last runs, newest first, with the disagreements each found and what it re-sent.
    List {
        /// Runs per page (1 to 100).
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Sagas {
    /// A page of sagas, newest first; the filters combine.
    List(SagaFilter),
    /// One saga: participants, deadlines, and its history as a timeline.
    Show {
        /// The saga id.
        id: String,
    },
    /// Counts by status and reason, stuck and in-flight sagas, durations of those that ended.
    Stats {
        /// The window for ended sagas and durations: 1m to 24h, like 90s, 15m or 2h.
        #[arg(long, default_value = "15m")]
        window: String,
    },
    /// Ask every participant that still holds something to undo it again (a COMPENSATING or
    /// FAILED saga), with a fresh compensation deadline. Admin.
    Retry {
        /// The saga id.
        id: String,
    },
    /// Abort a STARTED saga now with reason OPERATOR: its order is cancelled and compensated.
    /// Admin.
    Abort {
        /// The saga id.
        id: String,
        /// Why (recorded in the saga's history, the order and the audit log).
        #[arg(long)]
        detail: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct SagaFilter {
    /// STARTED, COMPLETED, COMPENSATING, COMPENSATED or FAILED.
    #[arg(long)]
    pub status: Option<String>,
    /// The saga of this order.
    #[arg(long)]
    pub order_id: Option<String>,
    /// PAYMENT_FAILED, INVENTORY_UNAVAILABLE, TIMEOUT, CUSTOMER_REQUEST or OPERATOR.
    #[arg(long)]
    pub reason: Option<String>,
    /// Created at or after this RFC 3339 time.
    #[arg(long)]
    pub created_after: Option<String>,
    /// Created before this RFC 3339 time.
    #[arg(long)]
    pub created_before: Option<String>,
    /// Only sagas past a deadline that the sweep has not dealt with yet.
    #[arg(long)]
    pub stuck: bool,
    /// Sagas per page (1 to 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after this saga id (the `next` of the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Dlq {
    /// A page of dead letters, oldest first; the filters combine.
    List(DlqFilter),
    /// One dead letter, with the original message and its headers.
    Show {
        /// The entry id (its sequence in the DLQ stream).
        id: i64,
    },
    /// Publish dead letters again to their original subject, for the consumer that failed:
    /// one by id, or every DEAD entry matching a filter. Admin.
    Replay {
        /// The entry id; or give a filter instead.
        id: Option<i64>,
        /// Replay every DEAD entry of this consumer.
        #[arg(long, conflicts_with = "id")]
        consumer: Option<String>,
        /// Replay every DEAD entry of this original subject.
        #[arg(long, conflicts_with = "id")]
        subject: Option<String>,
        /// Replay every DEAD entry dead-lettered for this reason.
        #[arg(long, conflicts_with = "id")]
        reason: Option<String>,
    },
    /// Mark a dead letter DISCARDED: nothing is published. Admin.
    Discard {
        /// The entry id.
        id: i64,
        /// Why (recorded with the entry and in the audit log).
        #[arg(long)]
        detail: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DlqFilter {
    /// The durable consumer that dead-lettered it, e.g. payment-service-order-created-v1.
    #[arg(long)]
    pub consumer: Option<String>,
    /// The original subject, e.g. order.created.v1.
    #[arg(long)]
    pub subject: Option<String>,
    /// MALFORMED, UNKNOWN_EVENT_TYPE, UNKNOWN_VERSION, INVALID_PAYLOAD, SUBJECT_MISMATCH,
    /// REJECTED or RETRIES_EXHAUSTED.
    #[arg(long)]
    pub reason: Option<String>,
    /// DEAD, REPLAYED or DISCARDED.
    #[arg(long)]
    pub status: Option<String>,
    /// Entries per page (1 to 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after this id (the `next` of the previous page).
    #[arg(long)]
    pub cursor: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum Simulation {
    /// The settings in force. Admin.
    Get,
    /// Change the settings from the next charge on, for every instance. Admin.
    Set {
        /// The share of charges approved, 0 to 1.
        #[arg(long)]
        success_rate: Option<f64>,
        /// The gateway's answer time in milliseconds (0 to 10000).
        #[arg(long)]
        latency_ms: Option<u64>,
        /// The seed of the gateway's decisions.
        #[arg(long)]
        seed: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Whose audit log: saga (saga-coordinator), payment or inventory.
    #[arg(long, default_value = "saga", value_parser = ["saga", "payment", "inventory"])]
    pub service: String,
    /// Entries per page (1 to 100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The page after this id (the `next` of the previous page).
    #[arg(long)]
    pub cursor: Option<i64>,
}

/// The HTTP side: base URLs, the token, and how answers that are not 2xx become errors.
struct Api<'a> {
    cli: &'a Cli,
    http: reqwest::Client,
}

impl Api<'_> {
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
    ) -> anyhow::Result<Value> {
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
            return Ok(value);
        }
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

    async fn get(&self, url: String, admin: bool) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, url, admin, None).await
    }

    async fn post(&self, url: String, body: Option<Value>) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, url, true, body).await
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

/// Runs one command, writing what it prints to `out`.
pub async fn run(cli: Cli, out: &mut String) -> anyhow::Result<()> {
    let api = Api {
        cli: &cli,
        http: reqwest::Client::new(),
    };
    let saga = cli.saga_url.trim_end_matches('/');
    let (value, text): (Value, fn(&Value, &mut String)) = match &cli.command {
        Command::Sagas(Sagas::List(f)) => {
            let q = query(&[
                ("status", f.status.clone()),
                ("orderId", f.order_id.clone()),
                ("reason", f.reason.clone()),
                ("createdAfter", f.created_after.clone()),
                ("createdBefore", f.created_before.clone()),
                ("stuck", f.stuck.then(|| "true".to_owned())),
                ("limit", f.limit.map(|l| l.to_string())),
                ("cursor", f.cursor.clone()),
            ]);
            (api.get(format!("{saga}/sagas{q}"), false).await?, saga_list)
        }
        Command::Sagas(Sagas::Show { id }) => (
            api.get(format!("{saga}/sagas/{}", encode(id)), false)
                .await?,
            saga_timeline,
        ),
        Command::Sagas(Sagas::Stats { window }) => (
            api.get(
                format!(
                    "{saga}/sagas/stats{}",
                    query(&[("window", Some(window.clone()))])
                ),
                false,
            )
            .await?,
            saga_stats,
        ),
        Command::Sagas(Sagas::Retry { id }) => (
            api.post(format!("{saga}/sagas/{}/retry", encode(id)), None)
                .await?,
            saga_acted,
        ),
        Command::Sagas(Sagas::Abort { id, detail }) => (
            api.post(
                format!("{saga}/sagas/{}/abort", encode(id)),
                Some(json!({ "detail": detail })),
            )
            .await?,
            saga_acted,
        ),
        Command::Dlq(Dlq::List(f)) => {
            let q = query(&[
                ("consumer", f.consumer.clone()),
                ("subject", f.subject.clone()),
                ("reason", f.reason.clone()),
                ("status", f.status.clone()),
                ("limit", f.limit.map(|l| l.to_string())),
                ("cursor", f.cursor.map(|c| c.to_string())),
            ]);
            (api.get(format!("{saga}/dlq{q}"), false).await?, dlq_list)
        }
        Command::Dlq(Dlq::Show { id }) => {
            (api.get(format!("{saga}/dlq/{id}"), false).await?, dlq_entry)
        }
        Command::Dlq(Dlq::Replay {
            id: Some(id),
            consumer: None,
            subject: None,
            reason: None,
        }) => (
            api.post(format!("{saga}/dlq/{id}/replay"), None).await?,
            dlq_entry,
        ),
        Command::Dlq(Dlq::Replay {
            id: None,
            consumer,
            subject,
            reason,
        }) => {
            if consumer.is_none() && subject.is_none() && reason.is_none() {
                bail!("give an entry id, or at least one of --consumer, --subject and --reason");
            }
            let body = json!({ "consumer": consumer, "subject": subject, "reason": reason });
            (
                api.post(format!("{saga}/dlq/replay"), Some(body)).await?,
                dlq_replayed,
            )
        }
        Command::Dlq(Dlq::Replay { .. }) => bail!("give an entry id or a filter, not both"),
        Command::Dlq(Dlq::Discard { id, detail }) => (
            api.post(
                format!("{saga}/dlq/{id}/discard"),
                Some(json!({ "detail": detail })),
            )
            .await?,
            dlq_entry,
        ),
        Command::Simulation(Simulation::Get) => {
            let payment = cli.payment_url.trim_end_matches('/');
            (
                api.get(format!("{payment}/admin/simulation"), true).await?,
                simulation,
            )
        }
        Command::Simulation(Simulation::Set {
            success_rate,
            latency_ms,
            seed,
        }) => {
            let payment = cli.payment_url.trim_end_matches('/');
            let mut body = serde_json::Map::new();
            if let Some(rate) = success_rate {
                body.insert("successRate".into(), json!(rate));
            }
            if let Some(ms) = latency_ms {
                body.insert("latencyMs".into(), json!(ms));
            }
            if let Some(seed) = seed {
                body.insert("seed".into(), json!(seed));
            }
            if body.is_empty() {
                bail!("give at least one of --success-rate, --latency-ms and --seed");
            }
            let value = api
                .call(
                    reqwest::Method::PUT,
                    format!("{payment}/admin/simulation"),
                    true,
                    Some(Value::Object(body)),
                )
                .await?;
            (value, simulation)
        }
        Command::Reconcile(ReconcileArgs { list: None, since }) => {
            let body = since.as_ref().map(|since| json!({ "since": since }));
            (
                api.post(format!("{saga}/admin/reconcile"), body).await?,
                reconcile_run,
            )
        }
        Command::Reconcile(ReconcileArgs {
            list: Some(ReconcileList::List { limit }),
            ..
        }) => {
            let q = query(&[("limit", limit.map(|l| l.to_string()))]);
            (
                api.get(format!("{saga}/admin/reconcile{q}"), false).await?,
                reconcile_runs,
            )
        }
        Command::Audit(a) => {
            let base = match a.service.as_str() {
                "payment" => cli.payment_url.as_str(),
                "inventory" => cli.inventory_url.as_str(),
                _ => saga,
            }
            .trim_end_matches('/');
            let q = query(&[
                ("limit", a.limit.map(|l| l.to_string())),
                ("cursor", a.cursor.map(|c| c.to_string())),
            ]);
            (
                api.get(format!("{base}/admin/audit{q}"), true).await?,
                audit,
            )
        }
    };
    if cli.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        text(&value, out);
    }
    Ok(())
}

/// One reconciliation run: what it compared, and each disagreement with what was done.
fn reconcile_run(run: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "run {} ({}) since {}: {} orders compared, {} mismatches{}",
        run["id"],
        s(&run["trigger"]),
        short_time(&run["since"]),
        run["checked"],
        run["mismatches"].as_array().map_or(0, Vec::len),
        run["error"]
            .as_str()
            .map(|e| format!("; stopped: {e}"))
            .unwrap_or_default()
    );
    for m in run["mismatches"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<26}  order {}  saga {}\n    {}\n    {}",
            s(&m["kind"]),
            s(&m["orderId"]),
            s(&m["sagaId"]),
            s(&m["detail"]),
            s(&m["action"])
        );
    }
}

fn reconcile_runs(value: &Value, out: &mut String) {
    for run in value["items"].as_array().into_iter().flatten() {
        reconcile_run(run, out);
    }
    next_page(value, out);
}

fn s(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn next_page(value: &Value, out: &mut String) {
    if !value["nextCursor"].is_null() {
        let _ = writeln!(out, "next page: --cursor {}", value["nextCursor"]);
    }
}

fn saga_list(value: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "{:<36}  {:<12}  {:<21}  {:<20}  ORDER",
        "SAGA", "STATUS", "REASON", "CREATED"
    );
    for saga in value["items"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<36}  {:<12}  {:<21}  {:<20}  {}",
            s(&saga["sagaId"]),
            s(&saga["status"]),
            s(&saga["reason"]),
            short_time(&saga["createdAt"]),
            s(&saga["orderId"])
        );
    }
    next_page(value, out);
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn short_time(value: &Value) -> String {
    time(value).map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// The saga as a timeline: each history entry with its time since the saga began.
fn saga_timeline(saga: &Value, out: &mut String) {
    let _ = writeln!(out, "saga       {}", s(&saga["sagaId"]));
    let _ = writeln!(out, "order      {}", s(&saga["orderId"]));
    let _ = writeln!(
        out,
        "status     {}{}",
        s(&saga["status"]),
        saga["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "payment    {} {}",
        s(&saga["payment"]["status"]),
        saga["payment"]["paymentId"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "inventory  {} {}",
        s(&saga["inventory"]["status"]),
        saga["inventory"]["reservationId"].as_str().unwrap_or("")
    );
    let _ = writeln!(out, "started    {}", s(&saga["createdAt"]));
    let _ = writeln!(out, "deadline   {}", s(&saga["deadline"]));
    if let Some(deadline) = saga["compensationDeadline"].as_str() {
        let _ = writeln!(out, "compensate by {deadline}");
    }
    if let Some(trace) = saga["traceId"].as_str() {
        let _ = writeln!(out, "trace      {trace}");
    }
    let start = time(&saga["createdAt"]);
    let _ = writeln!(out, "\ntimeline:");
    for entry in saga["history"].as_array().into_iter().flatten() {
        let at = time(&entry["receivedAt"]);
        let offset = match (start, at) {
            (Some(start), Some(at)) => {
                format!("+{:.3}s", (at - start).num_milliseconds() as f64 / 1000.0)
            }
            _ => "?".into(),
        };
        let mut line = format!("  {offset:>10}  {:<22}", s(&entry["eventType"]));
        if let Some(actor) = entry["actor"].as_str() {
            let _ = write!(line, "  by {actor}");
        }
        if let Some(detail) = entry["detail"].as_str() {
            let _ = write!(line, "  \"{detail}\"");
        }
        let _ = write!(line, "  {}", s(&entry["eventId"]));
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn saga_stats(stats: &Value, out: &mut String) {
    let _ = writeln!(out, "by status:");
    for (status, n) in stats["byStatus"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "  {status:<13} {n}");
    }
    let _ = writeln!(out, "by reason:");
    for (reason, n) in stats["byReason"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "  {reason:<22} {n}");
    }
    let _ = writeln!(
        out,
        "stuck: {}   in flight: {}",
        stats["stuck"], stats["inFlight"]
    );
    let d = &stats["duration"];
    let _ = writeln!(
        out,
        "ended in the last {}: {}   duration p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        s(&stats["window"]),
        stats["ended"],
        d["p50Ms"],
        d["p90Ms"],
        d["p99Ms"],
        d["maxMs"]
    );
}

fn saga_acted(saga: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "saga {} is now {}",
        s(&saga["sagaId"]),
        s(&saga["status"])
    );
}

fn dlq_list(value: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "{:>6}  {:<9}  {:<42}  {:<20}  {:<18}  DEAD-LETTERED",
        "ID", "STATUS", "CONSUMER", "SUBJECT", "REASON"
    );
    for d in value["items"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>6}  {:<9}  {:<42}  {:<20}  {:<18}  {}",
            d["id"],
            s(&d["status"]),
            s(&d["consumer"]),
            s(&d["subject"]),
            s(&d["reason"]),
            short_time(&d["deadLetteredAt"])
        );
    }
    next_page(value, out);
}

fn dlq_entry(d: &Value, out: &mut String) {
    for (label, key) in [
        ("id", "id"),
        ("status", "status"),
        ("consumer", "consumer"),
        ("subject", "subject"),
        ("reason", "reason"),
        ("detail", "detail"),
        ("delivered", "delivered"),
        ("dead-lettered", "deadLetteredAt"),
        ("event id", "eventId"),
        ("event type", "eventType"),
        ("status by", "statusChangedBy"),
        ("status at", "statusChangedAt"),
        ("note", "statusDetail"),
    ] {
        let v = &d[key];
        if !v.is_null() {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            let _ = writeln!(out, "{label:<14} {shown}");
        }
    }
    if let Some(headers) = d["headers"].as_object() {
        let _ = writeln!(out, "headers:");
        for (name, value) in headers {
            let _ = writeln!(out, "  {name}: {}", s(value));
        }
    }
    let _ = writeln!(
        out,
        "payload:\n{}",
        serde_json::to_string_pretty(&d["payload"]).unwrap_or_default()
    );
}

fn dlq_replayed(value: &Value, out: &mut String) {
    let _ = writeln!(out, "replayed {} dead letter(s)", value["replayed"]);
}

fn simulation(value: &Value, out: &mut String) {
    let _ = writeln!(out, "success rate  {}", value["successRate"]);
    let _ = writeln!(out, "latency       {} ms", value["latencyMs"]);
    let _ = writeln!(out, "seed          {}", value["seed"]);
    let _ = writeln!(
        out,
        "set           {} by {}",
        s(&value["updatedAt"]),
        s(&value["updatedBy"])
    );
}

fn audit(value: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "{:>6}  {:<20}  {:<18}  {:<18}  {:<38}  DETAIL",
        "ID", "AT", "ACTOR", "ACTION", "TARGET"
    );
    for e in value["items"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>6}  {:<20}  {:<18}  {:<18}  {:<38}  {}",
            e["id"],
            short_time(&e["at"]),
            s(&e["actor"]),
            s(&e["action"]),
            s(&e["target"]),
            e["detail"].as_str().unwrap_or("")
        );
    }
    next_page(value, out);
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

    #[test]
    fn a_timeline_shows_each_entry_relative_to_the_start() {
        let saga = json!({
            "sagaId": "s", "orderId": "o", "status": "COMPENSATED", "reason": "OPERATOR",
            "payment": {"status": "REFUNDED"}, "inventory": {"status": "RELEASED"},
            "createdAt": "2026-11-29T12:00:00Z", "deadline": "2026-11-29T12:00:30Z",
            "history": [
                {"eventId": "e1", "eventType": "order.created", "receivedAt": "2026-11-29T12:00:00.010Z"},
                {"eventId": "e2", "eventType": "operator.abort", "receivedAt": "2026-11-29T12:00:01.500Z",
                 "actor": "token:abc", "detail": "fraud"}
            ]
        });
        let mut out = String::new();
        saga_timeline(&saga, &mut out);
        assert!(out.contains("+0.010s  order.created"), "{out}");
        assert!(out.contains("+1.500s  operator.abort"), "{out}");
        assert!(out.contains("by token:abc  \"fraud\""), "{out}");
        assert!(out.contains("status     COMPENSATED (OPERATOR)"), "{out}");
    }
}
