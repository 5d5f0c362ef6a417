//! `leaf-agent`: one slot of a trial.
use clap::Parser;

/// One leaf-agent slot: clone, claim, commit, close.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _cli = Cli::parse();
    eprintln!("leaf-agent: the leaf-agent is not implemented yet");
    std::process::ExitCode::from(2)
}
