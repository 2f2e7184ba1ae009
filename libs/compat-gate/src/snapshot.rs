//! The checked-in event schemas (`docs/events/*.schema.json`) and OpenAPI documents
//! (`docs/openapi/*.json`) of a commit, read with git, or of the working tree. The drift tests
//! keep those files equal to what the code generates, so comparing them compares the code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::GateError;

pub const EVENTS_DIR: &str = "docs/events";
pub const OPENAPI_DIR: &str = "docs/openapi";
const EVENT_SUFFIX: &str = ".schema.json";
const OPENAPI_SUFFIX: &str = ".json";

/// File name → the file's text.
pub type Files = BTreeMap<String, String>;

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `order.created.v1.schema.json` → its text.
    pub events: Files,
    /// `order-service.json` → its text.
    pub openapi: Files,
}

impl Snapshot {
    /// The files as they are in the working tree of `repo`.
    pub fn working_tree(repo: &Path) -> Result<Snapshot, GateError> {
        Ok(Snapshot {
            events: read_dir(&repo.join(EVENTS_DIR), EVENT_SUFFIX)?,
            openapi: read_dir(&repo.join(OPENAPI_DIR), OPENAPI_SUFFIX)?,
        })
    }

    /// The files as they were at `commit`, which must be in the clone (see [`resolve_commit`]).
    pub fn at_commit(repo: &Path, commit: &str) -> Result<Snapshot, GateError> {
        Ok(Snapshot {
            events: read_tree(repo, commit, EVENTS_DIR, EVENT_SUFFIX)?,
            openapi: read_tree(repo, commit, OPENAPI_DIR, OPENAPI_SUFFIX)?,
        })
    }
}

/// The top folder of the git work tree that holds `dir`.
pub fn toplevel(dir: &Path) -> Result<PathBuf, GateError> {
    let out = git_ok(dir, &["rev-parse", "--show-toplevel"])?;
    Ok(PathBuf::from(out.trim()))
}

/// The full hash of a release's commit, or [`GateError::MissingCommit`] when this clone does not
/// have it (a shallow clone, or a commit of main that was never fetched).
pub fn resolve_commit(repo: &Path, version: &str, commit: &str) -> Result<String, GateError> {
    let out = git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{commit}^{{commit}}"),
        ],
    )?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let shallow = git_ok(repo, &["rev-parse", "--is-shallow-repository"])
        .is_ok_and(|answer| answer.trim() == "true");
    Err(GateError::MissingCommit {
        version: version.to_owned(),
        commit: commit.to_owned(),
        hint: if shallow {
            "this clone is shallow: fetch the whole history (`git fetch --unshallow`, or check \
             out with fetch-depth 0) and run the gate again"
        } else {
            "fetch main (`git fetch origin main`), or correct docs/releases.md"
        },
    })
}

fn read_dir(dir: &Path, suffix: &str) -> Result<Files, GateError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No folder: no files, so every file of the release shows as removed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Files::new()),
        Err(source) => {
            return Err(GateError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Files::new();
    for entry in entries {
        let entry = entry.map_err(|source| GateError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(suffix) {
            continue;
        }
        let path = entry.path();
        let text =
            std::fs::read_to_string(&path).map_err(|source| GateError::Read { path, source })?;
        files.insert(name, text);
    }
    Ok(files)
}

fn read_tree(repo: &Path, commit: &str, dir: &str, suffix: &str) -> Result<Files, GateError> {
    let listing = git_ok(
        repo,
        &["ls-tree", "--name-only", commit, "--", &format!("{dir}/")],
    )?;
    let mut files = Files::new();
    for path in listing.lines() {
        let Some(name) = path.strip_prefix(&format!("{dir}/")) else {
            continue;
        };
        if name.contains('/') || !name.ends_with(suffix) {
            continue;
        }
        let text = git_ok(repo, &["cat-file", "blob", &format!("{commit}:{path}")])?;
        files.insert(name.to_owned(), text);
    }
    Ok(files)
}

fn git(repo: &Path, args: &[&str]) -> Result<Output, GateError> {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| GateError::Git {
            args: args.join(" "),
            message: format!("cannot run git: {e}"),
        })
}

/// Runs git and returns what it printed; a failure carries git's own message.
fn git_ok(repo: &Path, args: &[&str]) -> Result<String, GateError> {
    let out = git(repo, args)?;
    if !out.status.success() {
        return Err(GateError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| GateError::Git {
        args: args.join(" "),
        message: "printed text that is not UTF-8".to_owned(),
    })
}
