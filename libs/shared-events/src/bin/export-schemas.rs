//! `export-schemas [DIR]`: writes the JSON Schema of every event to `docs/events` (or DIR).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut dir = None;
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("-V" | "--version") => {
                println!("export-schemas {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            Some(flag) if flag.starts_with('-') => {
                eprintln!("export-schemas: unknown option {flag}\n\n{USAGE}");
                return ExitCode::from(2);
            }
            _ if dir.is_some() => {
                eprintln!("export-schemas: one folder at most\n\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let dir = dir.unwrap_or_else(shared_events::schema::default_dir);
    if let Err(e) = shared_events::schema::write_all(&dir) {
        eprintln!("export-schemas: writing to {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    println!(
        "wrote {} schemas to {}",
        shared_events::EventKind::ALL.len(),
        dir.display()
    );
    ExitCode::SUCCESS
}

const USAGE: &str = "\
export-schemas [DIR]

Writes the JSON Schema of every event of the contract to DIR (default: docs/events of the
repository), one file per event and major. A test compares the checked-in files with the code.

  -h, --help      this text
  -V, --version   the version";
