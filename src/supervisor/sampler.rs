//! Samples the trial's processes while it runs, for the trial report.
//!
//! Every [`SAMPLE_EVERY`] a task reads each watched process's CPU time and
//! resident memory from `/proc/PID/stat` and `/proc/PID/statm`, sums them
//! per [`ProcessKind`], and asks herd's hub for its live counters
//! (`GET /counters`). The reads run on a blocking thread, never on the
//! thread that reads the leaves' lines. A process that exits between two
//! samples simply stops being counted; its last interval's CPU is lost,
//! which a chart of CPU over time can afford (the summary's CPU per commit
//! comes from the kernel's count of reaped children, not from here).
//!
//! The sampler also keeps each process's CPU *total* for the summary's CPU
//! per commit by kind ([`Sampler::cpu_ms_by_kind`]): the latest total read
//! for every process (utime + stime, plus the CPU of the children it
//! reaped: a `fossil server`'s per-request processes, a launcher's
//! leaf-agent), overwritten by a final read where one is made. A leaf's
//! final read is made when it has exited and before herd reaps it
//! ([`exit_ticks`], handed in by [`Sampler::exited`]), so its total is
//! exact; the hub's and the nats-servers' when [`Sampler::settle`] is called
//! after the leaves are gone and before those are stopped, so only their
//! shutdown is missed. A process that died mid-trial (a hub or nats-server
//! herd restarted) keeps its last sample's total.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::wire::{round_us, HubCounters, KindSample, ProcessKind, Sample, TrialClock};

/// How often the sampler looks.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How long one `/counters` request may take before the sample goes
/// without the hub's figures.
const COUNTERS_TIMEOUT: Duration = Duration::from_millis(500);

/// What the sampler watches; shared with the control loop, which adds and
/// removes processes as they start and exit.
#[derive(Debug, Default)]
struct Watched {
    pids: HashMap<u32, ProcessKind>,
    counters_url: Option<String>,
    /// The latest CPU total, in ticks, read for each process still
    /// watched or dead without an [`Sampler::exited`] (a restarted hub).
    totals: HashMap<u32, (ProcessKind, u64)>,
    /// The CPU totals, in ticks, of the processes that exited, by kind.
    exited: HashMap<ProcessKind, u64>,
}

impl Watched {
    /// Records totals read for watched processes; one that exited while
    /// the read was in flight is not brought back.
    fn record(&mut self, totals: &HashMap<u32, Ticks>) {
        for (pid, ticks) in totals {
            if let Some(&kind) = self.pids.get(pid) {
                self.totals.insert(*pid, (kind, ticks.total));
            }
        }
    }
}

/// One read of a process's CPU, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticks {
    /// utime + stime: the process's own threads.
    own: u64,
    /// `own` plus cutime + cstime: with the children it reaped.
    total: u64,
}

impl Ticks {
    /// This read, raised to `cpu_us` µs (rounded to the nearest tick) where
    /// the process's own exact count is larger: `/proc` truncates utime
    /// and stime to whole ticks each, some 10 ms under per process, which
    /// over a herd of short-lived leaves is a large share.
    pub(super) fn at_least_us(self, cpu_us: u64) -> Ticks {
        let exact = (cpu_us as f64 * ticks_per_s() / 1e6).round() as u64;
        let raise = exact.saturating_sub(self.own);
        Ticks {
            own: self.own + raise,
            total: self.total + raise,
        }
    }
}

/// A running sampler. [`Sampler::finish`] stops it and hands back its
/// samples, oldest first.
pub struct Sampler {
    clock: TrialClock,
    watched: Arc<Mutex<Watched>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling on `clock`; herd itself is watched from the start.
    pub fn start(clock: TrialClock) -> Sampler {
        let watched = Arc::new(Mutex::new(Watched::default()));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(sample_until(clock, Arc::clone(&watched), stopped));
        let sampler = Sampler {
            clock,
            watched,
            stop: Some(stop),
            task,
        };
        sampler.watch(ProcessKind::Herd, std::process::id());
        sampler
    }

    /// The trial clock the samples are on.
    pub fn clock(&self) -> TrialClock {
        self.clock
    }

    fn with<T>(&self, f: impl FnOnce(&mut Watched) -> T) -> T {
        f(&mut self.watched.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Counts process `pid` as one of `kind` from the next sample on.
    pub fn watch(&self, kind: ProcessKind, pid: u32) {
        self.with(|w| w.pids.insert(pid, kind));
    }

    /// Stops counting `pid`: it exited, and `ticks` is its final read
    /// ([`exit_ticks`]), if one was made; without one, its last sample's
    /// total stands.
    pub fn exited(&self, pid: u32, ticks: Option<Ticks>) {
        self.with(|w| {
            let kind = w.pids.remove(&pid);
            let last = w.totals.remove(&pid);
            let kind = kind.or(last.map(|(k, _)| k));
            let total = ticks.map(|t| t.total).or(last.map(|(_, t)| t));
            if let (Some(kind), Some(total)) = (kind, total) {
                *w.exited.entry(kind).or_default() += total;
            }
        });
    }

    /// Reads every watched process's CPU total once more, now (on a
    /// blocking thread): called once the leaves have exited and before the
    /// hub and nats-server are stopped.
    pub async fn settle(&self) {
        let pids: Vec<u32> = self.with(|w| w.pids.keys().copied().collect());
        let read = tokio::task::spawn_blocking(move || {
            pids.into_iter()
                .filter_map(|pid| Some((pid, read_ticks(pid)?)))
                .collect::<HashMap<u32, Ticks>>()
        })
        .await;
        if let Ok(totals) = read {
            self.with(|w| w.record(&totals));
        }
    }

    /// CPU ms each kind of process used, from the totals kept (see the
    /// file's comment); herd itself is left out: its CPU since the trial
    /// began is `getrusage`'s (its /proc total would count every child it
    /// reaped).
    pub fn cpu_ms_by_kind(&self) -> HashMap<ProcessKind, f64> {
        let ms_per_tick = 1000.0 / ticks_per_s();
        self.with(|w| {
            let mut ticks = w.exited.clone();
            for &(kind, total) in w.totals.values() {
                *ticks.entry(kind).or_default() += total;
            }
            ticks
                .into_iter()
                .filter(|(kind, _)| *kind != ProcessKind::Herd)
                .map(|(kind, t)| (kind, t as f64 * ms_per_tick))
                .collect()
        })
    }

    /// Samples the live counters of herd's hub at `http` (its base URL).
    pub fn hub(&self, http: &str) {
        let url = format!("{}/counters", http.trim_end_matches('/'));
        self.with(|w| w.counters_url = Some(url));
    }

    /// Stops sampling and returns every sample taken.
    pub async fn finish(mut self) -> Vec<Sample> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or_default()
    }
}

/// CPU ticks per second, for `/proc/PID/stat`'s times.
fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_kb() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).map_or(4, |b| (b / 1024).max(1))
}

async fn sample_until(
    clock: TrialClock,
    watched: Arc<Mutex<Watched>>,
    mut stopped: oneshot::Receiver<()>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut last_ticks: HashMap<u32, u64> = HashMap::new();
    let mut last_at = clock.now_ms();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stopped => break,
        }
        let (pids, url) = {
            let w = watched.lock().unwrap_or_else(PoisonError::into_inner);
            let pids: Vec<(u32, ProcessKind)> = w.pids.iter().map(|(p, k)| (*p, *k)).collect();
            (pids, w.counters_url.clone())
        };
        let previous = std::mem::take(&mut last_ticks);
        let shared = Arc::clone(&watched);
        let read = tokio::task::spawn_blocking(move || {
            let hub = url.as_deref().and_then(fetch_counters);
            let (processes, ticks) = read_processes(&pids, &previous);
            (processes, ticks, hub)
        })
        .await;
        let Ok((processes, ticks, hub)) = read else {
            break;
        };
        shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(&ticks);
        last_ticks = ticks.into_iter().map(|(pid, t)| (pid, t.own)).collect();
        let at = clock.now_ms();
        samples.push(Sample {
            at_ms: round_us(at),
            interval_ms: round_us(at - last_at),
            processes,
            hub,
        });
        last_at = at;
    }
    samples
}

/// One process's figures from `/proc`: CPU ticks so far and resident KiB.
fn read_process(pid: u32, page_kb: u64) -> Option<(Ticks, u64)> {
    let ticks = read_ticks(pid)?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    Some((ticks, statm_rss_pages(&statm)? * page_kb))
}

/// A process's CPU ticks so far, from `/proc/PID/stat`.
fn read_ticks(pid: u32) -> Option<Ticks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat_fields(&stat)?.1)
}

/// The state letter and the CPU ticks of a `/proc/PID/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`: the state is field 3, utime, stime, cutime
/// and cstime fields 14 to 17.
fn stat_fields(stat: &str) -> Option<(char, Ticks)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4 to 13 (ppid .. cmajflt) are not wanted; tpgid may be -1.
    let mut fields = fields.skip(10);
    let mut next = || -> Option<u64> { fields.next()?.parse().ok() };
    let own = next()? + next()?;
    let children = next()? + next()?;
    Some((
        state,
        Ticks {
            own,
            total: own + children,
        },
    ))
}

/// How often [`exit_ticks`] looks for the exit.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// The final CPU ticks of child `pid`, read once it has exited and before
/// it is reaped: a zombie's `/proc/PID/stat` still holds its totals, which
/// vanish with the reaping. The caller must not reap `pid` meanwhile (only
/// the caller can, as its parent). Waits as long as the child runs, as
/// `wait` would; `None` when the entry is gone or unreadable.
pub(super) async fn exit_ticks(pid: u32) -> Option<Ticks> {
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (state, ticks) = stat_fields(&stat)?;
        if matches!(state, 'Z' | 'X') {
            return Some(ticks);
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
}

/// Resident pages: the second field of `/proc/PID/statm`.
fn statm_rss_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// Reads every process, summing per kind; returns the sums and each pid's
/// ticks for the next interval. A process seen for the first time counts
/// its memory but no CPU (its interval is unknown).
fn read_processes(
    pids: &[(u32, ProcessKind)],
    previous: &HashMap<u32, u64>,
) -> (Vec<KindSample>, HashMap<u32, Ticks>) {
    let ms_per_tick = 1000.0 / ticks_per_s();
    let page = page_kb();
    let mut ticks = HashMap::with_capacity(pids.len());
    let mut kinds: Vec<KindSample> = Vec::new();
    for &(pid, kind) in pids {
        let Some((read, rss_kb)) = read_process(pid, page) else {
            continue;
        };
        ticks.insert(pid, read);
        let now = read.own;
        let cpu_ms = previous.get(&pid).map_or(0.0, |&before| {
            now.saturating_sub(before) as f64 * ms_per_tick
        });
        let entry = match kinds.iter_mut().position(|k| k.kind == kind) {
            Some(i) => &mut kinds[i],
            None => {
                kinds.push(KindSample {
                    kind,
                    processes: 0,
                    cpu_ms: 0.0,
                    rss_kb: 0,
                });
                kinds.last_mut().expect("just pushed")
            }
        };
        entry.processes += 1;
        entry.cpu_ms += cpu_ms;
        entry.rss_kb += rss_kb;
    }
    kinds.sort_by_key(|k| k.kind);
    (kinds, ticks)
}

fn fetch_counters(url: &str) -> Option<HubCounters> {
    let response = ureq::get(url).timeout(COUNTERS_TIMEOUT).call().ok()?;
    serde_json::from_reader(response.into_reader()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_odd_command_names() {
        let line = "4242 (leaf (agent) x) S 1 2 3 4 -1 6 7 8 9 10 250 70 5 6 20 0 1 0";
        let ticks = Ticks {
            own: 320,
            total: 331,
        };
        assert_eq!(stat_fields(line), Some(('S', ticks)));
        assert_eq!(stat_fields("garbage"), None);
        assert_eq!(statm_rss_pages("1000 250 30 1 0 80 0"), Some(250));
    }

    #[test]
    fn an_exact_count_raises_a_truncated_read_never_lowers_it() {
        let read = Ticks { own: 2, total: 3 };
        let per_tick_us = 1e6 / ticks_per_s();
        // 3.6 ticks of CPU, exact: the read had truncated both
        // utime and stime.
        let raised = read.at_least_us((3.6 * per_tick_us) as u64);
        assert_eq!(raised, Ticks { own: 4, total: 5 });
        assert_eq!(read.at_least_us(per_tick_us as u64), read);
    }

    #[test]
    fn this_process_is_read_and_summed_per_kind() {
        let me = std::process::id();
        let first = read_processes(&[(me, ProcessKind::Herd)], &HashMap::new());
        assert_eq!(first.0.len(), 1);
        assert_eq!(first.0[0].processes, 1);
        assert!(first.0[0].rss_kb > 0);
        assert_eq!(first.0[0].cpu_ms, 0.0, "no interval yet");
        // Burn CPU until a read counts some: /proc counts in clock ticks,
        // and a loaded machine may give this thread none for a while.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let second = loop {
            let until = std::time::Instant::now() + Duration::from_millis(60);
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                x = x.wrapping_mul(31).wrapping_add(7);
            }
            std::hint::black_box(x);
            let second = read_processes(
                &[(me, ProcessKind::Herd), (u32::MAX - 1, ProcessKind::Leaf)],
                &first.1.iter().map(|(p, t)| (*p, t.own)).collect(),
            );
            if second.0.first().is_some_and(|s| s.cpu_ms > 0.0)
                || std::time::Instant::now() > give_up
            {
                break second;
            }
        };
        assert_eq!(second.0.len(), 1, "a pid that does not exist is skipped");
        assert!(second.0[0].cpu_ms > 0.0, "{:?}", second.0);
    }

    #[tokio::test]
    async fn a_childs_cpu_is_read_after_its_exit_and_counted_by_kind() {
        // A child that burns some CPU, then exits.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let sampler = Sampler::start(TrialClock::starting_now());
        sampler.watch(ProcessKind::Leaf, pid);
        let ticks = exit_ticks(pid).await.expect("a zombie's stat is readable");
        assert!(ticks.total >= ticks.own);
        assert!(child.wait().await.unwrap().success());
        assert_eq!(exit_ticks(pid).await, None, "reaped: gone");
        sampler.exited(pid, Some(ticks));
        // herd is watched but left out; the leaf's total is what was read.
        sampler.settle().await;
        let by_kind = sampler.cpu_ms_by_kind();
        assert!(!by_kind.contains_key(&ProcessKind::Herd), "{by_kind:?}");
        let ms = ticks.total as f64 * 1000.0 / ticks_per_s();
        assert_eq!(by_kind.get(&ProcessKind::Leaf).copied().unwrap_or(0.0), ms);
        // A process that exits without a final read keeps its last total.
        sampler.watch(ProcessKind::Hub, 4_000_000);
        sampler.with(|w| w.totals.insert(4_000_000, (ProcessKind::Hub, 7)));
        sampler.exited(4_000_000, None);
        let hub = sampler.cpu_ms_by_kind()[&ProcessKind::Hub];
        assert_eq!(hub, 7.0 * 1000.0 / ticks_per_s());
        sampler.finish().await;
    }
}
