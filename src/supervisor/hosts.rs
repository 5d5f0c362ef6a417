//! Simulated hosts: one Linux network namespace per host, all on one bridge.
//!
//! `herd run --hosts H` makes H namespaces, each with a veth pair whose
//! outer end is on a bridge in herd's own namespace. Addresses come from a
//! private /24 chosen for the trial (`10.213.N.0/24`, N free on this
//! machine): the bridge is `.1` (so herd reaches every host), host i is
//! `.(i + 2)`. A process runs on a host by being started through `ip netns
//! exec`, which enters the namespace and then executes the program in the
//! same process, so herd supervises it like any child.
//!
//! Everything is named after herd's pid (`herd<PID>h<I>` namespaces,
//! `hb<PID>` bridge, `hv<PID>h<I>` veths), so a later herd can tell a dead
//! herd's leftovers from a running one's: [`remove_stale`] removes every
//! namespace and bridge whose herd is gone. Removing a namespace removes its
//! veth pair with it. [`Hosts`] removes its own on drop, which covers a
//! normal end, an error and SIGINT (herd stops its trial and returns);
//! after a SIGKILL the next herd that makes hosts cleans up.
//!
//! Cutting a host's link ([`Hosts::cut`]) sets the outer veth down: the
//! host's processes keep running but reach nothing until it comes back up.
//!
//! With shaped links ([`Shaping`]) there is no bridge and no veth: each
//! host's `eth0` is a TUN device of herd's switch ([`super::links`]),
//! which delays and drops packets, cuts a host by dropping its packets
//! and slows one by raising its delay.

use std::net::Ipv4Addr;
use std::process::Command;

use super::links::{LinkError, LinkShape, Switch};

/// The /16 trial subnets are taken from: 10.213.N.0/24.
const NET: [u8; 2] = [10, 213];
/// Most hosts a trial can have: a /24 less the bridge and the broadcast.
pub const MAX_HOSTS: u32 = 250;

/// Why hosts could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// Namespaces need root.
    #[error(
        "--hosts needs root to create network namespaces (run herd as root, or use --hosts 1)"
    )]
    NotRoot,
    /// `ip` could not run at all.
    #[error("cannot run `ip` (iproute2; scripts/install-deps installs it)")]
    NoIp(#[source] std::io::Error),
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Command {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// Every candidate subnet is in use.
    #[error("no free 10.213.N.0/24 subnet on this machine for the trial's hosts")]
    NoSubnet,
    /// More hosts than a subnet holds.
    #[error("--hosts {0} is more than the {MAX_HOSTS} one trial can have")]
    TooMany(u32),
    /// The shaped links' switch could not be made.
    #[error(transparent)]
    Links(LinkError),
    /// A link was to be slowed on hosts without shaped links.
    #[error("slowing a host's link needs shaped links (--link-delay, --link-loss or --slow-host)")]
    NotShaped,
}

/// Runs `ip ARGS`; its stdout on success.
fn ip(args: &[&str]) -> Result<String, HostsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(HostsError::NoIp)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HostsError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// One simulated host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its index, from 0 (the hub's host).
    pub index: usize,
    /// The namespace's name.
    pub netns: String,
    /// The outer veth, on the bridge.
    veth: String,
    /// The host's address.
    pub addr: Ipv4Addr,
}

/// A trial's hosts; removed on drop.
pub struct Hosts {
    bridge: String,
    gateway: Ipv4Addr,
    hosts: Vec<Host>,
    /// With shaped links, the switch carrying every packet between the
    /// hosts (in place of the bridge and the veth pairs).
    switch: Option<Switch>,
}

impl std::fmt::Debug for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosts")
            .field("bridge", &self.bridge)
            .field("hosts", &self.hosts)
            .field("shaped", &self.switch.is_some())
            .finish()
    }
}

/// Links shaped by herd's switch: each host's shape, and the seed its
/// delays and losses are drawn from.
#[derive(Debug, Clone)]
pub struct Shaping {
    /// Host i's outgoing link.
    pub shapes: Vec<LinkShape>,
    /// Seeds the draws.
    pub seed: u64,
}

impl Hosts {
    /// Makes `count` hosts for this herd process (after removing what dead
    /// herds left behind), on a bridge, or on herd's switch when `shaping`
    /// is given. On failure nothing made so far is left.
    pub fn create(count: u32, shaping: Option<Shaping>) -> Result<Hosts, HostsError> {
        if count > MAX_HOSTS {
            return Err(HostsError::TooMany(count));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(HostsError::NotRoot);
        }
        remove_stale()?;
        let pid = std::process::id();
        let subnet = free_subnet(pid)?;
        let addr = |last: u8| Ipv4Addr::new(NET[0], NET[1], subnet, last);
        let mut hosts = Hosts {
            bridge: format!("hb{pid}"),
            gateway: addr(1),
            hosts: Vec::new(),
            switch: None,
        };
        // From here on, dropping `hosts` removes whatever was made.
        if let Some(shaping) = shaping {
            hosts.wire_switch(count, &shaping, addr)?;
            return Ok(hosts);
        }
        ip(&["link", "add", &hosts.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", hosts.gateway),
            "dev",
            &hosts.bridge,
        ])?;
        ip(&["link", "set", &hosts.bridge, "up"])?;
        for index in 0..count as usize {
            let host = Host {
                index,
                netns: format!("herd{pid}h{index}"),
                veth: format!("hv{pid}h{index}"),
                addr: addr(index as u8 + 2),
            };
            let peer = format!("hp{pid}h{index}");
            ip(&["netns", "add", &host.netns])?;
            hosts.hosts.push(host.clone());
            let ns = host.netns.as_str();
            ip(&[
                "link", "add", &host.veth, "type", "veth", "peer", "name", &peer,
            ])?;
            ip(&["link", "set", &peer, "netns", ns])?;
            ip(&["link", "set", &host.veth, "master", &hosts.bridge, "up"])?;
            ip(&["-n", ns, "link", "set", &peer, "name", "eth0"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", host.addr),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// Makes the namespaces, then the switch's devices in them, then
    /// gives each its address.
    fn wire_switch(
        &mut self,
        count: u32,
        shaping: &Shaping,
        addr: impl Fn(u8) -> Ipv4Addr,
    ) -> Result<(), HostsError> {
        let pid = std::process::id();
        for index in 0..count as usize {
            let host = Host {
                index,
                netns: format!("herd{pid}h{index}"),
                veth: String::new(),
                addr: addr(index as u8 + 2),
            };
            ip(&["netns", "add", &host.netns])?;
            self.hosts.push(host);
        }
        let netns: Vec<String> = self.hosts.iter().map(|h| h.netns.clone()).collect();
        let octets: Vec<u8> = self.hosts.iter().map(|h| h.addr.octets()[3]).collect();
        let switch = Switch::start(&self.bridge, &netns, &octets, &shaping.shapes, shaping.seed)
            .map_err(HostsError::Links)?;
        self.switch = Some(switch);
        let gateway = format!("{}/24", self.gateway);
        ip(&["addr", "add", &gateway, "dev", &self.bridge])?;
        ip(&["link", "set", &self.bridge, "up"])?;
        for host in &self.hosts {
            let ns = host.netns.as_str();
            let cidr = format!("{}/24", host.addr);
            ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Adds `extra` to host `index`'s delay (shaped links only).
    pub fn slow(&self, index: usize, extra: std::time::Duration) -> Result<(), HostsError> {
        let switch = self.switch.as_ref().ok_or(HostsError::NotShaped)?;
        switch.slow(index, extra);
        Ok(())
    }

    /// Gives host `index` its own delay back.
    pub fn unslow(&self, index: usize) -> Result<(), HostsError> {
        let switch = self.switch.as_ref().ok_or(HostsError::NotShaped)?;
        switch.unslow(index);
        Ok(())
    }

    /// The hosts, by index.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The bridge's address in herd's namespace.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The words that run a command on host `index`: `ip netns exec NS`.
    pub fn exec_prefix(&self, index: usize) -> [String; 4] {
        let ns = &self.hosts[index].netns;
        ["ip".into(), "netns".into(), "exec".into(), ns.clone()]
    }

    /// Takes host `index`'s link down: its processes reach nothing.
    pub fn cut(&self, index: usize) -> Result<(), HostsError> {
        if let Some(switch) = &self.switch {
            switch.cut(index);
            return Ok(());
        }
        ip(&["link", "set", &self.hosts[index].veth, "down"]).map(drop)
    }

    /// Brings host `index`'s link back up.
    pub fn restore(&self, index: usize) -> Result<(), HostsError> {
        if let Some(switch) = &self.switch {
            switch.restore(index);
            return Ok(());
        }
        ip(&["link", "set", &self.hosts[index].veth, "up"]).map(drop)
    }

    /// Removes the namespaces (and their veths) and the bridge. Idempotent.
    pub fn remove(&mut self) {
        // Closing the switch's devices removes them.
        let shaped = self.switch.take().is_some();
        for host in self.hosts.drain(..) {
            // The pair goes at once with its outer end; left to the
            // namespace, it would go whenever the kernel frees that.
            if !shaped {
                let _ = ip(&["link", "del", &host.veth]);
            }
            if let Err(e) = ip(&["netns", "del", &host.netns]) {
                tracing::warn!(netns = %host.netns, error = %e, "cannot remove a host's namespace");
            }
        }
        if !self.bridge.is_empty() && !shaped {
            let _ = ip(&["link", "del", &self.bridge]);
            self.bridge.clear();
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A subnet number N of 10.213.N.0/24 that no address or route of this
/// machine uses, starting from one the pid picks.
fn free_subnet(pid: u32) -> Result<u8, HostsError> {
    let used = ip(&["-o", "-4", "addr", "show"])? + &ip(&["-4", "route", "show"])?;
    let start = pid % 254;
    (0..254)
        .map(|i| ((start + i) % 254 + 1) as u8)
        .find(|n| !used.contains(&format!("{}.{}.{n}.", NET[0], NET[1])))
        .ok_or(HostsError::NoSubnet)
}

/// The herd pid a name of ours carries: `herd<PID>h<I>` (namespace),
/// `hb<PID>` (bridge), `hv<PID>h<I>` and `hp<PID>h<I>` (the two ends of a
/// veth pair; both are in herd's namespace while a host is being made).
fn owner(name: &str) -> Option<u32> {
    let digits = ["herd", "hb", "hv", "hp"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))?;
    let pid = digits.split('h').next()?;
    pid.parse().ok()
}

/// Whether `pid` is a running herd.
fn herd_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "herd")
}

/// Removes the namespaces and bridges of herds that are no longer running;
/// returns how many were removed.
pub fn remove_stale() -> Result<usize, HostsError> {
    let mut removed = 0;
    for line in ip(&["netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if owner(name).is_some_and(|pid| !herd_alive(pid)) && ip(&["netns", "del", name]).is_ok() {
            removed += 1;
        }
    }
    // Bridges, and veths a herd killed while making a host left behind
    // (a veth still in this namespace; the others went with their
    // namespace). Deleting one end of a pair deletes the other.
    for name in link_names()? {
        if owner(&name).is_some_and(|pid| !herd_alive(pid)) && ip(&["link", "del", &name]).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The names of this namespace's links that are ours: "7: hb1234: <…>" or
/// "9: hv1234h0@if3: <…>" lines of `ip -o link`.
fn link_names() -> Result<Vec<String>, HostsError> {
    Ok(ip(&["-o", "link", "show"])?
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .filter(|n| !n.starts_with("herd") && owner(n).is_some())
        .collect())
}

/// The names of every namespace and link of ours on this machine, for
/// tests and diagnostics.
pub fn ours_present() -> Result<Vec<String>, HostsError> {
    let mut names: Vec<String> = ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| owner(n).is_some())
        .map(String::from)
        .collect();
    names.extend(link_names()?);
    Ok(names)
}

/// The namespaces and links of herd `pid` still on this machine (after
/// that herd exited: what it left behind).
pub fn left_by(pid: u32) -> Result<Vec<String>, HostsError> {
    Ok(ours_present()?
        .into_iter()
        .filter(|n| owner(n) == Some(pid))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_herd() {
        assert_eq!(owner("herd4242h3"), Some(4242));
        assert_eq!(owner("hb4242"), Some(4242));
        assert_eq!(owner("hv4242h1"), Some(4242));
        assert_eq!(owner("hp4242h1"), Some(4242));
        assert_eq!(owner("herdsman"), None);
        assert_eq!(owner("docker0"), None);
    }
}
