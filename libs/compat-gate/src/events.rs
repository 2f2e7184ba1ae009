//! Every event schema of the last release against the working tree's, by subject.
//!
//! A subject is a major (`order.created.v1`), so a breaking change ships as a new file
//! (`order.created.v2`), which is additive. A file of the release that is gone breaks, unless
//! docs/releases.md lists the major as retired.

use serde_json::Value;

use crate::releases::Releases;
use crate::report::{Report, Subject};
use crate::snapshot::{EVENTS_DIR, Files};
use crate::{GateError, schema};

pub fn compare(
    old: &Files,
    new: &Files,
    releases: &Releases,
    report: &mut Report,
) -> Result<(), GateError> {
    for (file, old_text) in old {
        let subject = subject_of(file);
        let who = Subject::Event(subject.to_owned());
        let Some(new_text) = new.get(file) else {
            if !releases.is_retired(subject) {
                report.breach(
                    &who,
                    "",
                    format!(
                        "{EVENTS_DIR}/{file} is gone: readers of the last release still get this \
                         major; list it under retired event majors in docs/releases.md once no \
                         consumer needs it"
                    ),
                );
            }
            continue;
        };
        report.events += 1;
        let old_schema = parse(file, old_text, "the last release")?;
        let new_schema = parse(file, new_text, "the working tree")?;
        let judgement =
            schema::compare(&old_schema, &new_schema).map_err(|source| GateError::Schema {
                at: format!("{EVENTS_DIR}/{file}"),
                source,
            })?;
        report.add_judgement(&who, "", judgement);
    }
    for file in new.keys().filter(|file| !old.contains_key(*file)) {
        report.additive(
            &Subject::Event(subject_of(file).to_owned()),
            "",
            "new event schema",
        );
    }
    Ok(())
}

/// `order.created.v1` from `order.created.v1.schema.json`.
fn subject_of(file: &str) -> &str {
    file.strip_suffix(".schema.json").unwrap_or(file)
}

fn parse(file: &str, text: &str, side: &'static str) -> Result<Value, GateError> {
    serde_json::from_str(text).map_err(|source| GateError::Json {
        file: format!("{EVENTS_DIR}/{file}"),
        side,
        source,
    })
}
