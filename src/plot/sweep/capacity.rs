//! The sweep's capacity model: the Universal Scalability Law
//! ([`crate::plot::usl`]) fitted to each series' commits/s against the
//! agent count, from the same medians the charts draw. It is written as
//! `capacity.json`, as tables at the end of table.md (the fit, and with a
//! fit limit its predictions beyond the limit against the measured
//! points) and as a curve per series on the throughput chart (`charts`).
//!
//! capacity.json is a list with one object per series that could be
//! fitted (3 agent counts or more with a rate):
//!
//! ```json
//! [{"series": "herd, hub landing", "sigma": 0.031, "kappa": 0.00052,
//!   "lambda": 171.2, "n_max": 43.1, "x_max": 480.4, "r2": 0.97, "points": 8}]
//! ```
//!
//! `n_max` is the agent count of peak throughput, √((1 − σ)/κ) and at
//! least 1; `null` when the fit has no peak (κ = 0: throughput rises
//! forever). `x_max` is the throughput at `n_max`, or without a peak the
//! ceiling λ/σ it approaches (`null` when σ = 0 too). `r2` is `null` when
//! every fitted rate is the same.

use std::fmt::Write as _;

use serde::Serialize;

use super::points::Points;
use crate::plot::usl::{fit, Fit, Peak};

/// One series' fit.
#[derive(Debug, Clone)]
pub(super) struct Capacity {
    /// The series.
    pub(super) series: String,
    /// The model and how well it fits.
    pub(super) fit: Fit,
    /// The smallest and largest agent count fitted.
    pub(super) agents: (u32, u32),
}

/// One entry of capacity.json.
#[derive(Serialize)]
struct Entry<'a> {
    series: &'a str,
    sigma: f64,
    kappa: f64,
    lambda: f64,
    n_max: Option<f64>,
    x_max: Option<f64>,
    r2: Option<f64>,
    points: usize,
}

/// The fit of every series with enough points, using only the points at
/// `fit_max_agents` or fewer when given.
pub(super) fn capacities(plotted: &Points, fit_max_agents: Option<u32>) -> Vec<Capacity> {
    let mut out = Vec::new();
    for (series, by_agents) in plotted {
        let fitted: Vec<(u32, f64)> = by_agents
            .iter()
            .filter(|(a, _)| **a >= 1 && fit_max_agents.map_or(true, |max| **a <= max))
            .filter_map(|(a, p)| Some((*a, p.commits_per_s?)))
            .collect();
        let xy: Vec<(f64, f64)> = fitted.iter().map(|&(a, x)| (f64::from(a), x)).collect();
        let (Some(fit), Some(first), Some(last)) = (fit(&xy), fitted.first(), fitted.last()) else {
            continue;
        };
        out.push(Capacity {
            series: series.clone(),
            fit,
            agents: (first.0, last.0),
        });
    }
    out
}

/// The peak as capacity.json says it: `(n_max, x_max)`.
fn peak(fit: &Fit) -> (Option<f64>, Option<f64>) {
    match fit.model.peak() {
        Peak::At { agents, rate } => (Some(agents), Some(rate)),
        Peak::Ceiling(rate) => (None, Some(rate)),
        Peak::Unbounded => (None, None),
    }
}

/// capacity.json: a list, one object per fitted series.
pub(super) fn json(caps: &[Capacity]) -> String {
    let entries: Vec<Entry> = caps
        .iter()
        .map(|c| {
            let (n_max, x_max) = peak(&c.fit);
            Entry {
                series: &c.series,
                sigma: c.fit.model.sigma,
                kappa: c.fit.model.kappa,
                lambda: c.fit.model.lambda,
                n_max,
                x_max,
                r2: c.fit.r2,
                points: c.fit.points,
            }
        })
        .collect();
    // Plain numbers, strings and options: serializing cannot fail.
    serde_json::to_string_pretty(&entries).unwrap_or_default() + "\n"
}

/// `v` with three significant digits, without an exponent.
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    // The exponent after rounding to three digits, which log10 of a value
    // just below a power of ten would miss.
    let rounded = format!("{v:.2e}");
    let exponent: i32 = rounded
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let decimals = (2 - exponent).max(0) as usize;
    format!("{v:.decimals$}")
}

/// The capacity table, then with `fit_max_agents` the predictions beyond
/// it; appended to `md`.
pub(super) fn markdown(
    md: &mut String,
    caps: &[Capacity],
    plotted: &Points,
    fit_max_agents: Option<u32>,
) {
    let limit = fit_max_agents.map_or(String::new(), |n| format!(", agents ≤ {n}"));
    let _ = write!(
        md,
        "\nCapacity (Universal Scalability Law fit to commits/s{limit}).\n\n"
    );
    if caps.is_empty() {
        md.push_str("No series has commits/s at 3 agent counts or more to fit.\n");
        return;
    }
    md.push_str(
        "| series | σ | κ | λ | N_max | X_max | r² |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in caps {
        let m = c.fit.model;
        let (n_max, x_max) = match c.fit.model.peak() {
            Peak::At { agents, rate } => (format!("{agents:.1}"), format!("{rate:.1}")),
            Peak::Ceiling(rate) => ("none".into(), format!("{rate:.1} (ceiling)")),
            Peak::Unbounded => ("none".into(), "none".into()),
        };
        let r2 = c.fit.r2.map_or("n/a".into(), |r| format!("{r:.3}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {n_max} | {x_max} | {r2} |",
            c.series,
            significant(m.sigma),
            significant(m.kappa),
            m.lambda,
        );
    }
    md.push_str(
        "\nX(N) = λN / (1 + σ(N − 1) + κN(N − 1)) fitted to the medians by least squares: \
         σ is contention (the share of work that queues for one shared thing), κ coherency \
         (what every pair of agents pays to agree), λ the commits/s of one agent alone, \
         N_max = √((1 − σ)/κ) the agent count of peak throughput and X_max the commits/s \
         there (none: no peak, the rate rises toward the ceiling λ/σ), r² the share of the \
         rates' variance the fit explains.\n",
    );
    if let Some(max) = fit_max_agents {
        predictions(md, caps, plotted, max);
    }
}

/// The fitted model's commits/s at each measured point beyond `max`
/// agents, against the measured median.
fn predictions(md: &mut String, caps: &[Capacity], plotted: &Points, max: u32) {
    let _ = write!(
        md,
        "\nPredictions of the fit on agents ≤ {max} for the points beyond it.\n\n"
    );
    let mut rows = String::new();
    for c in caps {
        let beyond = plotted.get(&c.series).into_iter().flatten();
        for (agents, p) in beyond.filter(|(a, _)| **a > max) {
            let Some(measured) = p.commits_per_s else {
                continue;
            };
            let predicted = c.fit.model.rate(f64::from(*agents));
            let error = if measured > 0.0 {
                format!("{:+.1}", (predicted - measured) / measured * 100.0)
            } else {
                "n/a".into()
            };
            let _ = writeln!(
                rows,
                "| {} | {agents} | {predicted:.1} | {measured:.1} | {error} |",
                c.series
            );
        }
    }
    if rows.is_empty() {
        let _ = writeln!(
            md,
            "No fitted series has a measured point beyond {max} agents."
        );
        return;
    }
    md.push_str(
        "| series | agents | predicted commits/s | measured commits/s | error % |\n\
         |---|---:|---:|---:|---:|\n",
    );
    md.push_str(&rows);
    md.push_str("\nerror % = (predicted − measured) ÷ measured.\n");
}

/// A stretch of a fitted curve: (agents, commits/s) points.
pub(super) type Stretch = Vec<(f64, f64)>;

/// The fitted curve of `cap` to draw: solid over the agents fitted, then
/// dashed past the largest of them, to twice it or to the peak when
/// later, at most eight times it. Points spaced evenly on a log axis.
pub(super) fn curve(cap: &Capacity) -> (Stretch, Stretch) {
    let (lo, hi) = (f64::from(cap.agents.0), f64::from(cap.agents.1));
    let n_max = match cap.fit.model.peak() {
        Peak::At { agents, .. } => agents,
        _ => 0.0,
    };
    let end = (2.0 * hi).max(n_max).min(8.0 * hi);
    let samples = |from: f64, to: f64, count: u32| -> Stretch {
        (0..=count)
            .map(|i| {
                let n = from * (to / from).powf(f64::from(i) / f64::from(count));
                (n, cap.fit.model.rate(n))
            })
            .collect()
    };
    (samples(lo, hi, 60), samples(hi, end, 30))
}
