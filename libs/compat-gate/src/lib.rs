//! The compatibility gate CI runs before the tests: every event's JSON Schema
//! (`docs/events/*.schema.json`) and every service's OpenAPI document (`docs/openapi/*.json`)
//! of the working tree against those of the last release listed in `docs/releases.md`.
//!
//! Within a major only additive, optional changes pass ([`rules`]); anything else is a breach
//! that names the event or route and the field. [`run`] is the whole gate; [`compare`] is its
//! core, on two [`Snapshot`]s, for tests that change a file the way a regenerated one would.
//! docs/compatibility.md says what is checked and why.

pub mod events;
pub mod openapi;
pub mod releases;
pub mod report;
pub mod rules;
pub mod schema;
pub mod snapshot;

use std::path::{Path, PathBuf};

pub use releases::{Release, Releases};
pub use report::{Finding, Report, Subject};
pub use snapshot::Snapshot;

/// Where the releases are listed, from the top of the repository.
pub const RELEASES: &str = "docs/releases.md";

/// Why the gate could not decide (a breach is not an error: it is in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{RELEASES}: {0}")]
    Releases(#[from] releases::ReleasesError),
    #[error(
        "release {version}'s commit {commit} ({RELEASES}) is not in this clone's history: {hint}"
    )]
    MissingCommit {
        version: String,
        commit: String,
        hint: &'static str,
    },
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
    #[error("{file} of {side} is not JSON: {source}")]
    Json {
        file: String,
        side: &'static str,
        source: serde_json::Error,
    },
    #[error("{at}: {source}")]
    Schema {
        at: String,
        source: schema::SchemaError,
    },
}

/// What the gate compared with, and what it found.
#[derive(Debug)]
pub struct Outcome {
    pub release: Release,
    /// The release's commit as resolved in this clone (the full hash).
    pub commit: String,
    pub report: Report,
}

impl Outcome {
    /// What the gate prints: a line per breach (and per additive change if `verbose`), then the
    /// summary.
    pub fn text(&self, verbose: bool) -> String {
        let mut out = String::new();
        for breach in &self.report.breaches {
            out.push_str(&format!("breach: {breach}\n"));
        }
        if verbose {
            for change in &self.report.additive {
                out.push_str(&format!("additive: {change}\n"));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// The gate's last line.
    pub fn summary(&self) -> String {
        let report = &self.report;
        let against = format!(
            "release {} ({})",
            self.release.version,
            &self.commit[..self.commit.len().min(12)]
        );
        let compared = format!(
            "{} event schemas, {} OpenAPI documents, {} routes",
            report.events, report.documents, report.routes
        );
        if report.passed() {
            format!(
                "compat-gate: compatible with {against}: {compared} compared; {}",
                counted(report.additive.len(), "additive change", "additive changes")
            )
        } else {
            format!(
                "compat-gate: {} of {against} in {compared}: a breaking change ships as a new \
                 major (events) or a new path (HTTP); see docs/compatibility.md",
                counted(report.breaches.len(), "breach", "breaches")
            )
        }
    }
}

fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The whole gate, in the git work tree that holds `dir`: the last release of
/// `docs/releases.md`, its files read with git, compared with the working tree's.
pub fn run(dir: &Path) -> Result<Outcome, GateError> {
    let repo = snapshot::toplevel(dir)?;
    let path = repo.join(RELEASES);
    let text = std::fs::read_to_string(&path).map_err(|source| GateError::Read { path, source })?;
    let releases = releases::parse(&text)?;
    let (release, commit) = releases.last()?;
    let commit = snapshot::resolve_commit(&repo, &release.version, commit)?;
    let old = Snapshot::at_commit(&repo, &commit)?;
    let new = Snapshot::working_tree(&repo)?;
    let report = compare(&old, &new, &releases)?;
    Ok(Outcome {
        release: release.clone(),
        commit,
        report,
    })
}

/// The release's files (`old`) against the working tree's (`new`); `releases` says which event
/// majors are retired.
pub fn compare(old: &Snapshot, new: &Snapshot, releases: &Releases) -> Result<Report, GateError> {
    let mut report = Report::default();
    events::compare(&old.events, &new.events, releases, &mut report)?;
    openapi::compare(&old.openapi, &new.openapi, &mut report)?;
    report.breaches.sort();
    report.additive.sort();
    Ok(report)
}
