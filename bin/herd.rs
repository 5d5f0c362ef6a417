//! `herd`: runs a thundering-herd trial against a hub and N leaf-agents.
//!
//! Exit codes: 0 the trial passed every check; 1 it ran and a check failed
//! (the reason is on stderr); 2 bad flags or an unusable environment.
//! `herd plot` and `herd compare` exit 2 on unreadable input; `herd compare
//! --fail-on-worse` exits 1 when a figure got worse.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use herd::chain::chain as error_chain;
use herd::exit::{Failure, EXIT_OK, EXIT_USAGE};
use herd::spec::TrialSpec;
use herd::supervisor::{self, SupervisorError, TrialConfig, TrialReport};
use herd::telemetry::{self, W3c};
use tracing::Instrument;

#[path = "herd/analysis.rs"]
mod analysis;
#[path = "herd/soak.rs"]
mod soak;

/// Thundering-herd trial harness for a hub-and-leaf Fossil architecture.
///
/// `herd run` starts nats-server, a hub and one leaf-agent process per slot,
/// drives every slot through its tasks, checks the hub's own count and prints
/// a summary. When the hub or nats-server exits mid-trial, herd starts it
/// again on the same port and store (at most 3 attempts each) and counts
/// the restarts; when it cannot, it stops the trial and says which died, how
/// and when. Exit codes: 0 every check passed; 1 a check failed (reason on
/// stderr); 2 bad flags or environment (a used --workdir, a herd the machine
/// cannot hold).
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one trial and print its summary.
    Run(Box<RunArgs>),
    /// Turn a sweep's runs into charts, a CSV and a markdown table.
    ///
    /// Reads the JSON lines scripts/sweep writes (one `herd run --json`
    /// report per line, plus the sweep's `repeat`, `exit_code`, `zero_think`
    /// and `side_by_side`) and writes, beside the input unless told
    /// otherwise: runs.csv (one row per run), sweep.svg (commits/s, P50 and
    /// P99, requests per commit and CPU per commit against the agent count,
    /// log axes, one series per hub kind, landing strategy, leaf mode and
    /// catch-up; a point is the median over repeats) and table.md (the same
    /// figures, plus hub ÷ leaf landing, full ÷ sparse leaves, stream ÷ pull
    /// catch-up, herd ÷ git and herd ÷ fossil tables when the sweep ran both;
    /// with more than one --overlap share, also overlap.svg). Where a point
    /// has repeats, bars span the smallest to the largest of them.
    ///
    /// Each series with commits/s at 3 agent counts or more also gets a
    /// capacity model: the Universal Scalability Law, X(N) = λN / (1 +
    /// σ(N − 1) + κN(N − 1)), fitted to its medians (σ contention, κ
    /// coherency, λ one agent's commits/s, N_max = √((1 − σ)/κ) the agent
    /// count of peak throughput). It is written to capacity.json (a list
    /// of {series, sigma, kappa, lambda, n_max, x_max, r2, points}; n_max
    /// is null when the fit has no peak, and x_max is then the ceiling
    /// λ/σ, or null), to a table at the end of table.md and as a thin curve on
    /// the throughput chart, dashed past the agents fitted.
    Plot(analysis::PlotArgs),
    /// Compare two sets of runs point by point: better, worse or noise.
    ///
    /// Reads two files of `herd run --json` lines (a sweep's runs.jsonl, or
    /// single trials' reports), groups each file's runs into points (series,
    /// agents, tasks; failed runs left out and counted) and prints, for each
    /// point in both files, commits/s, P50 and P99 commit ms, CPU ms per
    /// commit and hub requests per commit: each file's median (with repeats,
    /// its range), the change from A to B and a verdict. With two runs or
    /// more on each side, a change counts when the ranges do not overlap and
    /// Welch's t-test gives p < 0.05; with a single run on a side, when the
    /// medians differ by more than --noise percent. Points in one file only
    /// are listed as such. Exit codes: 0 compared; 1 with --fail-on-worse, a
    /// figure got worse; 2 bad flags or an unreadable or bad input line.
    Compare(analysis::CompareArgs),
    /// Run trials back to back under a seeded nemesis and check each.
    ///
    /// Each trial (4–8 agents, 20–40 tasks, one host or three with a NATS
    /// cluster of 3) gets one to three faults drawn from the seed, each at
    /// a point after its first leaf starts: SIGKILL or SIGSTOP (then
    /// SIGCONT) of the hub, a nats-server or a leaf; a host's link cut
    /// (`--partition-host`) or slowed (`--slow-host`); a NATS cluster member killed
    /// (`--kill-nats-node`); the work directory's file system (a 96 MiB
    /// tmpfs) filled. The same seed gives the same trials and faults. After
    /// each trial the checker reads the hub's repository with plain SQL and
    /// holds it against every check-in the leaves were told landed (herd's
    /// `--acks`): each on trunk, each task on trunk once, the trunk linear,
    /// `fossil test-integrity` passing; no panic in any log; nothing of the
    /// trial left running; the trial ended by itself within its timeout.
    /// Prints one line per trial on stderr and, at the end, one JSON line:
    /// trials, faults, by_kind, lost, doubled, hung, panics, left_running,
    /// acked, failed_verdicts. Exit codes: 0 every check held; 1 a check
    /// failed; 2 the soak could not run. Needs root to mount the small file
    /// system and make hosts (without it, those faults are not drawn or
    /// not done).
    Soak(soak::SoakArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    spec: TrialSpec,
    /// Keep the trial's files here (hub.fossil, slot-i/, logs/, report.html)
    /// instead of a temporary directory. It must not exist yet or be empty:
    /// a work directory holds one trial (there is no resuming).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Write the trial's report to this HTML file: one self-contained page
    /// (no network needed to open it) with the settings, the summary and
    /// charts of how the trial went — throughput, every commit's latency, a
    /// timeline per slot, the hub's writer queue, CPU and memory per process
    /// kind. Default with --workdir: DIR/report.html.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Append every check-in a leaf reports landed to FILE, one JSON line
    /// each (`{"slot":…,"task":…,"checkin":…}`), written as it is heard:
    /// for a checker outside herd to hold against the hub's repository
    /// (`herd soak` does). Put it off the work directory's file system when
    /// that may fill.
    #[arg(long, value_name = "FILE")]
    acks: Option<PathBuf>,
    /// Use an existing NATS server (with JetStream) instead of starting one.
    #[arg(long, env = "HERD_NATS_URL")]
    nats_url: Option<String>,
    /// The nats-server binary to start (default: $NATS_SERVER, PATH, then .tools/bin).
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Simulated hosts: H Linux network namespaces on one bridge (needs
    /// root), slots round-robin over them, the hub on host 0, a NATS server
    /// on each (see --nats-cluster). 1 runs everything on loopback.
    #[arg(long, env = "HERD_HOSTS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=250))]
    hosts: u32,
    /// NATS servers forming a JetStream cluster, one on each of hosts
    /// 0..N, buckets and the tip stream replicated N ways; the other hosts
    /// run a leaf node of the cluster. Default: 3 with 3 hosts or more, else 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=250))]
    nats_cluster: Option<u32>,
    /// Kill (SIGKILL) one NATS cluster member (not the hub's host's) this
    /// many seconds after the leaves start. Needs a cluster of 3 or more.
    #[arg(long, value_name = "SECS")]
    kill_nats_node: Option<f64>,
    /// Cut host I's link at SECS for DURATION seconds (e.g. 2:5:5): its
    /// processes keep running but reach nothing until the link is back.
    #[arg(long, value_name = "I:SECS:DURATION")]
    partition_host: Option<supervisor::Partition>,
    /// Delay every packet a host sends by MS milliseconds, each drawn
    /// evenly from MS ± JITTER_MS (e.g. 50:10), as when agents run far
    /// from their hub: a round trip between two hosts then takes twice
    /// MS. Needs --hosts 2 or more; herd then carries the hosts' packets
    /// itself (TUN devices and a switch in herd), so no `tc netem` is
    /// needed.
    #[arg(long, value_name = "MS[:JITTER_MS]", value_parser = supervisor::links::parse_delay)]
    link_delay: Option<(Duration, Duration)>,
    /// Drop this percentage (0–50) of the packets each host sends.
    /// Needs --hosts 2 or more.
    #[arg(long, value_name = "PCT", value_parser = supervisor::links::parse_loss)]
    link_loss: Option<f64>,
    /// Slow host I's link at SECS for DURATION seconds by DELAY_MS more
    /// milliseconds per packet (e.g. 1:5:10:200). Needs --hosts 2 or more.
    #[arg(long, value_name = "I:SECS:DURATION:DELAY_MS")]
    slow_host: Option<supervisor::links::SlowHost>,
    /// Start each leaf-agent through this shell command (run with sh -c):
    /// {cmd} becomes the leaf-agent's command line (quoted), {slot} its
    /// slot, {host} its host's address, {netns} its host's namespace
    /// (with --hosts). The leaf's secrets are in the launcher's
    /// environment, never in its argv; a launcher that crosses machines
    /// must carry them (ssh: SendEnv/AcceptEnv HERD_*). Example:
    /// 'ssh {host} {cmd}'.
    #[arg(long, value_name = "TEMPLATE")]
    leaf_launcher: Option<String>,
    /// Print one JSON object with every figure instead of the summary block.
    #[arg(long)]
    json: bool,
    /// Abort the trial after this many seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    /// Copy every child's stderr to the terminal, prefixed by its slot.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    herd::exit::finish("herd", main_result())
}

/// The subcommand the flags ask for; its exit code, or why it failed (the
/// one line `main` prints).
fn main_result() -> Result<u8, Failure> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return bad_flags(&e),
    };
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Plot(args) => analysis::plot(args).map_err(|f| f.by("herd plot")),
        Command::Compare(args) => analysis::compare(args).map_err(|f| f.by("herd compare")),
        Command::Soak(args) => soak::soak(args).map_err(|f| f.by("herd soak")),
    }
}

/// `herd run`: the trial, its report on stdout, its verdict as the exit
/// code.
fn run(args: RunArgs) -> Result<u8, Failure> {
    let json = args.json;
    let report = trial(args)?;
    print_report(&report, json)?;
    match report.verdict() {
        None => Ok(EXIT_OK),
        Some(why) => Err(Failure::failed(format!("trial failed: {why}"))),
    }
}

/// Flags clap refused: one line, `herd: <why>`, and [`EXIT_USAGE`];
/// `--help` and `--version` print as clap prints them.
fn bad_flags(e: &clap::Error) -> Result<u8, Failure> {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return Ok(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    Err(Failure::usage(first.trim_start_matches("error: ")))
}

/// Checks the surroundings, starts telemetry and runs the trial the flags
/// ask for. `Err` says why no trial could run.
fn trial(args: RunArgs) -> Result<TrialReport, Failure> {
    let bin_dir = supervisor::cli::bin_dir().map_err(Failure::usage)?;
    let mut config = trial_config(args, bin_dir).map_err(Failure::usage)?;
    config.check().map_err(Failure::usage)?;
    // Refuse to run a trial whose traces would go nowhere.
    if let Some(endpoint) = telemetry::endpoint() {
        telemetry::preflight(&endpoint).map_err(|e| {
            Failure::usage(format!(
                "{e}; fix OTEL_EXPORTER_OTLP_ENDPOINT or unset it to run without telemetry"
            ))
        })?;
    }
    // One thread: children are forked from it, and their parent-death
    // signal is tied to the thread that forked them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))?;
    let telemetry = telemetry::init("herd", None).map_err(|e| Failure::usage(error_chain(&e)))?;
    let root = root_span(&config.spec);
    config.trace = W3c::of(&root);
    let report = runtime.block_on(supervise(config).instrument(root));
    drop(telemetry);
    report.map_err(|e| Failure::usage(error_chain(&e)))
}

/// The span the whole trial runs in, with the settings that tell trials
/// apart.
fn root_span(spec: &TrialSpec) -> tracing::Span {
    tracing::info_span!(
        "herd.run",
        agents = spec.agents,
        tasks = spec.tasks,
        mode = %spec.mode,
        seed = spec.seed,
        hub_kind = %spec.hub_kind,
        landing = %spec.landing,
        leaf = %spec.leaf,
        catch_up = %spec.catch_up
    )
}

/// The trial's settings from the flags: durations from seconds, the report
/// page placed, progress shown only to a terminal and not with `--json`;
/// no trace context yet (telemetry starts once the settings are checked).
fn trial_config(args: RunArgs, bin_dir: PathBuf) -> Result<TrialConfig, String> {
    let report = supervisor::cli::report_page(args.report, args.workdir.as_deref())?;
    Ok(TrialConfig {
        spec: args.spec,
        workdir: args.workdir,
        nats_url: args.nats_url,
        nats_server: args.nats_server,
        timeout: args.timeout.map(Duration::from_secs),
        verbose: args.verbose,
        progress: !args.json && std::io::stderr().is_terminal(),
        report,
        acks: args.acks,
        hosts: args.hosts,
        nats_cluster: args.nats_cluster,
        kill_nats_node: args
            .kill_nats_node
            .map(|s| Duration::from_secs_f64(s.max(0.0))),
        partition: args.partition_host,
        links: supervisor::links::LinkShape {
            delay: args.link_delay.map_or(Duration::ZERO, |(d, _)| d),
            jitter: args.link_delay.map_or(Duration::ZERO, |(_, j)| j),
            loss: args.link_loss.unwrap_or(0.0),
        },
        slow_host: args.slow_host,
        leaf_launcher: args.leaf_launcher,
        bin_dir,
        trace: W3c::default(),
    })
}

/// The supervisor's run of `config`, asked to stop by Ctrl-C or SIGTERM.
async fn supervise(config: TrialConfig) -> Result<TrialReport, SupervisorError> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(forward_signals(tx));
    supervisor::run(config, rx).await
}

/// Prints the report on stdout: the summary block, or one JSON line with
/// `--json`. `Err` when it cannot be encoded.
fn print_report(report: &TrialReport, json: bool) -> Result<(), Failure> {
    let text = if json {
        let json = serde_json::to_string(report)
            .map_err(|e| Failure::usage(format!("cannot encode the report: {e}")))?;
        json + "\n"
    } else {
        report.render()
    };
    print_stdout(&text, "herd");
    Ok(())
}

/// Writes `text` to stdout. A reader that went away (a closed pipe) is not
/// worth a panic; the exit code still tells the verdict. `who` names the
/// command in the complaint.
fn print_stdout(text: &str, who: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        herd::say!("{who}: cannot print: {e}");
    }
}

/// Turns every Ctrl-C or SIGTERM into a stop request for the supervisor.
async fn forward_signals(tx: tokio::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if tx.send(()).await.is_err() {
            return;
        }
    }
}
