//! One module per subcommand group: its arguments, its calls, and how its answers read as
//! text. What several of them use to read the API's JSON lives here.

pub(crate) mod audit;
pub(crate) mod dlq;
pub(crate) mod reconcile;
pub(crate) mod sagas;
pub(crate) mod simulation;

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub(crate) fn s(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

pub(crate) fn next_page(value: &Value, out: &mut String) {
    if !value["nextCursor"].is_null() {
        let _ = writeln!(out, "next page: --cursor {}", value["nextCursor"]);
    }
}

pub(crate) fn time(value: &Value) -> Option<DateTime<Utc>> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn short_time(value: &Value) -> String {
    time(value).map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}
