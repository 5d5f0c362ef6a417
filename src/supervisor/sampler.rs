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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::report::{round_us, HubCounters, KindSample, ProcessKind, Sample, TrialClock};

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

    /// Stops counting `pid` (it exited).
    pub fn forget(&self, pid: u32) {
        self.with(|w| w.pids.remove(&pid));
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
        let read = tokio::task::spawn_blocking(move || {
            let hub = url.as_deref().and_then(fetch_counters);
            let (processes, ticks) = read_processes(&pids, &previous);
            (processes, ticks, hub)
        })
        .await;
        let Ok((processes, ticks, hub)) = read else {
            break;
        };
        last_ticks = ticks;
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
fn read_process(pid: u32, page_kb: u64) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    Some((stat_ticks(&stat)?, statm_rss_pages(&statm)? * page_kb))
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last
/// `)`: utime and stime are fields 14 and 15 of the line.
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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
) -> (Vec<KindSample>, HashMap<u32, u64>) {
    let ms_per_tick = 1000.0 / ticks_per_s();
    let page = page_kb();
    let mut ticks = HashMap::with_capacity(pids.len());
    let mut kinds: Vec<KindSample> = Vec::new();
    for &(pid, kind) in pids {
        let Some((now, rss_kb)) = read_process(pid, page) else {
            continue;
        };
        ticks.insert(pid, now);
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
        let line = "4242 (leaf (agent) x) S 1 2 3 4 5 6 7 8 9 10 250 70 0 0 20 0 1 0";
        assert_eq!(stat_ticks(line), Some(320));
        assert_eq!(stat_ticks("garbage"), None);
        assert_eq!(statm_rss_pages("1000 250 30 1 0 80 0"), Some(250));
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
                &first.1,
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
}
