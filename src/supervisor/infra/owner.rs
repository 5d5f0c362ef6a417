//! The one owner of a trial's infrastructure: where its processes run (the
//! topology: simulated hosts and the NATS cluster on them) and the
//! nats-server and hub herd started. Each process is handed over the
//! moment it runs, and [`TrialInfra::stop`] stops whatever was started, on
//! every path: after a trial that ran, and after a start that failed half
//! way. Nothing else stops them.

use std::time::Instant;

use tokio::process::Child;

use super::{HubWatch, NatsWatch, Restarts, Watch, STOP_GRACE};
use crate::supervisor::topology::Topology;
use crate::supervisor::{process, SupervisorError, TrialConfig};

/// What became of the watched processes: their restarts, one line per
/// death, and why the trial could not go on when one was lost.
pub(in crate::supervisor) type InfraEnd = (Restarts, Vec<String>, Option<String>);

/// A trial's infrastructure, started or not yet.
pub(in crate::supervisor) struct TrialInfra {
    /// Where the trial's processes run.
    pub topology: Topology,
    /// The nats-server and the hub, once started.
    pub children: InfraChildren,
}

impl TrialInfra {
    /// Makes the trial's hosts (none for one host); nothing runs yet.
    /// Deaths of processes are timed from now.
    pub fn new(config: &TrialConfig) -> Result<TrialInfra, SupervisorError> {
        let origin = Instant::now();
        Ok(TrialInfra {
            topology: Topology::new(config)?,
            children: InfraChildren {
                origin,
                nats: None,
                hub: None,
                unwatched_hub: None,
                watch: None,
            },
        })
    }

    /// Stops everything started, in order: the hub, nats-server, then the
    /// NATS cluster and the hosts.
    pub async fn stop(mut self) -> InfraEnd {
        let end = self.children.stop().await;
        self.topology.stop(STOP_GRACE).await;
        end
    }
}

/// The nats-server and the hub herd started, held as started until the
/// watcher takes the ones it restarts ([`InfraChildren::watch`]).
pub(in crate::supervisor) struct InfraChildren {
    /// When the trial began: the watcher times deaths from here.
    origin: Instant,
    /// herd's nats-server, until watched.
    nats: Option<NatsWatch>,
    /// herd's hub or `git daemon`, until watched.
    hub: Option<HubWatch>,
    /// A hub herd never restarts (a stock `fossil server`).
    unwatched_hub: Option<Child>,
    /// The watcher, once started.
    watch: Option<Watch>,
}

impl InfraChildren {
    /// Takes the nats-server herd started.
    pub fn adopt_nats(&mut self, nats: NatsWatch) {
        self.nats = Some(nats);
    }

    /// Takes a hub the watcher restarts when it dies.
    pub fn adopt_hub(&mut self, hub: HubWatch) {
        self.hub = Some(hub);
    }

    /// Takes a hub that is stopped at the end but never restarted.
    pub fn adopt_unwatched_hub(&mut self, hub: Child) {
        self.unwatched_hub = Some(hub);
    }

    /// Starts watching the nats-server and the hub (restarting them when
    /// they die) unless that has begun; the watcher, for the control loop.
    pub fn watch(&mut self) -> &mut Watch {
        let (nats, hub, origin) = (&mut self.nats, &mut self.hub, self.origin);
        self.watch
            .get_or_insert_with(|| Watch::start(nats.take(), hub.take(), origin))
    }

    /// Stops every process: a hub herd does not watch first, then the
    /// watched ones (the hub, then nats-server, with the watcher's grace),
    /// or, when nothing was watched yet, the hub and nats-server as started.
    async fn stop(mut self) -> InfraEnd {
        if let Some(mut hub) = self.unwatched_hub.take() {
            let _ = process::stop(&mut hub, STOP_GRACE).await;
        }
        if let Some(watch) = self.watch.take() {
            return watch.stop().await;
        }
        // The hub first: it publishes to nats-server while it stops.
        if let Some(mut hub) = self.hub.take() {
            let _ = process::stop(&mut hub.child, STOP_GRACE).await;
        }
        if let Some(mut nats) = self.nats.take() {
            let _ = process::stop(&mut nats.child, STOP_GRACE).await;
        }
        InfraEnd::default()
    }
}
