//! The trial report: one self-contained HTML page per trial.
//!
//! The page holds everything inline (styles, charts as SVG, tables): it
//! opens from disk with no network access and no script. It shows the
//! trial's settings and summary, then how the trial went: throughput,
//! every commit's latency, a timeline per slot, the hub's writer, CPU and
//! memory by kind of process, and the slowest slots and commits (with their
//! trace context when spans were exported).

mod charts;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::summary::{SlotRecord, TrialReport};
use super::{SupervisorError, TrialConfig};
use crate::plot::PlotError;
use crate::wire::{Sample, TaskLine, TaskOutcome};

/// Rows in each "slowest" table.
const SLOWEST: usize = 10;

/// What a trial page shows.
pub(super) struct Trial<'a> {
    /// How the trial was asked for.
    pub config: &'a TrialConfig,
    /// Its summary.
    pub report: &'a TrialReport,
    /// What each slot said, by slot.
    pub slots: &'a [SlotRecord],
    /// The sampler's series.
    pub samples: &'a [Sample],
}

/// Writes the page to `path`: into `PATH.partial` beside it, renamed into
/// place, so a reader never sees half a page.
pub(super) fn write(path: &Path, trial: &Trial<'_>) -> Result<(), SupervisorError> {
    let html = render(trial).map_err(|e| {
        SupervisorError::io(
            format!("draw the report {}", path.display()),
            std::io::Error::other(e),
        )
    })?;
    let io = |e| SupervisorError::io(format!("write the report {}", path.display()), e);
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written = std::fs::File::create(&partial)
        .and_then(|mut file| {
            file.write_all(html.as_bytes())
                .and_then(|()| file.sync_all())
        })
        .and_then(|()| std::fs::rename(&partial, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(io(e));
    }
    Ok(())
}

/// The page as HTML text.
pub(super) fn render(trial: &Trial<'_>) -> Result<String, PlotError> {
    let r = trial.report;
    let mut h = String::with_capacity(1 << 20);
    let title = format!(
        "herd trial: {} agents × {} tasks, {} hub, {} landing",
        r.agents, r.tasks, r.hub_kind, r.landing
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let verdict = match r.verdict() {
        None => "<p class=\"pass\">Passed: every check held.</p>".to_string(),
        Some(why) => format!("<p class=\"fail\">Failed: {}</p>", escape(&why)),
    };
    h.push_str(&verdict);
    h.push_str("<div class=\"cols\"><section><h2>Settings</h2>");
    h.push_str(&settings(trial.config));
    h.push_str("</section><section><h2>Result</h2><pre>");
    h.push_str(&escape(&r.render()));
    h.push_str("</pre></section></div>\n");

    figure(
        &mut h,
        "throughput",
        charts::throughput(trial)?,
        "Commits landed per second (from the leaves' task lines) and the hub's sync requests per \
         second (sampled from the hub every 250 ms). A dip is a stall; a gap between the two lines \
         is requests that landed nothing.",
    );
    figure(
        &mut h,
        "latency",
        charts::latency(trial)?,
        "Each point is one commit: when it landed (x) and how long it took from the fence check \
         to the hub's answer (y, log scale). Dashed lines: P50 and P99 over the trial. Points high \
         up in a column are a stall every leaf felt; scattered ones are single slow pushes.",
    );
    figure(
        &mut h,
        "slots",
        charts::slots(trial)?,
        "One row per slot: its claim, the think time while the agent works, and the commit. Ticks \
         mark each push's answer. Rows that line up are the herd arriving together; a long commit \
         bar with several ticks is a slot pushing again after refusals. With --overlap, \
         \"merged\" is a push the hub landed by merging a shared file's lines, and \"conflict\" \
         one refused for lines both sides changed, after which the agent redid its edit.",
    );
    match charts::hub_queue(trial) {
        Some(chart) => figure(
            &mut h,
            "hub",
            chart?,
            "Pushes waiting for the hub's single writer (sampled) and how many pushes each write \
             transaction took on average over each interval. A queue that keeps growing is a \
             writer that cannot keep up.",
        ),
        None => h.push_str(
            "<figure id=\"hub\"><p class=\"note\">No hub series: this hub keeps no live counters \
             (a stock fossil server).</p></figure>\n",
        ),
    }
    figure(
        &mut h,
        "cpu",
        charts::cpu(trial)?,
        "CPU used per kind of process, in cores (1.0 = one core busy), from /proc every 250 ms. \
         The machine's cores are the ceiling.",
    );
    figure(
        &mut h,
        "memory",
        charts::memory(trial)?,
        "Resident memory per kind of process; the leaf-agents' line is the sum over every leaf \
         alive at the sample.",
    );
    h.push_str("<div class=\"cols\"><section><h2>Slowest slots</h2>");
    h.push_str(&slowest_slots(trial.slots));
    h.push_str("</section><section><h2>Slowest commits</h2>");
    h.push_str(&slowest_commits(trial.slots));
    h.push_str("</section></div>\n</body></html>\n");
    Ok(h)
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1140px}\
h1{font-size:22px}h2{font-size:17px;margin:8px 0}\
.cols{display:flex;gap:32px;flex-wrap:wrap}.cols section{flex:1;min-width:420px}\
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto}\
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:left;\
border-bottom:1px solid #e4e4e4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:24px 0}figcaption{font-size:13px;color:#444;max-width:1000px}\
.pass{color:#00703c;font-weight:bold}.fail{color:#b00020;font-weight:bold}\
.note{color:#666;font-style:italic}code{font-size:11px}";

fn figure(h: &mut String, id: &str, svg: String, caption: &str) {
    let _ = writeln!(
        h,
        "<figure id=\"{id}\">{svg}<figcaption>{}</figcaption></figure>",
        escape(caption)
    );
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><tr>");
    for h in head {
        let _ = write!(t, "<th>{}</th>", escape(h));
    }
    t.push_str("</tr>");
    for row in rows {
        t.push_str("<tr>");
        for cell in row {
            let numeric = cell.parse::<f64>().is_ok();
            let class = if numeric { " class=\"n\"" } else { "" };
            let _ = write!(t, "<td{class}>{}</td>", escape(cell));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

fn settings(c: &TrialConfig) -> String {
    let w = &c.workload();
    let rows = [
        ("agents", c.spec.agents.to_string()),
        ("tasks per agent", c.spec.tasks.to_string()),
        ("mode", c.spec.mode.to_string()),
        ("hub kind", c.spec.hub_kind.to_string()),
        ("landing", c.spec.landing.to_string()),
        ("leaf", c.spec.leaf.to_string()),
        (
            "catch-up",
            match c.spec.leaf {
                crate::wire::LeafMode::Full => c.spec.catch_up.to_string(),
                crate::wire::LeafMode::Sparse => {
                    format!("{} (ignored by sparse leaves)", c.spec.catch_up)
                }
            },
        ),
        ("seed", c.spec.seed.to_string()),
        (
            "hosts",
            if c.hosts > 1 {
                format!("{} (NATS cluster of {})", c.hosts, c.cluster_size())
            } else {
                "1 (loopback)".into()
            },
        ),
        (
            "links",
            c.links_text().unwrap_or_else(|| "not shaped".into()),
        ),
        ("files per task", format!("{}–{}", w.min_files, w.max_files)),
        ("bytes per file", format!("{}–{}", w.min_bytes, w.max_bytes)),
        ("think ms", format!("{}–{}", w.min_think_ms, w.max_think_ms)),
        ("hold ttl ms", w.hold_ttl_ms.to_string()),
        (
            "timeout",
            c.timeout
                .map_or("none".into(), |t| format!("{} s", t.as_secs())),
        ),
        (
            "tracing",
            if c.trace.traceparent.is_some() {
                "spans exported (OTLP)".into()
            } else {
                "off".into()
            },
        ),
    ];
    let hot = &w.hot;
    let hot_rows = [
        ("overlap", hot.overlap.to_string()),
        (
            "hot files",
            format!(
                "{} ({} of edits appended; {})",
                hot.files,
                hot.append,
                if hot.hold {
                    "held"
                } else {
                    "edited concurrently"
                }
            ),
        ),
    ];
    let hot_rows = hot_rows.into_iter().filter(|_| hot.enabled());
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .chain(hot_rows)
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    table(&["setting", "value"], &rows)
}

/// Slots by when they finished, last first.
fn slowest_slots(slots: &[SlotRecord]) -> String {
    let mut by_end: Vec<(usize, f64, &SlotRecord)> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let end = s
                .tasks
                .iter()
                .filter_map(|t| t.timeline.as_ref())
                .map(|t| t.end_ms)
                .fold(0.0, f64::max);
            (i, end, s)
        })
        .collect();
    by_end.sort_by(|a, b| b.1.total_cmp(&a.1));
    let rows: Vec<Vec<String>> = by_end
        .iter()
        .take(SLOWEST)
        .map(|(i, end, s)| {
            let committed = s
                .tasks
                .iter()
                .filter(|t| t.outcome == TaskOutcome::Committed)
                .count();
            let worst = s
                .tasks
                .iter()
                .filter_map(|t| t.commit_ms)
                .fold(0.0, f64::max);
            let retries: u32 = s.tasks.iter().map(|t| t.fork_retries).sum();
            vec![
                i.to_string(),
                format!("{:.3}", end / 1000.0),
                committed.to_string(),
                format!("{worst:.2}"),
                retries.to_string(),
                s.failure.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "slot",
            "finished (s)",
            "committed",
            "slowest commit (ms)",
            "refused pushes",
            "failure",
        ],
        &rows,
    )
}

/// The slowest commits, with their trace context when spans were exported.
fn slowest_commits(slots: &[SlotRecord]) -> String {
    let mut commits: Vec<&TaskLine> = slots
        .iter()
        .flat_map(|s| s.tasks.iter())
        .filter(|t| t.commit_ms.is_some())
        .collect();
    commits.sort_by(|a, b| {
        b.commit_ms
            .unwrap_or(0.0)
            .total_cmp(&a.commit_ms.unwrap_or(0.0))
    });
    let rows: Vec<Vec<String>> = commits
        .iter()
        .take(SLOWEST)
        .map(|t| {
            let pushes = t.timeline.as_ref().map_or(0, |tl| tl.pushes.len());
            let landed = t
                .timeline
                .as_ref()
                .and_then(|tl| tl.landed_ms())
                .map_or(String::new(), |ms| format!("{:.3}", ms / 1000.0));
            vec![
                t.slot.to_string(),
                t.task.to_string(),
                format!("{:.2}", t.commit_ms.unwrap_or(0.0)),
                pushes.to_string(),
                landed,
                t.trace.clone().unwrap_or_else(|| "(tracing off)".into()),
            ]
        })
        .collect();
    table(
        &[
            "slot",
            "task",
            "commit (ms)",
            "pushes",
            "landed (s)",
            "traceparent",
        ],
        &rows,
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::supervisor::summary::{HubCount, TrialShape};
    use crate::wire::{
        ClaimOutcome, HubCounters, KindSample, LeafSummary, ProcessKind, PushMark, PushResult,
        Timeline,
    };

    /// A trial of `agents` × `tasks` as herd would have collected it: every
    /// task claimed, thought about for ~50 ms and landed at its first push;
    /// a sample every 250 ms.
    fn synthetic(
        agents: u32,
        tasks: u32,
    ) -> (TrialConfig, TrialReport, Vec<SlotRecord>, Vec<Sample>) {
        let slots: Vec<SlotRecord> = (0..agents).map(|slot| slot_record(slot, tasks)).collect();
        let runtime_s = f64::from(tasks) * 0.06;
        let samples = (0..(runtime_s * 4.0) as u32).map(sample).collect();
        let config = config(agents, tasks);
        let report = report(&config, &slots, runtime_s);
        (config, report, slots, samples)
    }

    /// One slot's tasks, a task every 60 ms, and its summary line.
    fn slot_record(slot: u32, tasks: u32) -> SlotRecord {
        SlotRecord {
            tasks: (0..tasks).map(|task| task_line(slot, task)).collect(),
            summary: Some(LeafSummary {
                slot,
                tasks,
                committed: tasks,
                claims_won: tasks,
                think_ms: u64::from(tasks) * 50,
                ..LeafSummary::default()
            }),
            errors: Vec::new(),
            failure: None,
        }
    }

    /// A task that landed at its first push, its slot's start staggered by
    /// a few ms.
    fn task_line(slot: u32, task: u32) -> TaskLine {
        let t0 = f64::from(task) * 60.0 + f64::from(slot % 7);
        TaskLine {
            slot,
            task,
            task_id: format!("slot-{slot}-{task}"),
            claim: ClaimOutcome::Won,
            commit_ms: Some(4.0 + f64::from(slot % 5)),
            fork_retries: 0,
            resolutions: 0,
            checkin: Some("ab".repeat(32)),
            outcome: TaskOutcome::Committed,
            timeline: Some(Timeline {
                claim_start_ms: t0,
                claim_end_ms: t0 + 1.2,
                think_end_ms: Some(t0 + 51.2),
                commit_start_ms: Some(t0 + 51.3),
                pushes: vec![PushMark {
                    start_ms: t0 + 52.0,
                    end_ms: t0 + 55.0,
                    result: PushResult::Landed,
                }],
                end_ms: t0 + 55.3,
            }),
            trace: None,
        }
    }

    /// The `i`th sample: every kind of process busy alike, the hub's
    /// counters rising.
    fn sample(i: u32) -> Sample {
        Sample {
            at_ms: f64::from(i) * 250.0,
            interval_ms: 250.0,
            processes: ProcessKind::ALL
                .iter()
                .map(|&kind| KindSample {
                    kind,
                    processes: 1,
                    cpu_ms: 120.0,
                    rss_kb: 30_000,
                })
                .collect(),
            hub: Some(HubCounters {
                requests: u64::from(i) * 100,
                batches: u64::from(i) * 20,
                batched_pushes: u64::from(i) * 90,
                backlog: u64::from(i % 9),
                ..HubCounters::default()
            }),
        }
    }

    /// A trial on herd's hub with hub landing, on loopback.
    pub(in crate::supervisor) fn config(agents: u32, tasks: u32) -> TrialConfig {
        TrialConfig {
            spec: crate::spec::TrialSpec {
                agents,
                tasks,
                seed: 1,
                workload: crate::workload::WorkloadArgs::of(
                    &crate::workload::WorkloadConfig::default(),
                ),
                mode: crate::workload::Mode::default(),
                hub_kind: crate::wire::HubKind::Herd,
                landing: crate::wire::LandingStrategy::Hub,
                leaf: crate::wire::LeafMode::default(),
                catch_up: crate::wire::CatchUp::default(),
            },
            workdir: None,
            nats_url: None,
            nats_server: None,
            timeout: None,
            verbose: false,
            progress: false,
            report: None,
            hosts: 1,
            nats_cluster: None,
            kill_nats_node: None,
            acks: None,
            links: Default::default(),
            slow_host: None,
            partition: None,
            leaf_launcher: None,
            bin_dir: std::path::PathBuf::new(),
            trace: crate::telemetry::W3c::default(),
        }
    }

    /// The summary of `slots` with a hub that counted every commit.
    fn report(config: &TrialConfig, slots: &[SlotRecord], runtime_s: f64) -> TrialReport {
        let shape = TrialShape {
            slowest_slot: Some(0),
            ..TrialShape::of(config, runtime_s)
        };
        let total = u64::from(config.spec.agents) * u64::from(config.spec.tasks);
        let hub = HubCount {
            trunk_commits: total,
            trunk_leaves: 1,
            requests: Some(total),
            peak_rss_kb: Some(40_000),
            hub_rebases: Some(total / 2),
            hub_merges: None,
            conflicts: None,
            bytes_out: Some(total * 3000),
        };
        TrialReport::build(shape, slots, hub)
    }

    #[test]
    fn a_256_agent_page_stays_under_five_megabytes() {
        let (config, report, slots, samples) = synthetic(256, 30);
        let trial = Trial {
            config: &config,
            report: &report,
            slots: &slots,
            samples: &samples,
        };
        let html = render(&trial).unwrap();
        assert!(html.len() < 5 << 20, "{} bytes", html.len());
        assert_eq!(html.matches("<svg").count(), 6);
        // A point per commit, a bar per step of every task.
        assert!(html.matches("<circle").count() >= 256 * 30);
        assert!(html.matches("<rect").count() >= 3 * 256 * 30);
    }

    #[test]
    fn a_page_is_written_whole_or_not_at_all() {
        let (config, report, slots, samples) = synthetic(2, 3);
        let trial = Trial {
            config: &config,
            report: &report,
            slots: &slots,
            samples: &samples,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.html");
        write(&path, &trial).unwrap();
        let html = std::fs::read_to_string(&path).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no partial file left beside it");
        let missing = dir.path().join("no/such/dir/r.html");
        let err = write(&missing, &trial).unwrap_err().to_string();
        assert!(err.contains("write the report"), "{err}");
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
