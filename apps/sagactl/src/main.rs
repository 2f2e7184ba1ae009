//! `sagactl`: the operator's command line. See `sagactl --help` and docs/operations.md.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = sagactl::Cli::parse();
    let mut out = String::new();
    let result = sagactl::run(cli, &mut out).await;
    print!("{out}");
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
