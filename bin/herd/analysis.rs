//! `herd plot` and `herd compare`: what a sweep's runs say, read after
//! the trials.

use std::path::PathBuf;

use clap::Args;
use herd::chain::chain as error_chain;
use herd::exit::{Failure, EXIT_OK};

use crate::print_stdout;

#[derive(Args)]
pub struct CompareArgs {
    /// The runs before (JSON lines).
    a: PathBuf,
    /// The runs after (JSON lines).
    b: PathBuf,
    /// With a single run on either side, the change (in percent of A's
    /// median) a figure must exceed to count.
    #[arg(long, value_name = "PCT", default_value_t = herd::compare::DEFAULT_NOISE_PCT, value_parser = herd::compare::noise_pct)]
    noise: f64,
    /// One JSON object per row instead of the table.
    #[arg(long)]
    json: bool,
    /// Exit 1 when any figure got worse beyond the noise (for CI).
    #[arg(long)]
    fail_on_worse: bool,
}

#[derive(Args)]
pub struct PlotArgs {
    /// The sweep's runs.jsonl.
    runs: PathBuf,
    /// Where the CSV goes (default: runs.csv beside the input).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Where the SVG charts go (default: sweep.svg beside the input).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Where the markdown table goes (default: table.md beside the input).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Where the capacity model goes (default: capacity.json beside the
    /// markdown table).
    #[arg(long)]
    capacity: Option<PathBuf>,
    /// Fit the capacity model only to points with at most N agents;
    /// table.md then also sets the model's prediction for every measured
    /// point beyond N against the measurement.
    #[arg(long, value_name = "N")]
    fit_max_agents: Option<u32>,
    /// The charts' title.
    #[arg(long, default_value = "herd: agent-count sweep")]
    title: String,
}

/// `herd compare`: the table (or JSON rows) on stdout; the exit code says
/// whether the input was good and, with --fail-on-worse, whether anything
/// got worse.
pub fn compare(args: CompareArgs) -> Result<u8, Failure> {
    let comparison = herd::compare::compare(&args.a, &args.b, args.noise)
        .map_err(|e| Failure::usage(error_chain(&e)))?;
    let text = if args.json {
        for line in comparison.left_out() {
            herd::say!("herd compare: {line}");
        }
        comparison
            .json_lines()
            .map_err(|e| Failure::usage(format!("cannot encode a row: {e}")))?
    } else {
        comparison.text()
    };
    print_stdout(&text, "herd compare");
    Ok(if args.fail_on_worse && comparison.any_worse() {
        herd::compare::EXIT_WORSE
    } else {
        EXIT_OK
    })
}

pub fn plot(args: PlotArgs) -> Result<u8, Failure> {
    let dir = args.runs.parent().map(PathBuf::from).unwrap_or_default();
    let markdown = args.markdown.unwrap_or_else(|| dir.join("table.md"));
    let outputs = herd::plot::sweep::Outputs {
        csv: args.csv.unwrap_or_else(|| dir.join("runs.csv")),
        svg: args.svg.unwrap_or_else(|| dir.join("sweep.svg")),
        capacity: args
            .capacity
            .unwrap_or_else(|| markdown.with_file_name("capacity.json")),
        markdown,
        title: args.title,
        fit_max_agents: args.fit_max_agents,
    };
    herd::plot::sweep::plot(&args.runs, &outputs).map_err(|e| Failure::usage(error_chain(&e)))?;
    herd::say!(
        "herd: wrote {}, {}, {}, {}",
        outputs.csv.display(),
        outputs.svg.display(),
        outputs.markdown.display(),
        outputs.capacity.display()
    );
    Ok(EXIT_OK)
}
