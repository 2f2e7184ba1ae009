//! The files under deploy/ stay true to the binaries: each environment file example sets only
//! settings its service reads, each systemd unit runs its service with both environment files,
//! restarts it when it fails, stops it with SIGTERM and starts it after the network and the
//! database.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use service_kit::settings::environment;

use crate::common::services;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The variables an environment file sets, commented-out examples included.
fn variables(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .map(|(name, _)| name.to_owned())
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

#[test]
fn every_environment_file_sets_only_settings_its_service_reads() {
    let shared = variables(&read(&deploy().join("env/saga.env.example")));
    assert!(shared.contains("NATS_URL") && shared.contains("NATS_STREAM_REPLICAS"));
    for (name, settings) in services() {
        let reads: BTreeSet<String> = environment(&settings).into_iter().collect();
        let own = variables(&read(&deploy().join(format!("env/{name}.env.example"))));
        assert!(own.contains("DATABASE_URL"), "{name}.env.example");
        for variable in shared.iter().chain(&own) {
            assert!(
                reads.contains(variable),
                "deploy/env sets {variable} for {name}, which reads no such setting"
            );
        }
    }
}

#[test]
fn every_unit_restarts_on_failure_stops_with_sigterm_and_starts_after_network_and_database() {
    for (name, _) in services() {
        let unit = read(&deploy().join(format!("systemd/{name}.service")));
        let lines: Vec<&str> = unit.lines().map(str::trim).collect();
        for expected in [
            format!("ExecStart=/usr/local/bin/{name}"),
            "EnvironmentFile=/etc/saga/saga.env".to_owned(),
            format!("EnvironmentFile=/etc/saga/{name}.env"),
            "Restart=on-failure".to_owned(),
            "KillSignal=SIGTERM".to_owned(),
            "Wants=network-online.target".to_owned(),
        ] {
            assert!(
                lines.contains(&expected.as_str()),
                "{name}.service lacks {expected}"
            );
        }
        let after = lines
            .iter()
            .find(|l| l.starts_with("After="))
            .unwrap_or_else(|| panic!("{name}.service has no After="));
        for unit in ["network-online.target", "postgresql.service"] {
            assert!(after.contains(unit), "{name}.service: {after}");
        }
    }
}
