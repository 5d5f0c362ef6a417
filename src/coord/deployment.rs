//! How the trial's NATS is deployed, as every process of the trial sees it:
//! one server, or a JetStream cluster with leaf nodes (`herd run --hosts`).
//!
//! herd hands the shape to its children in the environment, read once per
//! process ([`Deployment::current`]):
//!
//! - [`crate::env::NATS_DOMAIN`]: the JetStream domain of the cluster. A leaf node
//!   runs no JetStream of its own; its clients reach the cluster's by
//!   naming the cluster's domain in the JetStream API subjects, which every
//!   JetStream context of ours then does.
//! - [`crate::env::NATS_REPLICAS`]: how many servers keep each bucket and the tip
//!   stream (1 without a cluster).
//!
//! The NATS URL a process is given may list several servers, comma
//! separated (`nats://10.213.7.2:4222,nats://10.213.7.3:4222`): the client
//! connects to one and moves to another when that one goes away.

use std::sync::OnceLock;

use async_nats::ServerAddr;

/// The trial's NATS shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The JetStream domain to address, when the cluster has one.
    pub domain: Option<String>,
    /// Replicas of every bucket and stream this process creates.
    pub replicas: usize,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            domain: None,
            replicas: 1,
        }
    }
}

impl Deployment {
    /// Reads the shape from the environment: unset means one server.
    pub fn from_env() -> Deployment {
        let domain = std::env::var(crate::env::NATS_DOMAIN)
            .ok()
            .filter(|d| !d.is_empty());
        let replicas = std::env::var(crate::env::NATS_REPLICAS)
            .ok()
            .and_then(|r| r.parse().ok())
            .filter(|r| (1..=5).contains(r))
            .unwrap_or(1);
        Deployment { domain, replicas }
    }

    /// This process's shape, read from the environment on first use.
    pub fn current() -> &'static Deployment {
        static CURRENT: OnceLock<Deployment> = OnceLock::new();
        CURRENT.get_or_init(Deployment::from_env)
    }
}

/// The servers of a comma-separated URL list, in order.
pub fn server_addrs(urls: &str) -> Result<Vec<ServerAddr>, String> {
    let addrs: Result<Vec<ServerAddr>, String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>()
                .map_err(|e| format!("{u:?} is not a NATS URL: {e}"))
        })
        .collect();
    match addrs {
        Ok(list) if list.is_empty() => Err("no NATS URL given".into()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_lists_split_on_commas() {
        let list = server_addrs("nats://10.0.0.2:4222, nats://10.0.0.3:4222").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].host(), "10.0.0.3");
        assert!(server_addrs(" , ").unwrap_err().contains("no NATS URL"));
        assert!(server_addrs("nats://x:notaport").is_err());
    }
}
