//! One module per subcommand group: its arguments, its calls, the API's answers as types, and
//! how they read as text. What several of them read lives here: a page of a list, a time, and a
//! number, each shown the way the API wrote it.

pub(crate) mod audit;
pub(crate) mod dlq;
pub(crate) mod reconcile;
pub(crate) mod sagas;
pub(crate) mod simulation;

use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// A page of a list: `{"items": [...], "nextCursor": ...}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T, C> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: Option<C>,
}

impl<T, C: Serialize> Page<T, C> {
    /// `next page: --cursor …` when another page follows, the cursor as JSON writes it: a saga
    /// id in quotes, a number bare.
    pub(crate) fn write_next(&self, out: &mut String) {
        if let Some(cursor) = &self.next_cursor {
            let _ = writeln!(
                out,
                "next page: --cursor {}",
                serde_json::to_string(cursor).unwrap_or_default()
            );
        }
    }
}

/// A time as the API wrote it (RFC 3339): shown as written, shortened, or measured from another.
#[derive(Debug)]
pub(crate) struct Time {
    written: String,
    at: DateTime<Utc>,
}

impl Time {
    /// `2026-11-29 12:00:00`, in UTC.
    pub(crate) fn short(&self) -> String {
        self.at.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// Seconds from `start` to this time.
    pub(crate) fn seconds_since(&self, start: &Time) -> f64 {
        (self.at - start.at).num_milliseconds() as f64 / 1000.0
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Time, D::Error> {
        let written = String::deserialize(deserializer)?;
        let at = DateTime::parse_from_rfc3339(&written)
            .map_err(|e| serde::de::Error::custom(format!("{written:?} is not a time: {e}")))?
            .with_timezone(&Utc);
        Ok(Time { written, at })
    }
}

/// A fractional number as JSON writes it, the way the API sent it: `0.0` and `1.0` keep their
/// point (`{}` of an `f64` would print `0` and `1`).
pub(crate) struct JsonFloat(pub(crate) f64);

impl fmt::Display for JsonFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::Number::from_f64(self.0) {
            Some(n) => fmt::Display::fmt(&n, f),
            None => f.write_str("null"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_shown_as_written_or_shortened_in_utc() {
        let time: Time = serde_json::from_str("\"2026-11-29T13:00:00.250+01:00\"").expect("a time");
        assert_eq!(time.to_string(), "2026-11-29T13:00:00.250+01:00");
        assert_eq!(time.short(), "2026-11-29 12:00:00");
        let start: Time = serde_json::from_str("\"2026-11-29T12:00:00Z\"").expect("a time");
        assert_eq!(time.seconds_since(&start), 0.25);
        assert!(serde_json::from_str::<Time>("\"yesterday\"").is_err());
    }

    #[test]
    fn fractional_numbers_are_written_as_json_writes_them() {
        for (number, written) in [(0.0, "0.0"), (1.0, "1.0"), (0.95, "0.95"), (1e16, "1e+16")] {
            assert_eq!(JsonFloat(number).to_string(), written);
            assert_eq!(serde_json::json!(number).to_string(), written);
        }
    }

    #[test]
    fn the_next_page_cursor_is_written_as_json() {
        let mut out = String::new();
        let page: Page<(), String> = Page {
            items: vec![],
            next_cursor: Some("0190".into()),
        };
        page.write_next(&mut out);
        let page: Page<(), i64> = Page {
            items: vec![],
            next_cursor: Some(42),
        };
        page.write_next(&mut out);
        let page: Page<(), i64> = Page {
            items: vec![],
            next_cursor: None,
        };
        page.write_next(&mut out);
        assert_eq!(
            out,
            "next page: --cursor \"0190\"\nnext page: --cursor 42\n"
        );
    }
}
