//! `export-schemas` answers `--help` and `--version` and exits 0 without writing anything.

use std::process::Command;

#[test]
fn export_schemas_answers_help_and_version_without_writing_anything() {
    let dir = std::env::temp_dir().join(format!("export-schemas-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a folder");
    let run = |arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_export-schemas"))
            .arg(arg)
            .current_dir(&dir)
            .output()
            .expect("run export-schemas")
    };
    let help = run("--help");
    assert!(help.status.success(), "--help: {:?}", help.status);
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("export-schemas [DIR]"));
    let version = run("--version");
    assert!(version.status.success(), "--version: {:?}", version.status);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("export-schemas {}", env!("CARGO_PKG_VERSION"))
    );
    let unknown = run("--frobnicate");
    assert_eq!(unknown.status.code(), Some(2), "an unknown option");
    let left: Vec<_> = std::fs::read_dir(&dir).expect("the folder").collect();
    assert!(left.is_empty(), "written: {left:?}");
    // A folder given is written to.
    let out = dir.join("events");
    let written = run(out.to_str().expect("a UTF-8 path"));
    assert!(written.status.success(), "{written:?}");
    let files = std::fs::read_dir(&out).expect("the schemas").count();
    assert_eq!(files, shared_events::EventKind::ALL.len());
    std::fs::remove_dir_all(&dir).expect("clean up");
}
