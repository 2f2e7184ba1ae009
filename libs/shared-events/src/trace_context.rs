//! The W3C trace context of an event (`traceparent`: version, trace id, parent span id, flags).
//! It travels as the `traceparent` header of the NATS message, not in the envelope, and is stored
//! with each outbox row; see `messaging::trace`.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A W3C trace context: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceParent {
    /// A new trace, with this as its first span.
    pub fn root() -> TraceParent {
        TraceParent {
            trace_id: nonzero_u128(),
            span_id: nonzero_u64(),
            sampled: true,
        }
    }

    /// A context in the same trace, for work caused by this one (a new span id).
    pub fn child(self) -> TraceParent {
        TraceParent {
            span_id: nonzero_u64(),
            ..self
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// Random ids from the operating system's generator (through v4 UUIDs), never zero.
fn nonzero_u64() -> u64 {
    loop {
        let n = Uuid::new_v4().as_u64_pair().1;
        if n != 0 {
            return n;
        }
    }
}

fn nonzero_u128() -> u128 {
    loop {
        let n = Uuid::new_v4().as_u128();
        if n != 0 {
            return n;
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// Why a `traceparent` is not one.
#[derive(Debug, thiserror::Error)]
#[error("not a W3C traceparent")]
pub struct NotATraceParent;

impl FromStr for TraceParent {
    type Err = NotATraceParent;

    /// Version 00 as W3C Trace Context says; a later version is read by its first four fields.
    fn from_str(text: &str) -> Result<TraceParent, NotATraceParent> {
        let mut parts = text.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(NotATraceParent);
        };
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return Err(NotATraceParent);
        }
        if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return Err(NotATraceParent);
        }
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| NotATraceParent)?;
        let span_id = u64::from_str_radix(span, 16).map_err(|_| NotATraceParent)?;
        let flags = u8::from_str_radix(flags, 16).map_err(|_| NotATraceParent)?;
        if trace_id == 0 || span_id == 0 {
            return Err(NotATraceParent);
        }
        Ok(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_written() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed: TraceParent = text.parse().unwrap();
        assert_eq!(parsed.to_string(), text);
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parsed.sampled);
        let child = parsed.child();
        assert_eq!(child.trace_id, parsed.trace_id);
        assert_ne!(child.span_id, parsed.span_id);
        let root = TraceParent::root();
        assert_eq!(root.to_string().parse::<TraceParent>().unwrap(), root);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?}");
        }
        // A later version may carry more fields.
        assert!(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"
                .parse::<TraceParent>()
                .is_ok()
        );
    }
}
