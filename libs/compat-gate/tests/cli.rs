//! The `compat-gate` binary end to end, in a throwaway git repository holding copies of the real
//! checked-in files: the release's commit read with git, a regenerated file failing the gate, and
//! a shallow clone that lacks the release.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A git repository in a temporary folder, removed when dropped.
struct Repo {
    dir: PathBuf,
}

impl Repo {
    fn new(name: &str) -> Repo {
        let dir = std::env::temp_dir().join(format!("compat-gate-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// A release: the real docs/events and docs/openapi, committed; returns the commit.
    fn with_release_files(name: &str) -> (Repo, String) {
        let repo = Repo::new(name);
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for folder in ["docs/events", "docs/openapi"] {
            std::fs::create_dir_all(repo.dir.join(folder)).expect("mkdir");
            for entry in std::fs::read_dir(real.join(folder)).expect("the real files") {
                let entry = entry.expect("entry");
                std::fs::copy(entry.path(), repo.dir.join(folder).join(entry.file_name()))
                    .expect("copy");
            }
        }
        repo.commit("the release");
        let commit = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
        (repo, commit)
    }

    fn write(&self, path: &str, text: &str) {
        std::fs::write(self.dir.join(path), text).expect("write");
    }

    fn releases(&self, commit: &str) {
        self.write(
            "docs/releases.md",
            &format!(
                "# Releases\n\n| version | commit | date | notes |\n| --- | --- | --- | --- |\n\
                 | 0.1.0 | {commit} | 2026-12-04 | |\n| 0.2.0 | unreleased | | |\n"
            ),
        );
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args([
                "-c",
                "user.name=compat-gate test",
                "-c",
                "user.email=compat-gate@localhost",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// Runs the gate from a folder inside the repository, as CI would from its top.
    fn gate(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_compat-gate"))
            .arg(self.dir.join("docs"))
            .output()
            .expect("compat-gate runs")
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_gate_passes_when_nothing_changed_since_the_release() {
    let (repo, commit) = Repo::with_release_files("unchanged");
    repo.releases(&commit[..7]);
    repo.commit("releases");
    let out = repo.gate();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("compat-gate: compatible with release 0.1.0"),
        "{stdout}"
    );
}

#[test]
fn a_regenerated_schema_with_a_renamed_field_fails_the_gate() {
    let (repo, commit) = Repo::with_release_files("renamed");
    repo.releases(&commit);
    repo.commit("releases");
    // What export-schemas writes once `customer_id` is renamed `customer` in the payload type.
    let path = "docs/events/order.created.v1.schema.json";
    let original = std::fs::read_to_string(repo.dir.join(path)).expect("read");
    let mut schema: Value = serde_json::from_str(&original).expect("JSON");
    let payload = &mut schema["$defs"]["OrderCreated"];
    let customer = payload["properties"]
        .as_object_mut()
        .expect("properties")
        .remove("customerId")
        .expect("customerId");
    payload["properties"]["customer"] = customer;
    for name in payload["required"].as_array_mut().expect("required") {
        if name == "customerId" {
            *name = "customer".into();
        }
    }
    repo.write(
        path,
        &(serde_json::to_string_pretty(&schema).expect("JSON") + "\n"),
    );

    let out = repo.gate();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("breach: order.created.v1: payload.customerId: removed or renamed"),
        "{stdout}"
    );
    assert!(stdout.contains("breaches of release 0.1.0"), "{stdout}");

    // Committing the change does not help: the release is what it is compared with.
    repo.commit("rename customerId");
    assert_eq!(repo.gate().status.code(), Some(1));
}

#[test]
fn a_shallow_clone_without_the_release_says_so() {
    let (repo, commit) = Repo::with_release_files("shallow");
    repo.releases(&commit);
    repo.commit("releases");
    let clone = Repo {
        dir: repo.dir.with_file_name(format!(
            "{}-clone",
            repo.dir.file_name().and_then(|n| n.to_str()).expect("name")
        )),
    };
    let _ = std::fs::remove_dir_all(&clone.dir);
    let source = format!("file://{}", repo.dir.display());
    let status = Command::new("git")
        .args(["clone", "-q", "--depth", "1", &source])
        .arg(&clone.dir)
        .status()
        .expect("git clone");
    assert!(status.success());

    let out = clone.gate();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("is not in this clone's history"),
        "{stderr}"
    );
    assert!(stderr.contains("shallow"), "{stderr}");
}

#[test]
fn a_releases_file_without_a_release_is_an_error() {
    let (repo, _) = Repo::with_release_files("no-release");
    repo.write(
        "docs/releases.md",
        "| version | commit | date | notes |\n|---|---|---|---|\n| 0.1.0 | unreleased | | |\n",
    );
    let out = repo.gate();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no release has a commit yet"));
}
