//! The summary block `herd run` prints: one figure a line, `n/a` for what
//! herd could not get. The JSON form is the report's `Serialize`.

use std::fmt::Write as _;

use super::TrialReport;

impl TrialReport {
    /// The summary block: the figures docs/guide/running.md explains, line
    /// by line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_counts(&mut s);
        self.render_costs(&mut s);
        self.render_run(&mut s);
        s
    }

    /// The heading and what the hub and the leaves counted: commits,
    /// refused pushes, claims, broadcasts.
    fn render_counts(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "herd-hub-leaf trial: agents={} tasks={} total={}",
            self.agents, self.tasks, self.total
        );
        let _ = writeln!(s, "  hub commits:        {}", or_na(self.hub_commits));
        let _ = writeln!(s, "  fork retries:       {}", self.fork_retries);
        let _ = writeln!(
            s,
            "  fork unrecoverable: {}",
            or_na(self.fork_unrecoverable)
        );
        let _ = writeln!(s, "  claims won:         {}", self.claims_won);
        let _ = writeln!(s, "  claims lost:        {}", or_na(self.claims_lost));
        let _ = writeln!(s, "  broadcasts pulled:  {}", or_na(self.broadcasts_pulled));
        let _ = writeln!(
            s,
            "  broadcasts skipped (idempotent): {}",
            or_na(self.broadcasts_skipped)
        );
    }

    /// Latency and runtime, the trunk, what served and landed, and what a
    /// commit cost: bytes, files, rebases, NATS requests, CPU, forks.
    fn render_costs(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  P50/P99 commit ms:  {} / {}",
            self.p50_commit_ms.map_or("n/a".into(), fmt_ms),
            self.p99_commit_ms.map_or("n/a".into(), fmt_ms)
        );
        let _ = writeln!(s, "  total runtime:      {:.1}s", self.runtime_s);
        let _ = writeln!(
            s,
            "  hub requests/commit: {}",
            self.hub_requests_per_commit
                .map_or("n/a".into(), |n| format!("{n:.2}"))
        );
        let _ = writeln!(
            s,
            "  hub bytes out/commit: {}",
            self.hub_bytes_out_per_commit
                .map_or("n/a".into(), |n| format!("{n:.0}"))
        );
        let _ = writeln!(s, "  trunk leaves:       {}", or_na(self.trunk_leaves));
        let _ = writeln!(s, "  hub kind:           {}", self.hub_kind);
        let _ = writeln!(s, "  landing:            {}", self.landing);
        let _ = writeln!(s, "  leaf:               {}", self.leaf);
        let _ = writeln!(s, "  catch-up:           {}", self.catch_up);
        let _ = writeln!(
            s,
            "  bytes pulled:       {} ({} per commit)",
            or_na(self.bytes_pulled),
            per(self.bytes_pulled, self.hub_commits)
        );
        let _ = writeln!(s, "  files updated:      {}", or_na(self.files_updated));
        let _ = writeln!(
            s,
            "  apply µs/check-in:  {}",
            self.apply_us_per_checkin
                .map_or("n/a".into(), |us| format!("{us:.1}"))
        );
        let _ = writeln!(
            s,
            "  hub rebases:        {}",
            self.hub_rebases.map_or("n/a".into(), |n| n.to_string())
        );
        let _ = writeln!(
            s,
            "  nats ops/task:      {}",
            self.nats_ops_per_task
                .map_or("n/a".into(), |n| format!("{n:.1}"))
        );
        if let Some(n) = self.git_processes_per_commit {
            let _ = writeln!(s, "  git processes/commit: {n:.1}");
        }
        let _ = writeln!(
            s,
            "  cpu ms/commit:      {}",
            self.cpu_ms_per_commit
                .map_or("n/a".into(), |ms| format!("{ms:.2}"))
        );
        let _ = writeln!(
            s,
            "  cpu ms/commit by kind: {}",
            self.cpu_ms_per_commit_by_kind
                .map_or("n/a".into(), |c| format!(
                    "hub {:.2}, nats {:.2}, leaves {:.2}, herd {:.2}",
                    c.hub, c.nats, c.leaves, c.herd
                ))
        );
        let _ = writeln!(s, "  forks:              {}", or_na(self.forks));
        if let Some(e) = &self.edits {
            let how = if e.hold_hot {
                "held"
            } else {
                "edited concurrently"
            };
            let _ = writeln!(s, "  overlap:            {} ({how})", e.overlap);
            let _ = writeln!(
                s,
                "  hot-file edits:     {} expected, {} found, {} lost, {} doubled{}",
                e.edits_expected,
                e.edits_found,
                e.edits_lost,
                e.edits_doubled,
                if e.edits_off_tip > 0 {
                    format!(", {} only on unmerged forks", e.edits_off_tip)
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                s,
                "  hub merges:         {} (conflicts {}, leaf resolutions {})",
                or_na(e.hub_merges),
                or_na(e.conflicts),
                e.leaf_resolutions
            );
        }
    }

    /// How the run went: hosts and faults (when there were any), the think
    /// floor, the rate, memory, restarts and deaths, the slowest slot.
    fn render_run(&self, s: &mut String) {
        if self.hosts > 1 {
            let per_host: Vec<String> =
                self.committed_per_host.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "  hosts:              {} (nats servers {}; committed per host {})",
                self.hosts,
                self.nats_nodes,
                per_host.join(" / ")
            );
        }
        if let Some(links) = &self.links {
            let _ = writeln!(s, "  links:              {links}");
        }
        for fault in &self.faults {
            let _ = writeln!(s, "  fault injected:     {fault}");
        }
        let (floor, ratio) = match self.think_floor_s {
            Some(f) if f > 0.0 => (format!("{f:.1}s"), format!("{:.2}x", self.runtime_s / f)),
            Some(f) => (format!("{f:.1}s"), "n/a".into()),
            None => ("n/a".into(), "n/a".into()),
        };
        let _ = writeln!(s, "  think floor:        {floor} (runtime/floor {ratio})");
        let _ = writeln!(
            s,
            "  commits/s:          {}",
            self.commits_per_s
                .map_or("n/a".into(), |c| format!("{c:.1}"))
        );
        let _ = writeln!(
            s,
            "  peak memory:        hub {}, largest leaf {}",
            mib(self.hub_peak_rss_kb),
            mib(self.leaf_peak_rss_kb)
        );
        if let (Some(private), Some(start)) = (self.leaf_private_kb, self.leaf_start_cpu_ms) {
            let _ = writeln!(
                s,
                "  per leaf:           {} own at most, {start:.1} ms CPU to start (median)",
                mib(Some(private))
            );
        }
        let _ = writeln!(
            s,
            "  restarts:           hub {}, nats {}",
            self.restarts.hub, self.restarts.nats
        );
        for event in &self.infra_events {
            let _ = writeln!(s, "  infra:              {event}");
        }
        if let Some(slot) = self.slowest_slot {
            let _ = writeln!(s, "  slowest slot:       {slot}");
        }
    }
}

/// A figure, or `n/a` when herd could not get it.
fn or_na(n: Option<u64>) -> String {
    n.map_or("n/a".into(), |n| n.to_string())
}

/// `n / d` with no decimals, `n/a` when either is unknown or `d` is 0.
fn per(n: Option<u64>, d: Option<u64>) -> String {
    match (n, d) {
        (Some(n), Some(d)) if d > 0 => format!("{:.0}", n as f64 / d as f64),
        _ => "n/a".into(),
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.2}")
    }
}

/// KiB as MiB to a tenth, or `n/a`.
fn mib(kb: Option<u64>) -> String {
    kb.map_or("n/a".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0))
}
