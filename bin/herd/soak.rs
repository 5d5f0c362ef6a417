//! `herd soak`: trials back to back under a seeded nemesis, each checked.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use herd::exit::{Failure, EXIT_FAILED, EXIT_OK};
use herd::soak::{self, SoakOptions};

use crate::print_stdout;

#[derive(Args)]
pub struct SoakArgs {
    /// Start trials until this many minutes have passed (the last one
    /// runs to its end).
    #[arg(long, default_value_t = 2.0, value_parser = positive)]
    minutes: f64,
    /// The nemesis's seed: the same seed gives the same trials with the
    /// same faults at the same points.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where trials.jsonl (one line per trial: its plan, its faults and
    /// its checks), summary.json and the files of failed trials go.
    #[arg(long, default_value = "soak")]
    out: PathBuf,
    /// herd's --timeout for each trial, in seconds; a trial that runs 30 s
    /// past it counts as hung.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..))]
    trial_timeout: u64,
    /// The real `fossil` binary, for `fossil test-integrity` on each hub
    /// (default: PATH, then .tools/bin beside the project).
    #[arg(long)]
    fossil: Option<PathBuf>,
    /// Keep every trial on loopback (no simulated hosts, so no host cuts
    /// and no NATS cluster), as without root.
    #[arg(long)]
    no_hosts: bool,
    /// Run only trial N of the seed (a failed one, to replay it); its
    /// files are kept in OUT/work/trial-N when it fails.
    #[arg(long, value_name = "N")]
    trial: Option<u64>,
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a positive number of minutes")),
    }
}

/// Runs the soak; prints one line per trial on stderr and the summary as
/// one JSON line on stdout. Exit 1 when anything was lost, doubled, hung,
/// panicked or left running, or a verdict failed.
pub fn soak(args: SoakArgs) -> Result<u8, Failure> {
    let herd_binary = std::env::current_exe()
        .map_err(|e| Failure::usage(format!("cannot find the herd binary: {e}")))?;
    let fossil = args.fossil.or_else(|| find_fossil(&herd_binary));
    if fossil.is_none() {
        herd::say!("herd soak: no fossil binary found; test-integrity is not run");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let hosts = !args.no_hosts && root && herd::supervisor::hosts::remove_stale().is_ok();
    if !hosts && !args.no_hosts {
        herd::say!("herd soak: no simulated hosts (needs root and ip); host cuts are not drawn");
    }
    let opts = SoakOptions {
        duration: Duration::from_secs_f64(args.minutes * 60.0),
        seed: args.seed,
        out: args.out,
        herd: herd_binary,
        fossil,
        trial_timeout: Duration::from_secs(args.trial_timeout),
        hosts,
        only: args.trial,
    };
    let result = soak::run(&opts, |t| {
        let faults: Vec<String> = t
            .faults
            .iter()
            .map(|f| format!("{}{}", f.fault, if f.done { "" } else { " (not done)" }))
            .collect();
        let trunk = t.trunk.as_ref().map_or("no hub".to_string(), |c| {
            format!("{} acked, {} on trunk", c.acked, c.on_trunk)
        });
        let verdict = if t.passed() {
            "ok".to_string()
        } else {
            t.failures().join("; ")
        };
        herd::say!(
            "soak: trial {} ({}×{}, {} host{}): {} → exit {}, {:.1} s, {trunk}: {verdict}",
            t.plan.index,
            t.plan.agents,
            t.plan.tasks,
            t.plan.hosts,
            if t.plan.hosts == 1 { "" } else { "s" },
            faults.join(", "),
            t.exit.map_or("-".into(), |c| c.to_string()),
            t.seconds
        );
    });
    let summary = result.map_err(|e| Failure::usage(herd::chain::chain(&e)))?;
    print_stdout(
        &(serde_json::to_string(&summary).unwrap_or_default() + "\n"),
        "herd soak",
    );
    Ok(if summary.passed() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `fossil` on PATH, else in `.tools/bin` of the project the herd binary
/// was built in (target/<profile>/herd).
fn find_fossil(herd: &std::path::Path) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("fossil"));
    let beside = herd
        .ancestors()
        .nth(3)
        .map(|root| root.join(".tools/bin/fossil"));
    on_path.chain(beside).find(|p| p.is_file())
}
