//! The sweep's markdown: a row per point of every series, then the tables
//! that set two series side by side (hub against leaf landing, full against
//! sparse leaves, catching up from the stream against pulling, herd's hub
//! against a stock `fossil server` or git server) where the sweep ran both.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::points::{Point, Points};

/// A series' points by agent count.
type ByAgents = BTreeMap<u32, Point>;

/// Every table the sweep has figures for; `pairs` are the side-by-side
/// runs' points.
pub(super) fn markdown(plotted: &Points, pairs: &Points) -> String {
    let mut md = String::new();
    series_table(&mut md, plotted);
    landing_table(&mut md, plotted);
    for landing in ["hub", "leaf"] {
        leaves_table(&mut md, plotted, landing);
    }
    for landing in ["hub", "leaf"] {
        catch_up_table(&mut md, plotted, landing);
    }
    fossil_table(&mut md, pairs);
    for (herd, leaves) in [
        ("herd, hub landing", ""),
        ("herd, hub landing, sparse leaves", ", sparse leaves"),
    ] {
        stock_table(&mut md, plotted, herd, &format!("git{leaves}"));
    }
    stock_table(&mut md, plotted, "herd, hub landing", "fossil");
    md
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.decimals$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// The series named `name`; empty when the sweep has none.
fn series<'a>(points: &'a Points, name: &str) -> &'a ByAgents {
    static NONE: ByAgents = BTreeMap::new();
    points.get(name).unwrap_or(&NONE)
}

/// The agent counts both `a` and `b` have points for.
fn common(a: &ByAgents, b: &ByAgents) -> Vec<u32> {
    a.keys().filter(|n| b.contains_key(n)).copied().collect()
}

/// One row per point of every series.
fn series_table(md: &mut String, plotted: &Points) {
    md.push_str(
        "| series | agents | runs | hub commits / total | commits/s | P50 ms | P99 ms | requests/commit | fork retries | forks | CPU ms/commit |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (series, by_agents) in plotted {
        for (agents, p) in by_agents {
            let _ = writeln!(
                md,
                "| {series} | {agents} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
                p.runs,
                p.hub_commits,
                p.total,
                fmt(p.commits_per_s, 1),
                fmt(p.p50, 2),
                fmt(p.p99, 2),
                fmt(p.requests, 2),
                fmt(p.fork_retries, 0),
                fmt(p.forks, 0),
                fmt(p.cpu, 2),
            );
        }
    }
}

/// Hub landing over leaf landing, at the agent counts both ran.
fn landing_table(md: &mut String, plotted: &Points) {
    let hub = series(plotted, "herd, hub landing");
    let leaf = series(plotted, "herd, leaf landing");
    let both = common(hub, leaf);
    if both.is_empty() {
        return;
    }
    md.push_str(
        "\nLanding strategies side by side: hub landing's figures over leaf landing's.\n\n\
         | agents | commits/s hub | commits/s leaf | commits/s ratio (hub ÷ leaf) | P50 ms hub | P50 ms leaf | CPU ms/commit hub | CPU ms/commit leaf | CPU ratio (hub ÷ leaf) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for a in both {
        let (h, l) = (&hub[&a], &leaf[&a]);
        let _ = writeln!(
            md,
            "| {a} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(h.commits_per_s, 1),
            fmt(l.commits_per_s, 1),
            fmt(ratio(h.commits_per_s, l.commits_per_s), 2),
            fmt(h.p50, 2),
            fmt(l.p50, 2),
            fmt(h.cpu, 2),
            fmt(l.cpu, 2),
            fmt(ratio(h.cpu, l.cpu), 2),
        );
    }
}

/// Full leaves against sparse ones under one `landing`, at the agent
/// counts both ran.
fn leaves_table(md: &mut String, plotted: &Points, landing: &str) {
    let full = series(plotted, &format!("herd, {landing} landing"));
    let sparse = series(plotted, &format!("herd, {landing} landing, sparse leaves"));
    let both = common(full, sparse);
    if both.is_empty() {
        return;
    }
    let _ = write!(
        md,
        "\nFull leaves against sparse ones ({landing} landing): what staying current costs.\n\n\
         | agents | commits/s full | commits/s sparse | P50 ms full | P50 ms sparse | P99 ms full | P99 ms sparse | CPU ms/commit full | CPU ms/commit sparse | CPU ratio (full ÷ sparse) | bytes pulled/commit (full) | hub bytes out/commit full | hub bytes out/commit sparse |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for a in both {
        let (f, sp) = (&full[&a], &sparse[&a]);
        let _ = writeln!(
            md,
            "| {a} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(f.commits_per_s, 1),
            fmt(sp.commits_per_s, 1),
            fmt(f.p50, 2),
            fmt(sp.p50, 2),
            fmt(f.p99, 2),
            fmt(sp.p99, 2),
            fmt(f.cpu, 2),
            fmt(sp.cpu, 2),
            fmt(ratio(f.cpu, sp.cpu), 2),
            fmt(f.bytes_per_commit, 0),
            fmt(f.hub_bytes_out, 0),
            fmt(sp.hub_bytes_out, 0),
        );
    }
}

/// Full leaves catching up from the stream against pulling, under one
/// `landing`, at the agent counts both ran.
fn catch_up_table(md: &mut String, plotted: &Points, landing: &str) {
    let stream = series(plotted, &format!("herd, {landing} landing"));
    let pull = series(plotted, &format!("herd, {landing} landing, pull catch-up"));
    let both = common(stream, pull);
    if both.is_empty() {
        return;
    }
    let _ = write!(
        md,
        "\nFull leaves catching up from the stream against pulling ({landing} landing).\n\n\
         | agents | commits/s stream | commits/s pull | P50 ms stream | P50 ms pull | CPU ms/commit stream | CPU ms/commit pull | CPU ratio (stream ÷ pull) | hub CPU ms/commit stream | hub CPU ms/commit pull | leaves CPU ms/commit stream | leaves CPU ms/commit pull | hub bytes out/commit stream | hub bytes out/commit pull | apply µs/check-in stream | apply µs/check-in pull |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for a in both {
        let (s, p) = (&stream[&a], &pull[&a]);
        let _ = writeln!(
            md,
            "| {a} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(s.commits_per_s, 1),
            fmt(p.commits_per_s, 1),
            fmt(s.p50, 2),
            fmt(p.p50, 2),
            fmt(s.cpu, 2),
            fmt(p.cpu, 2),
            fmt(ratio(s.cpu, p.cpu), 2),
            fmt(s.cpu_hub, 2),
            fmt(p.cpu_hub, 2),
            fmt(s.cpu_leaves, 2),
            fmt(p.cpu_leaves, 2),
            fmt(s.hub_bytes_out, 0),
            fmt(p.hub_bytes_out, 0),
            fmt(s.apply_us, 1),
            fmt(p.apply_us, 1),
        );
    }
}

/// herd's hub against a stock server's series (`git`, `git, sparse
/// leaves`, `fossil`) run in the same sweep, at the agent counts both ran:
/// how many times the commits per second, and how many times less CPU per
/// commit.
fn stock_table(md: &mut String, plotted: &Points, herd_name: &str, stock_name: &str) {
    let herd = series(plotted, herd_name);
    let stock = series(plotted, stock_name);
    let both = common(herd, stock);
    if both.is_empty() {
        return;
    }
    let _ = write!(
        md,
        "\nherd's hub ({herd_name}) against a stock server ({stock_name}), the same sweep.\n\n\
         | agents | herd commits/s | {stock_name} commits/s | commits/s ratio (herd ÷ {stock_name}) | herd CPU ms/commit | {stock_name} CPU ms/commit | CPU ratio ({stock_name} ÷ herd) | herd P99 ms | {stock_name} P99 ms | {stock_name} fork retries / forks |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for a in both {
        let (h, s) = (&herd[&a], &stock[&a]);
        let _ = writeln!(
            md,
            "| {a} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            fmt(h.commits_per_s, 1),
            fmt(s.commits_per_s, 2),
            fmt(ratio(h.commits_per_s, s.commits_per_s), 1),
            fmt(h.cpu, 2),
            fmt(s.cpu, 1),
            fmt(ratio(s.cpu, h.cpu), 1),
            fmt(h.p99, 1),
            fmt(s.p99, 1),
            fmt(s.fork_retries, 0),
            fmt(s.forks, 0),
        );
    }
}

/// Each herd series of the side-by-side runs against the stock `fossil
/// server` at the same agents, tasks and seed.
fn fossil_table(md: &mut String, pairs: &Points) {
    let fossil = series(pairs, "fossil");
    let mut ratios = Vec::new();
    for (name, herd) in pairs.iter().filter(|(n, _)| n.as_str() != "fossil") {
        for (a, h) in herd {
            if let Some(f) = fossil.get(a) {
                ratios.push((name, a, h, f));
            }
        }
    }
    if ratios.is_empty() {
        return;
    }
    md.push_str(
        "\nSide by side: the same agents, tasks and seed on herd's hub and on a stock \
         `fossil server` (fossil accepts forks: its forks column counts trunk leaves − 1).\n\n\
         | herd series | agents | tasks | herd commits/s | fossil commits/s | commits/s ratio (herd ÷ fossil) | herd P50 ms | fossil P50 ms | P50 ratio (fossil ÷ herd) | fossil commits / total | fossil forks |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, a, h, f) in ratios {
        let _ = writeln!(
            md,
            "| {name} | {a} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            h.tasks,
            fmt(h.commits_per_s, 1),
            fmt(f.commits_per_s, 2),
            fmt(ratio(h.commits_per_s, f.commits_per_s), 1),
            fmt(h.p50, 2),
            fmt(f.p50, 1),
            fmt(ratio(f.p50, h.p50), 1),
            f.hub_commits,
            f.total,
            fmt(f.forks, 0),
        );
    }
}
