//! The trial page's charts: each turns the trial's lines and samples into
//! series and draws them through [`crate::plot`]. Times are seconds on the
//! trial clock (0 = herd started the trial).

use crate::plot::{
    lane_chart, xy_chart, Axis, Frame, LaneMark, LaneSpan, Lanes, LegendAt, Mark, PlotError,
    Series, PALETTE,
};
use crate::wire::{ProcessKind, PushResult, Sample, TaskLine, TaskOutcome};

use super::Trial;

/// Width of every chart, in pixels.
const WIDTH: u32 = 1100;
/// Height of an ordinary chart.
const HEIGHT: u32 = 340;
/// Most buckets a rate over time is cut into.
const RATE_BUCKETS: f64 = 240.0;

fn frame(title: &str, x: Axis, y: Axis) -> Frame {
    Frame {
        title: title.to_string(),
        size: (WIDTH, HEIGHT),
        x,
        y,
        legend: LegendAt::UpperRight,
    }
}

fn seconds() -> Axis {
    Axis::linear("seconds since the trial started")
}

/// Every task line of the trial.
fn tasks<'a>(trial: &'a Trial<'_>) -> impl Iterator<Item = &'a TaskLine> + 'a {
    trial.slots.iter().flat_map(|s| s.tasks.iter())
}

/// When each landed task landed, in seconds, oldest first.
fn landings(trial: &Trial<'_>) -> Vec<f64> {
    let mut at: Vec<f64> = tasks(trial)
        .filter(|t| t.outcome == TaskOutcome::Committed)
        .filter_map(|t| t.timeline.as_ref()?.landed_ms())
        .map(|ms| ms / 1000.0)
        .collect();
    at.sort_by(f64::total_cmp);
    at
}

/// Events per second over time, in buckets of at least a quarter second.
fn rate(times_s: &[f64], end_s: f64) -> Vec<(f64, f64)> {
    let width = (end_s / RATE_BUCKETS).max(0.25);
    let buckets = (end_s / width).ceil().max(1.0) as usize;
    let mut counts = vec![0u32; buckets];
    for &t in times_s {
        let i = ((t / width).floor().max(0.0) as usize).min(buckets - 1);
        counts[i] += 1;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &n)| ((i as f64 + 0.5) * width, f64::from(n) / width))
        .collect()
}

/// The trial's last instant any line or sample speaks of, in seconds.
fn end_s(trial: &Trial<'_>) -> f64 {
    let tasks_end = tasks(trial)
        .filter_map(|t| t.timeline.as_ref())
        .map(|t| t.end_ms)
        .fold(0.0, f64::max);
    let samples_end = trial.samples.last().map_or(0.0, |s| s.at_ms);
    tasks_end.max(samples_end) / 1000.0
}

/// Differences of a hub counter between samples, per second.
fn hub_rate(
    samples: &[Sample],
    counter: impl Fn(&crate::wire::HubCounters) -> u64,
) -> Vec<(f64, f64)> {
    let with_hub: Vec<(f64, u64)> = samples
        .iter()
        .filter_map(|s| s.hub.as_ref().map(|h| (s.at_ms, counter(h))))
        .collect();
    with_hub
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| {
            let dt = (w[1].0 - w[0].0) / 1000.0;
            (w[1].0 / 1000.0, w[1].1.saturating_sub(w[0].1) as f64 / dt)
        })
        .collect()
}

/// Commits landed per second and hub requests per second over time.
pub(super) fn throughput(trial: &Trial<'_>) -> Result<String, PlotError> {
    let landed = landings(trial);
    let mut series = vec![Series {
        label: "commits landed / s".into(),
        color: PALETTE[0],
        mark: Mark::Line,
        points: rate(&landed, end_s(trial)),
    }];
    let requests = hub_rate(trial.samples, |h| h.requests);
    if !requests.is_empty() {
        series.push(Series {
            label: "hub sync requests / s".into(),
            color: PALETTE[1],
            mark: Mark::Line,
            points: requests,
        });
    }
    xy_chart(
        &frame("Throughput", seconds(), Axis::linear("per second")),
        &series,
    )
}

/// Every commit's latency at the moment it landed, with P50 and P99.
pub(super) fn latency(trial: &Trial<'_>) -> Result<String, PlotError> {
    let points: Vec<(f64, f64)> = tasks(trial)
        .filter(|t| t.outcome == TaskOutcome::Committed)
        .filter_map(|t| Some((t.timeline.as_ref()?.landed_ms()? / 1000.0, t.commit_ms?)))
        .collect();
    let rule = |name: &str, ms: Option<f64>, color| Series {
        label: ms.map_or_else(|| format!("{name} n/a"), |ms| format!("{name} {ms:.2} ms")),
        color,
        mark: Mark::Rule,
        points: ms.map(|ms| (0.0, ms)).into_iter().collect(),
    };
    let r = trial.report;
    let series = [
        Series {
            label: "one commit".into(),
            color: PALETTE[0],
            mark: Mark::Points,
            points,
        },
        rule("P50", r.p50_commit_ms, PALETTE[2]),
        rule("P99", r.p99_commit_ms, PALETTE[3]),
    ];
    xy_chart(
        &frame(
            "Commit latency (fence check to landed), one point per commit",
            seconds(),
            Axis::log("ms (log scale)"),
        ),
        &series,
    )
}

/// Span kinds of the slot timeline, in legend order.
const CLAIM: usize = 0;
const THINK: usize = 1;
const COMMIT: usize = 2;

/// One row per slot: claim, think and commit as bars, each push's answer
/// as a tick.
pub(super) fn slots(trial: &Trial<'_>) -> Result<String, PlotError> {
    let mut spans = Vec::new();
    let mut marks = Vec::new();
    for (lane, rec) in trial.slots.iter().enumerate() {
        let lane = lane as u32;
        for t in &rec.tasks {
            let Some(tl) = &t.timeline else { continue };
            let s = |ms: f64| ms / 1000.0;
            spans.push(LaneSpan {
                lane,
                from: s(tl.claim_start_ms),
                to: s(tl.claim_end_ms),
                kind: CLAIM,
            });
            if let Some(think_end) = tl.think_end_ms {
                spans.push(LaneSpan {
                    lane,
                    from: s(tl.claim_end_ms),
                    to: s(think_end),
                    kind: THINK,
                });
            }
            if let Some(start) = tl.commit_start_ms {
                let end = tl.pushes.last().map_or(tl.end_ms, |p| p.end_ms);
                spans.push(LaneSpan {
                    lane,
                    from: s(start),
                    to: s(end),
                    kind: COMMIT,
                });
            }
            for push in &tl.pushes {
                marks.push(LaneMark {
                    lane,
                    at: s(push.end_ms),
                    kind: push.result as usize,
                });
            }
        }
    }
    let lanes = Lanes {
        lanes: trial.slots.len() as u32,
        lane_label: "slot".into(),
        span_kinds: vec![
            ("claim".into(), PALETTE[1]),
            (
                "think (the agent's work)".into(),
                plotters::style::RGBColor(0xD6, 0xD6, 0xD6),
            ),
            ("commit".into(), PALETTE[0]),
        ],
        // In the order of `PushResult`'s variants.
        mark_kinds: vec![
            ("push landed".into(), PALETTE[2]),
            ("push refused (trunk moved)".into(), PALETTE[4]),
            ("conflict".into(), PALETTE[3]),
            ("push failed".into(), PALETTE[6]),
            ("merged".into(), PALETTE[5]),
        ],
        spans,
        marks,
    };
    debug_assert_eq!(PushResult::Merged as usize, 4);
    let rows = trial.slots.len() as u32;
    let height = (rows * 14).clamp(260, 1300) + 120;
    let frame = Frame {
        title: "Slots over time".into(),
        size: (WIDTH, height),
        x: seconds(),
        y: Axis::linear("slot"),
        legend: LegendAt::UpperRight,
    };
    lane_chart(&frame, &lanes)
}

/// The hub's writer queue and batches over time, when the hub says.
pub(super) fn hub_queue(trial: &Trial<'_>) -> Option<Result<String, PlotError>> {
    let with_hub: Vec<(f64, &crate::wire::HubCounters)> = trial
        .samples
        .iter()
        .filter_map(|s| Some((s.at_ms / 1000.0, s.hub.as_ref()?)))
        .collect();
    if with_hub.is_empty() {
        return None;
    }
    let backlog = with_hub
        .iter()
        .map(|(t, h)| (*t, h.backlog as f64))
        .collect();
    let waiting: Vec<(f64, f64)> = with_hub
        .iter()
        .map(|(t, h)| (*t, h.pushes_waiting as f64))
        .collect();
    let batch = with_hub
        .windows(2)
        .filter_map(|w| {
            let batches = w[1].1.batches.checked_sub(w[0].1.batches)?;
            let pushes = w[1].1.batched_pushes.checked_sub(w[0].1.batched_pushes)?;
            (batches > 0).then(|| (w[1].0, pushes as f64 / batches as f64))
        })
        .collect();
    let mut series = vec![
        Series {
            label: "writer queue depth (pushes)".into(),
            color: PALETTE[0],
            mark: Mark::Line,
            points: backlog,
        },
        Series {
            label: "mean batch size (pushes per transaction)".into(),
            color: PALETTE[3],
            mark: Mark::Line,
            points: batch,
        },
    ];
    if waiting.iter().any(|p| p.1 > 0.0) {
        series.push(Series {
            label: "pushes waiting for a turn".into(),
            color: PALETTE[4],
            mark: Mark::Line,
            points: waiting,
        });
    }
    Some(xy_chart(
        &frame("The hub's writer", seconds(), Axis::linear("pushes")),
        &series,
    ))
}

/// One line per kind of process, from the samples.
fn per_kind(
    trial: &Trial<'_>,
    figure: impl Fn(&Sample, &crate::wire::KindSample) -> f64,
) -> Vec<Series> {
    ProcessKind::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, &kind)| {
            let points: Vec<(f64, f64)> = trial
                .samples
                .iter()
                .filter_map(|s| Some((s.at_ms / 1000.0, figure(s, s.of(kind)?))))
                .collect();
            (!points.is_empty()).then(|| Series {
                label: kind.label().into(),
                color: PALETTE[i],
                mark: Mark::Line,
                points,
            })
        })
        .collect()
}

/// CPU per kind of process over time, in cores.
pub(super) fn cpu(trial: &Trial<'_>) -> Result<String, PlotError> {
    let series = per_kind(trial, |s, k| {
        if s.interval_ms > 0.0 {
            k.cpu_ms / s.interval_ms
        } else {
            0.0
        }
    });
    xy_chart(
        &frame("CPU by process kind", seconds(), Axis::linear("cores busy")),
        &series,
    )
}

/// Resident memory per kind of process over time.
pub(super) fn memory(trial: &Trial<'_>) -> Result<String, PlotError> {
    let series = per_kind(trial, |_, k| k.rss_kb as f64 / 1024.0);
    xy_chart(
        &frame(
            "Resident memory by process kind (all leaf-agents summed)",
            seconds(),
            Axis::linear("MiB"),
        ),
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_counts_events_per_second_of_bucket() {
        let points = rate(&[0.1, 0.2, 0.3, 0.6, 5.0], 1.0);
        // Quarter-second buckets over one second.
        assert_eq!(points.len(), 4);
        assert_eq!(points[0], (0.125, 8.0));
        assert_eq!(points[1], (0.375, 4.0));
        assert_eq!(points[2], (0.625, 4.0));
        // An event past the end lands in the last bucket.
        assert_eq!(points[3], (0.875, 4.0));
    }
}
