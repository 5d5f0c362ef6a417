//! A trial's NATS across simulated hosts: a JetStream cluster of N servers,
//! one on each of hosts 0..N, and on every further host a server that joins
//! the cluster as a leaf node (the topology the seed used: a host's agents
//! talk to their local server, which carries their traffic to the cluster).
//!
//! Every server listens on its host's address only. Clients present the
//! trial's token, as with one server; routes between cluster servers and
//! leaf-node links carry their own per-trial user and password. All of it
//! goes into config files only herd's user can read, never argv. The
//! cluster has the JetStream domain [`DOMAIN`], which clients name in their
//! JetStream requests (`coord::Deployment`): a leaf node runs no JetStream,
//! and requests reach the cluster's across the leaf link only that way.
//! herd waits for each cluster server's `/healthz` (monitoring on port
//! 8222 of its host) to say JetStream is ready, and for each leaf node to
//! have its link up, before anything uses them.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};

use super::hosts::Hosts;
use super::{process, SupervisorError};
use crate::coord::Secret;

/// The cluster's JetStream domain.
pub const DOMAIN: &str = "herd";
/// Client port of every server (each host has its own address).
const CLIENT_PORT: u16 = 4222;
/// Route port of cluster servers.
const ROUTE_PORT: u16 = 6222;
/// Leaf-node port of cluster servers.
const LEAF_PORT: u16 = 7422;
/// Monitoring port (`/healthz`, `/leafz`).
const MONITOR_PORT: u16 = 8222;
/// How long the servers get to form the cluster.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A JetStream cluster member.
    Cluster,
    /// A leaf node of the cluster, without JetStream.
    Leaf,
}

/// One running server.
#[derive(Debug)]
pub struct Node {
    /// Its server name (`n0`, `n1`, …; `leaf3` on host 3).
    pub name: String,
    /// The host it runs on.
    pub host: usize,
    /// Its role.
    pub role: Role,
    /// Its host's address.
    pub addr: Ipv4Addr,
    /// The process, until it is stopped or killed.
    child: Option<Child>,
}

impl Node {
    fn client_url(&self) -> String {
        format!("nats://{}:{CLIENT_PORT}", self.addr)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// The credentials of routes and leaf links.
struct Links {
    route_user: String,
    route_secret: Secret,
    leaf_user: String,
    leaf_secret: Secret,
}

/// The trial's NATS servers.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts `size` cluster servers on hosts 0..size and a leaf node on
    /// every other host of `hosts`, and waits until they are ready.
    pub async fn start(
        binary: &Path,
        hosts: &Hosts,
        size: usize,
        workdir: &Path,
        logs: &Path,
        token: &Secret,
    ) -> Result<Cluster, SupervisorError> {
        let links = Links {
            route_user: "route".into(),
            route_secret: Secret::random(),
            leaf_user: "leaf".into(),
            leaf_secret: Secret::random(),
        };
        let members: Vec<Ipv4Addr> = hosts.hosts()[..size].iter().map(|h| h.addr).collect();
        let mut cluster = Cluster { nodes: Vec::new() };
        for host in hosts.hosts() {
            let (name, role) = if host.index < size {
                (format!("n{}", host.index), Role::Cluster)
            } else {
                (format!("leaf{}", host.index), Role::Leaf)
            };
            let store = workdir.join(format!("nats-{name}"));
            let text = match role {
                Role::Cluster => {
                    member_config(&name, host.addr, &members, &store, token, &links, size)
                }
                Role::Leaf => leaf_config(&name, host.addr, &members, token, &links),
            };
            let conf = workdir.join(format!("nats-{name}.conf"));
            super::nats::write_private(&conf, &text)
                .map_err(|e| SupervisorError::io(format!("write {}", conf.display()), e))?;
            let log = logs.join(format!("nats-{name}.log"));
            let log_file = std::fs::File::create(&log)
                .map_err(|e| SupervisorError::io(format!("create {}", log.display()), e))?;
            let [ip, netns, exec, ns] = hosts.exec_prefix(host.index);
            let mut cmd = Command::new(ip);
            cmd.args([netns, exec, ns])
                .arg(binary)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file));
            process::supervise(&mut cmd);
            let child = cmd.spawn().map_err(|e| SupervisorError::Spawn {
                what: format!("nats-server {name} ({})", binary.display()),
                source: e,
            })?;
            cluster.nodes.push(Node {
                name,
                host: host.index,
                role,
                addr: host.addr,
                child: Some(child),
            });
        }
        cluster.wait_ready(logs).await?;
        Ok(cluster)
    }

    /// The servers, cluster members first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Cluster members.
    pub fn size(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Cluster)
            .count()
    }

    /// The URLs a process on `host` is given: on a cluster host its own
    /// server first, then the other members; on a leaf host its leaf node.
    pub fn urls_for(&self, host: usize) -> String {
        let own = self.nodes.iter().find(|n| n.host == host);
        match own {
            Some(node) if node.role == Role::Leaf => node.client_url(),
            _ => {
                let mut members: Vec<&Node> = self
                    .nodes
                    .iter()
                    .filter(|n| n.role == Role::Cluster)
                    .collect();
                members.sort_by_key(|n| n.host != host);
                members
                    .iter()
                    .map(|n| n.client_url())
                    .collect::<Vec<_>>()
                    .join(",")
            }
        }
    }

    /// Kills (SIGKILL) the last cluster member that does not run on host 0,
    /// where the hub is; its name, or `None` when there is none to kill.
    pub fn kill_one(&self) -> Option<String> {
        let node = self
            .nodes
            .iter()
            .rev()
            .find(|n| n.role == Role::Cluster && n.host != 0 && n.child.is_some())?;
        let child = node.child.as_ref()?;
        process::signal_group(child, Signal::SIGKILL);
        Some(format!("{} on host {}", node.name, node.host))
    }

    /// Stops every server (SIGTERM, then SIGKILL after `grace`).
    pub async fn stop(&mut self, grace: Duration) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = process::stop(&mut child, grace).await;
            }
        }
    }

    async fn wait_ready(&mut self, logs: &Path) -> Result<(), SupervisorError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..self.nodes.len() {
            loop {
                let node = &mut self.nodes[i];
                let monitor = SocketAddr::from((node.addr, MONITOR_PORT));
                let path = match node.role {
                    Role::Cluster => "/healthz",
                    Role::Leaf => "/leafz",
                };
                let url = format!("http://{monitor}{path}");
                let role = node.role;
                let ready = tokio::task::spawn_blocking(move || probe(&url, role))
                    .await
                    .unwrap_or(false);
                if ready {
                    break;
                }
                let log = logs.join(format!("nats-{}.log", node.name));
                if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                    return Err(SupervisorError::ChildFailed {
                        what: format!("nats-server {}", node.name),
                        detail: format!("exited with {status}; see {}", log.display()),
                    });
                }
                if Instant::now() > deadline {
                    return Err(SupervisorError::ChildFailed {
                        what: format!("nats-server {}", node.name),
                        detail: format!(
                            "not ready after {} s (JetStream cluster or leaf link); see {}",
                            READY_TIMEOUT.as_secs(),
                            log.display()
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// Whether a server's monitoring endpoint says it is ready: a cluster
/// member's `/healthz` answers 200 once JetStream is current; a leaf
/// node's `/leafz` lists its link to the cluster.
fn probe(url: &str, role: Role) -> bool {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|a| a.parse::<SocketAddr>().ok());
    let listening =
        addr.is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok());
    if !listening {
        return false;
    }
    let Ok(response) = ureq::get(url).timeout(Duration::from_secs(2)).call() else {
        return false;
    };
    match role {
        Role::Cluster => true,
        Role::Leaf => serde_json::from_reader::<_, serde_json::Value>(response.into_reader())
            .ok()
            .and_then(|v| v.get("leafnodes").and_then(serde_json::Value::as_u64))
            .is_some_and(|n| n > 0),
    }
}

/// A cluster member's config.
fn member_config(
    name: &str,
    addr: Ipv4Addr,
    members: &[Ipv4Addr],
    store: &Path,
    token: &Secret,
    links: &Links,
    size: usize,
) -> String {
    let routes: Vec<String> = members
        .iter()
        .filter(|m| **m != addr)
        .map(|m| {
            format!(
                "\"nats-route://{}:{}@{m}:{ROUTE_PORT}\"",
                links.route_user,
                links.route_secret.expose()
            )
        })
        .collect();
    // Secrets are hex and names plain words: nothing needs escaping.
    let cluster = if size > 1 {
        format!(
            "cluster {{\n  name: herd\n  listen: \"{addr}:{ROUTE_PORT}\"\n  \
             authorization {{ user: {}, password: \"{}\" }}\n  routes: [{}]\n}}\n",
            links.route_user,
            links.route_secret.expose(),
            routes.join(", ")
        )
    } else {
        String::new()
    };
    format!(
        "server_name: {name}\nlisten: \"{addr}:{CLIENT_PORT}\"\nhttp: \"{addr}:{MONITOR_PORT}\"\n\
         authorization {{ token: \"{}\" }}\n\
         jetstream {{ store_dir: \"{}\", domain: {DOMAIN} }}\n{cluster}\
         leafnodes {{\n  listen: \"{addr}:{LEAF_PORT}\"\n  \
         authorization {{ user: {}, password: \"{}\" }}\n}}\n",
        token.expose(),
        store.display(),
        links.leaf_user,
        links.leaf_secret.expose(),
    )
}

/// A leaf node's config: clients on its host, a link to every member.
fn leaf_config(
    name: &str,
    addr: Ipv4Addr,
    members: &[Ipv4Addr],
    token: &Secret,
    links: &Links,
) -> String {
    let urls: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                "\"nats-leaf://{}:{}@{m}:{LEAF_PORT}\"",
                links.leaf_user,
                links.leaf_secret.expose()
            )
        })
        .collect();
    format!(
        "server_name: {name}\nlisten: \"{addr}:{CLIENT_PORT}\"\nhttp: \"{addr}:{MONITOR_PORT}\"\n\
         authorization {{ token: \"{}\" }}\n\
         leafnodes {{ remotes: [ {{ urls: [{}] }} ] }}\n",
        token.expose(),
        urls.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links {
            route_user: "route".into(),
            route_secret: Secret::new("r0ute"),
            leaf_user: "leaf".into(),
            leaf_secret: Secret::new("l3af"),
        }
    }

    #[test]
    fn a_member_routes_to_the_others_and_listens_on_its_host() {
        let members = [
            Ipv4Addr::new(10, 213, 7, 2),
            Ipv4Addr::new(10, 213, 7, 3),
            Ipv4Addr::new(10, 213, 7, 4),
        ];
        let text = member_config(
            "n1",
            members[1],
            &members,
            Path::new("/w/nats-n1"),
            &Secret::new("tok"),
            &links(),
            3,
        );
        assert!(text.contains("listen: \"10.213.7.3:4222\""), "{text}");
        assert!(
            text.contains("nats-route://route:r0ute@10.213.7.2:6222"),
            "{text}"
        );
        assert!(
            text.contains("nats-route://route:r0ute@10.213.7.4:6222"),
            "{text}"
        );
        assert!(
            !text.contains("@10.213.7.3:6222"),
            "no route to itself: {text}"
        );
        assert!(text.contains("domain: herd"), "{text}");
        assert!(text.contains("token: \"tok\""), "{text}");
    }

    #[test]
    fn a_leaf_node_links_to_every_member() {
        let members = [Ipv4Addr::new(10, 213, 7, 2), Ipv4Addr::new(10, 213, 7, 3)];
        let text = leaf_config(
            "leaf4",
            Ipv4Addr::new(10, 213, 7, 6),
            &members,
            &Secret::new("tok"),
            &links(),
        );
        assert!(
            text.contains("nats-leaf://leaf:l3af@10.213.7.2:7422"),
            "{text}"
        );
        assert!(
            text.contains("nats-leaf://leaf:l3af@10.213.7.3:7422"),
            "{text}"
        );
        assert!(!text.contains("jetstream"), "{text}");
    }
}
