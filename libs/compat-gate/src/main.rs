//! `compat-gate [--verbose] [DIR]`: the compatibility gate on the repository that holds DIR (by
//! default the current folder). Exits 0 when compatible with the last release, 1 on a breach
//! (each printed), 2 when it cannot decide. See docs/compatibility.md.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut verbose = false;
    let mut dir = PathBuf::from(".");
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("-v" | "--verbose") => verbose = true,
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("-V" | "--version") => {
                println!("compat-gate {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            Some(flag) if flag.starts_with('-') => {
                eprintln!("compat-gate: unknown option {flag}\n\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => dir = PathBuf::from(arg),
        }
    }
    match compat_gate::run(&dir) {
        Ok(outcome) => {
            print!("{}", outcome.text(verbose));
            if outcome.report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("compat-gate: {e}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "\
compat-gate [--verbose] [DIR]

Compares every event schema (docs/events) and OpenAPI document (docs/openapi) of the working tree
with those of the last release in docs/releases.md, in the git repository that holds DIR (default:
the current folder). Within a major only additive, optional changes pass.

  -v, --verbose   also print the additive changes
  -h, --help      this text
  -V, --version   the version

Exit status: 0 compatible, 1 breaches (each printed), 2 cannot decide (e.g. the release's commit
is not in a shallow clone). See docs/compatibility.md.";
