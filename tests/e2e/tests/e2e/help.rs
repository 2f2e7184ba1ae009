//! Every binary answers `--help` and `--version` and exits 0 without starting anything, and its
//! help lists every environment setting it reads; no code reads the environment around the
//! settings, so a new setting cannot go undocumented.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use service_kit::settings::{command, environment};

use crate::common::{bin_dir, services};

fn binaries() -> Vec<(&'static str, clap::Command)> {
    let mut all = services();
    all.extend([
        ("saga-load", loadgen::Cli::command()),
        ("saga-chaos", chaos::Cli::command()),
        ("saga-upgrade", chaos::UpgradeCli::command()),
        ("sagactl", sagactl::Cli::command()),
    ]);
    all
}

/// The environment variables a help text names (`[env: NAME=...]`).
fn listed(help: &str) -> BTreeSet<String> {
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next().map(str::to_owned))
        .collect()
}

#[test]
fn every_binary_documents_every_setting_it_reads_and_exits_0_on_help_and_version() {
    for (name, settings) in binaries() {
        let binary = bin_dir().join(name);
        assert!(
            binary.exists(),
            "{} is not built: run `cargo build --workspace` (scripts/test.sh does)",
            binary.display()
        );
        // Nothing to connect to: were the binary to start, it would fail, not exit 0.
        let help = Command::new(&binary)
            .arg("--help")
            .env("NATS_URL", "nats://127.0.0.1:1")
            .output()
            .expect("run --help");
        assert!(help.status.success(), "{name} --help: {:?}", help.status);
        let text = String::from_utf8_lossy(&help.stdout);
        let read: BTreeSet<String> = environment(&settings).into_iter().collect();
        let mut listed_anywhere = listed(&text);
        for sub in settings.get_subcommands() {
            let sub_help = Command::new(&binary)
                .args([sub.get_name(), "--help"])
                .output()
                .expect("run a subcommand's --help");
            listed_anywhere.extend(listed(&String::from_utf8_lossy(&sub_help.stdout)));
        }
        assert_eq!(
            listed_anywhere, read,
            "{name}: --help lists other environment settings than the code reads"
        );
        let version = Command::new(&binary)
            .arg("--version")
            .output()
            .expect("run --version");
        assert!(version.status.success(), "{name} --version");
        let version = String::from_utf8_lossy(&version.stdout);
        // The release and the commit: `order-service 0.2.0 (commit 1a2b3c4d5e6f)`.
        assert_eq!(
            version.trim(),
            format!("{name} {}", build_info::VERSION),
            "{name} --version"
        );
        assert!(
            version.contains(&format!("{} (commit ", build_info::RELEASE)),
            "{name} --version: {version}"
        );
    }
    assert!(
        listed(
            &command::<payment_service::Args>(&payment_service::DEFAULTS)
                .render_long_help()
                .to_string()
        )
        .contains("PAYMENT_SUCCESS_RATE")
    );
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_code_reads_the_environment_behind_the_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in [
        "apps/order-service/src",
        "apps/payment-service/src",
        "apps/inventory-service/src",
        "apps/saga-coordinator/src",
        "apps/loadgen/src",
        "apps/chaos/src",
        "apps/sagactl/src",
        "libs/service-kit/src",
        "libs/messaging/src",
        "libs/shared-events/src",
        "libs/saga-client/src",
    ] {
        sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 30, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for reader in ["env::var(", "env::var_os(", "env::vars("] {
            assert!(
                !text.contains(reader),
                "{} reads the environment ({reader}) outside its settings: make it a clap \
                 setting with env = \"...\"",
                file.display()
            );
        }
    }
}
