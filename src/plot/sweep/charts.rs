//! The sweep's charts: one panel per figure against the agent count, one
//! colour per series, all in one SVG. The throughput panel also draws each
//! series' capacity fit (`capacity`), and where a point has repeats, bars
//! from the smallest to the largest of them (throughput and latency).

use plotters::style::RGBColor;

use super::capacity::{curve, Capacity};
use super::points::{Point, Points, Spread};
use crate::plot::{xy_grid, Axis, Frame, LegendAt, Mark, PlotError, Series, PALETTE};

/// The colour of the legend entry that stands for every series' fit.
const FIT_LEGEND: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// Four charts against the agent count (log scale): commits/s with the
/// fitted curves, P50 and P99, hub requests per commit, CPU per commit;
/// one colour per series.
pub(super) fn charts(
    plotted: &Points,
    caps: &[Capacity],
    title: &str,
) -> Result<String, PlotError> {
    let agents = || Axis::log("agents (log scale)");
    let mut rate = Vec::new();
    let mut latency = Vec::new();
    let mut requests = Vec::new();
    let mut cpu = Vec::new();
    for (i, (name, by_agents)) in plotted.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = |label: String, mark, f: fn(&Point) -> Option<f64>| Series {
            label,
            color,
            mark,
            points: by_agents
                .iter()
                .filter_map(|(a, p)| Some((f64::from(*a), f(p)?)))
                .collect(),
        };
        // A bar per point with repeats that differ: (agents, min), (agents, max).
        let bars = |f: fn(&Point) -> Option<Spread>| Series {
            label: String::new(),
            color,
            mark: Mark::Bars,
            points: by_agents
                .iter()
                .filter_map(|(a, p)| {
                    f(p).filter(|(lo, hi)| p.runs > 1 && lo < hi)
                        .map(|s| (*a, s))
                })
                .flat_map(|(a, (lo, hi))| [(f64::from(a), lo), (f64::from(a), hi)])
                .collect(),
        };
        rate.push(line(name.clone(), Mark::LinePoints, |p| p.commits_per_s));
        rate.push(bars(|p| p.commits_per_s_spread));
        if let Some(cap) = caps.iter().find(|c| &c.series == name) {
            let (solid, dashed) = curve(cap);
            for (mark, points) in [(Mark::Thin, solid), (Mark::ThinDashed, dashed)] {
                rate.push(Series {
                    label: String::new(),
                    color,
                    mark,
                    points,
                });
            }
        }
        latency.push(line(format!("{name} P50"), Mark::LinePoints, |p| p.p50));
        latency.push(line(format!("{name} P99"), Mark::DashedPoints, |p| p.p99));
        latency.push(bars(|p| p.p50_spread));
        latency.push(bars(|p| p.p99_spread));
        requests.push(line(name.clone(), Mark::LinePoints, |p| p.requests));
        cpu.push(line(name.clone(), Mark::LinePoints, |p| p.cpu));
    }
    if !caps.is_empty() {
        // One legend entry for all the fits, in the series' colours.
        rate.push(Series {
            label: "USL fit (thin; dashed past the fitted agents)".into(),
            color: FIT_LEGEND,
            mark: Mark::Thin,
            points: Vec::new(),
        });
    }
    let with_bars = |series: &[Series]| {
        series
            .iter()
            .any(|s| s.mark == Mark::Bars && !s.points.is_empty())
    };
    let rate_title = if with_bars(&rate) {
        "Hub throughput (bars: min–max of repeats)"
    } else {
        "Hub throughput"
    };
    let latency_title = if with_bars(&latency) {
        "Commit latency: P50 solid, P99 dashed (bars: min–max)"
    } else {
        "Commit latency: P50 solid, P99 dashed"
    };
    let frame = |title: &str, y: Axis, legend| Frame {
        title: title.into(),
        size: (560, 400),
        x: agents(),
        y,
        legend,
    };
    let panels = [
        (
            frame(
                rate_title,
                Axis::log("commits per second (log)"),
                // Below the series: herd's are at the top, the stock
                // servers' fall to the right.
                LegendAt::LowerLeft,
            ),
            rate,
        ),
        (
            frame(latency_title, Axis::log("ms (log)"), LegendAt::UpperLeft),
            latency,
        ),
        (
            frame(
                "Hub requests per commit",
                Axis::linear("requests"),
                LegendAt::LowerRight,
            ),
            requests,
        ),
        (
            frame(
                "CPU per commit, all processes",
                Axis::log("ms (log)"),
                LegendAt::LowerRight,
            ),
            cpu,
        ),
    ];
    xy_grid(title, (560, 400), 2, &panels)
}
