//! `hub`: the Fossil-compatible sync server with a linear trunk.
use clap::Parser;

/// Fossil-compatible sync hub with a linear trunk.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("hub: the hub is not implemented yet");
    std::process::ExitCode::from(2)
}
