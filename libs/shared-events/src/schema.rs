//! JSON Schemas of the events, as checked into `docs/events/<subject>.schema.json`.
//!
//! `cargo run -p shared-events --bin export-schemas` writes them; [`drift`] compares the checked-in
//! files with what the types produce now, so a changed event cannot ship with stale docs.

use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema};
use serde_json::json;

use crate::envelope::Envelope;
use crate::events::{EventKind, EventPayload, PayloadVisitor};

/// Where the schemas live in this repository.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events")
}

pub fn file_name(kind: EventKind) -> String {
    format!("{}.schema.json", kind.subject())
}

/// The schema of an envelope carrying payload `P` as event `kind`.
pub fn envelope_schema<P: JsonSchema>(kind: EventKind) -> Schema {
    let mut schema = schemars::schema_for!(Envelope<P>);
    schema.insert("$id".into(), json!(file_name(kind)));
    schema.insert("title".into(), json!(kind.subject()));
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert("eventType".into(), json!({ "const": kind.name() }));
        props.insert("version".into(), json!({ "const": kind.version() }));
    }
    schema
}

/// The schema of the envelope carrying `kind`'s payload, as checked in.
pub fn of(kind: EventKind) -> Schema {
    struct Envelopes;
    impl PayloadVisitor for Envelopes {
        type Output = Schema;
        fn visit<P: EventPayload>(self, kind: EventKind) -> Schema {
            envelope_schema::<P>(kind)
        }
    }
    kind.visit(Envelopes)
}

/// The file text for a schema: pretty JSON and a final newline.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes every event's schema into `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for &kind in EventKind::ALL {
        std::fs::write(dir.join(file_name(kind)), render(&of(kind)))?;
    }
    Ok(())
}

/// Compares one schema with its checked-in file; the error says what differs.
pub fn check(dir: &Path, kind: EventKind, schema: &Schema) -> Result<(), String> {
    let path = dir.join(file_name(kind));
    let on_disk = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: cannot read ({e})", path.display()))?;
    if on_disk == render(schema) {
        Ok(())
    } else {
        Err(format!(
            "{}: differs from the {} type",
            path.display(),
            kind.subject()
        ))
    }
}

/// Every difference between the checked-in schemas and the types, including stale extra files.
pub fn drift(dir: &Path) -> Vec<String> {
    let mut problems: Vec<String> = EventKind::ALL
        .iter()
        .filter_map(|&kind| check(dir, kind, &of(kind)).err())
        .collect();
    let expected: Vec<String> = EventKind::ALL.iter().map(|&k| file_name(k)).collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".schema.json") && !expected.contains(&name) {
                problems.push(format!("{name}: no event has this subject any more"));
            }
        }
    }
    problems
}
