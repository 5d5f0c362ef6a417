//! Watching the trial's infrastructure: the nats-server herd started and
//! its hub are children one task watches, as the control loop watches the
//! leaves. When one exits during a trial, the task starts it again on the
//! same port and the same store (the hub on the same repository; the
//! JetStream file store survives), at most [`MAX_RESTARTS`] times each, and
//! tells the control loop what happened through typed `InfraEvent`s: a
//! death at once, then a restart or the loss. The control loop prints them
//! and, on a loss, stops the trial; the task never prints.
//!
//! Leaves ride out a restart on their own: pushes retry with backoff, and
//! the NATS client reconnects. Nothing is lost: the hub answers a push only
//! after its transaction is committed, and a push repeated after a lost
//! reply is recognised (`herd_landing`).
//!
//! What a trial starts besides its leaves has one owner, [`TrialInfra`]
//! (`owner`): it holds each process from its start, hands the ones to
//! restart to the watcher, and stops everything once, on every path.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};

mod events;
mod hub;
mod owner;

pub(super) use events::{Death, Exit, InfraEvent, NotRestarted};
pub(super) use hub::start_hub;
pub(super) use owner::{InfraChildren, InfraEnd, TrialInfra};

use super::child::Place;
use super::{nats, process, SupervisorError, TrialConfig};
use crate::coord::Secret;
use crate::wire::HubReady;

/// Most restarts of each process in one trial.
pub const MAX_RESTARTS: u32 = 3;
/// Pause between two failed attempts to start a process again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A watched process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfraKind {
    /// The nats-server herd started.
    Nats,
    /// herd's hub.
    Hub,
}

impl InfraKind {
    /// How the summary names it.
    pub fn name(self) -> &'static str {
        match self {
            InfraKind::Nats => "nats-server",
            InfraKind::Hub => "hub",
        }
    }
}

/// Restarts of each watched process during a trial.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Restarts {
    /// Times the hub was started again.
    pub hub: u32,
    /// Times the nats-server was started again.
    pub nats: u32,
}

impl Restarts {
    fn of(&mut self, kind: InfraKind) -> &mut u32 {
        match kind {
            InfraKind::Nats => &mut self.nats,
            InfraKind::Hub => &mut self.hub,
        }
    }
}

/// The nats-server herd started, with what starting it again needs.
pub(super) struct NatsWatch {
    /// The running server.
    pub child: Child,
    /// The binary.
    pub binary: PathBuf,
    /// Its JetStream store.
    pub store: PathBuf,
    /// Its log (appended to on a restart).
    pub log: PathBuf,
    /// The token clients present.
    pub token: Secret,
    /// Its loopback port.
    pub port: u16,
}

/// herd's hub, with what starting it again needs.
pub(super) struct HubWatch {
    /// The running hub.
    pub child: Child,
    /// Its `127.0.0.1:PORT`, kept across restarts.
    pub listen: String,
    /// Starts another hub like it.
    pub launch: HubLaunch,
}

/// Starts a hub like the trial's first one: how the watcher starts it
/// again.
pub(super) enum HubLaunch {
    /// herd's hub.
    Herd {
        config: Box<TrialConfig>,
        workdir: PathBuf,
        logs: PathBuf,
        nats_url: String,
        place: Place,
    },
    /// `git daemon` over the trial's bare repository.
    Git { bare: PathBuf, logs: PathBuf },
}

impl HubLaunch {
    /// What starting the trial's hub takes, kept for starting it again.
    pub(super) fn new(
        config: &TrialConfig,
        workdir: &Path,
        logs: &Path,
        nats_url: &str,
        place: Place,
    ) -> HubLaunch {
        HubLaunch::Herd {
            config: Box::new(config.clone()),
            workdir: workdir.to_path_buf(),
            logs: logs.to_path_buf(),
            nats_url: nats_url.to_string(),
            place,
        }
    }

    /// Starts a hub listening on `listen` (`127.0.0.1:PORT`) and waits
    /// until it is ready.
    pub(super) async fn start(&self, listen: &str) -> Result<(Child, HubReady), SupervisorError> {
        match self {
            HubLaunch::Herd {
                config,
                workdir,
                logs,
                nats_url,
                place,
            } => start_hub(config, workdir, logs, nats_url, listen, place).await,
            HubLaunch::Git { bare, logs } => {
                let port = listen
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                super::git_hub::serve(bare, logs, port).await
            }
        }
    }
}

/// The watcher, seen from the control loop.
pub(super) struct Watch {
    events: mpsc::UnboundedReceiver<InfraEvent>,
    stop: Option<oneshot::Sender<Duration>>,
    /// The grace the hub and nats-server get when they are stopped.
    grace: Duration,
    task: Option<tokio::task::JoinHandle<Restarts>>,
    /// Why the trial cannot go on, once a process is lost.
    lost: Option<String>,
    /// Every death and restart, in order, for the report.
    log: Vec<String>,
}

impl Watch {
    /// Starts watching. `origin` is the trial's start, from which deaths
    /// are timed.
    pub fn start(nats: Option<NatsWatch>, hub: Option<HubWatch>, origin: Instant) -> Watch {
        let (tx, events) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(watch(nats, hub, origin, tx, stopped));
        Watch {
            events,
            stop: Some(stop),
            grace: STOP_GRACE,
            task: Some(task),
            lost: None,
            log: Vec::new(),
        }
    }

    /// Gives the hub and nats-server only `grace` to stop at the end (a
    /// full disk: nothing they would still write can be stored).
    pub fn hurry(&mut self, grace: Duration) {
        self.grace = self.grace.min(grace);
    }

    /// The next event; pending forever once the watcher is done.
    pub async fn next(&mut self) -> InfraEvent {
        match self.events.recv().await {
            Some(event) => {
                self.record(&event);
                event
            }
            None => std::future::pending().await,
        }
    }

    /// Keeps one line per death for the report: the death, then how it
    /// ended.
    fn record(&mut self, event: &InfraEvent) {
        let sentence = event.sentence();
        match event {
            InfraEvent::Died(_) => self.log.push(sentence),
            InfraEvent::Restarted { .. } => {
                if let Some(last) = self.log.last_mut() {
                    last.push_str("; ");
                    last.push_str(&sentence);
                }
            }
            InfraEvent::Lost { .. } => {
                self.lost.get_or_insert_with(|| sentence.clone());
                if let Some(last) = self.log.last_mut() {
                    *last = sentence;
                }
            }
        }
    }

    /// Why the trial cannot go on, once a process is lost.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Stops the watched processes (the hub, then nats-server) and returns
    /// the restarts, what happened (one line per death) and, when a process
    /// was lost, why.
    pub async fn stop(mut self) -> InfraEnd {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(self.grace);
        }
        let restarts = match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Restarts::default(),
        };
        // Events sent after the control loop stopped listening.
        while let Ok(event) = self.events.try_recv() {
            self.record(&event);
        }
        (restarts, self.log, self.lost)
    }
}

async fn watch(
    mut nats: Option<NatsWatch>,
    mut hub: Option<HubWatch>,
    origin: Instant,
    tx: mpsc::UnboundedSender<InfraEvent>,
    mut stopped: oneshot::Receiver<Duration>,
) -> Restarts {
    // Successful restarts, and attempts (the budget).
    let mut restarts = Restarts::default();
    let mut attempts = Restarts::default();
    let mut lost = false;
    let grace = loop {
        let (kind, status) = tokio::select! {
            grace = &mut stopped => break grace.unwrap_or(STOP_GRACE),
            status = wait(nats.as_mut().map(|n| &mut n.child)), if !lost => (InfraKind::Nats, status),
            status = wait(hub.as_mut().map(|h| &mut h.child)), if !lost => (InfraKind::Hub, status),
        };
        let death = Death {
            kind,
            exit: Exit::of(&status),
            at: origin.elapsed(),
        };
        tracing::info!(process = kind.name(), "{death}");
        let _ = tx.send(InfraEvent::Died(death.clone()));
        let count = attempts.of(kind);
        let mut failures = Vec::new();
        let restarted = loop {
            if *count >= MAX_RESTARTS {
                break false;
            }
            *count += 1;
            let began = Instant::now();
            let attempt = match kind {
                InfraKind::Nats => match nats.as_mut() {
                    Some(n) => restart_nats(n).await,
                    None => Err("not herd's to restart".into()),
                },
                InfraKind::Hub => match hub.as_mut() {
                    Some(h) => restart_hub(h).await,
                    None => Err("not herd's to restart".into()),
                },
            };
            match attempt {
                Ok(()) => {
                    *restarts.of(kind) += 1;
                    let pid = match kind {
                        InfraKind::Nats => nats.as_ref().and_then(|n| n.child.id()),
                        InfraKind::Hub => hub.as_ref().and_then(|h| h.child.id()),
                    };
                    let event = InfraEvent::Restarted {
                        kind,
                        took: began.elapsed(),
                        attempt: *count,
                        pid,
                    };
                    tracing::info!(process = kind.name(), "{}", event.sentence());
                    let _ = tx.send(event);
                    break true;
                }
                Err(e) => {
                    tracing::info!(process = kind.name(), error = %e, "restart failed");
                    failures.push(e);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        };
        if !restarted {
            let why = match failures.last() {
                Some(e) => NotRestarted::Failed {
                    attempts: failures.len(),
                    last: e.clone(),
                },
                None => NotRestarted::Spent,
            };
            let _ = tx.send(InfraEvent::Lost { death, why });
            lost = true;
        }
    };
    // The hub first: it publishes to nats-server while it stops.
    if let Some(h) = hub.as_mut() {
        let _ = process::stop(&mut h.child, grace).await;
    }
    if let Some(n) = nats.as_mut() {
        let _ = process::stop(&mut n.child, grace).await;
    }
    restarts
}

/// Waits for `child` to exit; pending forever without one.
async fn wait(child: Option<&mut Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

async fn restart_nats(n: &mut NatsWatch) -> Result<(), String> {
    let started = nats::start_on(&n.binary, &n.store, &n.log, &n.token, n.port)
        .await
        .map_err(|e| chain(&e))?;
    n.child = started.child;
    Ok(())
}

async fn restart_hub(h: &mut HubWatch) -> Result<(), String> {
    let (child, _ready) = h.launch.start(&h.listen).await.map_err(|e| chain(&e))?;
    h.child = child;
    Ok(())
}

fn chain(e: &SupervisorError) -> String {
    crate::chain::chain(e)
}

/// How a process ended, as the summary says it: `SIGKILL`, `exit code 2`.
pub fn how(status: &std::io::Result<ExitStatus>) -> String {
    Exit::of(status).to_string()
}

/// The last non-empty line of a log file, for a message that names why a
/// process would not start.
pub fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read(log).ok()?;
    let tail = &text[text.len().saturating_sub(4096)..];
    String::from_utf8_lossy(tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exits_are_named_by_signal_or_code() {
        assert_eq!(how(&Ok(ExitStatus::from_raw(9))), "SIGKILL");
        assert_eq!(how(&Ok(ExitStatus::from_raw(2 << 8))), "exit code 2");
    }

    #[test]
    fn the_last_line_of_a_log_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        std::fs::write(&log, "one\ntwo: why\n\n").unwrap();
        assert_eq!(last_line(&log).as_deref(), Some("two: why"));
        assert_eq!(last_line(&dir.path().join("none")), None);
    }
}
