//! `herd`: runs a thundering-herd trial (see `herd --help`).
use clap::Parser;

/// Thundering-herd trial harness for a hub-and-leaf Fossil architecture.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("herd: trials are not implemented yet");
    std::process::ExitCode::from(2)
}
