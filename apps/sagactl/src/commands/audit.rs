//! `sagactl audit`: the audit log of one service's admin calls, newest first, over its
//! `/admin/audit`.

use std::fmt::Write as _;

use clap::Args;
use serde_json::Value;

use super::{next_page, s, short_time};
use crate::{Api, Service, query};

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

pub(crate) async fn run(args: &AuditArgs, api: &Api<'_>, out: &mut String) -> anyhow::Result<()> {
    let service = match args.service.as_str() {
        "payment" => Service::Payment,
        "inventory" => Service::Inventory,
        _ => Service::Saga,
    };
    let q = query(&[
        ("limit", args.limit.map(|l| l.to_string())),
        ("cursor", args.cursor.map(|c| c.to_string())),
    ]);
    let url = api.url(service, &format!("/admin/audit{q}"));
    api.get(url, true).await?.print(out, audit)
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
