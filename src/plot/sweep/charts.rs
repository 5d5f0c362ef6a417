//! The sweep's charts: one panel per figure against the agent count, one
//! colour per series, all in one SVG. The throughput panel also draws each
//! series' capacity fit (`capacity`).

use plotters::style::RGBColor;

use super::capacity::{curve, Capacity};
use super::points::{Point, Points};
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
        rate.push(line(name.clone(), Mark::LinePoints, |p| p.commits_per_s));
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
                "Hub throughput",
                Axis::log("commits per second (log)"),
                // Below the series: herd's are at the top, the stock
                // servers' fall to the right.
                LegendAt::LowerLeft,
            ),
            rate,
        ),
        (
            frame(
                "Commit latency: P50 solid, P99 dashed",
                Axis::log("ms (log)"),
                LegendAt::UpperLeft,
            ),
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
