//! Shaped links between simulated hosts: a switch in herd's own process
//! that carries every packet between the hosts, holding each for its
//! link's delay and dropping some at its loss rate, as `tc netem` would.
//!
//! Why not netem: the kernels herd runs on need not have `sch_netem` (this
//! project's CI machine has neither it nor NFQUEUE), while every Linux has
//! TUN. So with shaping, each host's `eth0` is a TUN device made inside
//! its namespace, and herd's namespace gets one more (the gateway, `.1`,
//! through which herd reaches the hosts). A reader thread per device takes
//! the IPv4 packets the kernel routes out of it, looks up the device of
//! the destination address, and hands each packet to the delivery thread
//! with the time it is due; that thread writes it into the destination's
//! device then. A packet leaving host i waits host i's delay (drawn
//! evenly from delay ± jitter, never before the packet sent ahead of it,
//! so a link keeps its order) and is dropped with host i's loss
//! probability: a round trip between two hosts takes twice the delay, as
//! with netem on each host's interface. The gateway's link is not shaped.
//!
//! A host's link can be cut (every packet to or from it dropped) and
//! slowed (its delay raised) while the trial runs. The devices vanish when
//! the switch closes them, and with herd if it dies.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// How a host's outgoing packets are treated.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkShape {
    /// The mean delay.
    pub delay: Duration,
    /// Delays are drawn evenly from `delay ± jitter`.
    pub jitter: Duration,
    /// The share of packets dropped, 0–1.
    pub loss: f64,
}

impl LinkShape {
    /// Whether packets are delayed or dropped at all.
    pub fn shapes(&self) -> bool {
        !self.delay.is_zero() || self.loss > 0.0
    }
}

impl std::fmt::Display for LinkShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.delay.as_millis())?;
        if !self.jitter.is_zero() {
            write!(f, " ± {} ms", self.jitter.as_millis())?;
        }
        write!(f, " delay, {} % loss", self.loss * 100.0)
    }
}

/// `--link-delay MS[:JITTER_MS]`: a delay and its jitter.
pub fn parse_delay(s: &str) -> Result<(Duration, Duration), String> {
    let bad = || format!("{s:?} is not MS or MS:JITTER_MS (e.g. 50:10)");
    let ms = |v: &str| v.parse::<u64>().ok().filter(|x| *x <= 10_000);
    let (delay, jitter) = match s.split_once(':') {
        Some((d, j)) => (ms(d).ok_or_else(bad)?, ms(j).ok_or_else(bad)?),
        None => (ms(s).ok_or_else(bad)?, 0),
    };
    if jitter > delay {
        return Err(format!("{s:?}: the jitter is larger than the delay"));
    }
    Ok((Duration::from_millis(delay), Duration::from_millis(jitter)))
}

/// `--link-loss PCT`: a percentage of packets, 0–50.
pub fn parse_loss(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=50.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("{s:?} is not a percentage from 0 to 50")),
    }
}

/// A host's link slowed for a while: `--slow-host I:SECS:DURATION:DELAY_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowHost {
    /// The host.
    pub host: usize,
    /// When its link slows, from the leaves' start.
    pub at: Duration,
    /// How long it stays slow.
    pub duration: Duration,
    /// The delay added to its outgoing packets meanwhile.
    pub extra: Duration,
}

impl std::str::FromStr for SlowHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not HOST:SECS:DURATION:DELAY_MS (e.g. 1:5:10:200)");
        // A partition's HOST:SECS:DURATION, then the delay.
        let (when, extra) = s.rsplit_once(':').ok_or_else(bad)?;
        let window: super::Partition = when.parse().map_err(|_| bad())?;
        let extra = extra.parse::<u64>().ok().filter(|ms| *ms <= 10_000);
        Ok(SlowHost {
            host: window.host,
            at: window.at,
            duration: window.duration,
            extra: Duration::from_millis(extra.ok_or_else(bad)?),
        })
    }
}

/// Why a switch could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A TUN device could not be made.
    #[error("cannot make TUN device {name} (shaped links need /dev/net/tun)")]
    Tun {
        /// Its name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A namespace could not be entered.
    #[error("cannot enter network namespace {netns}")]
    Netns {
        /// Its name.
        netns: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// One device on the switch.
struct Port {
    tun: File,
    /// The last octet of the address behind it (1: the gateway).
    octet: u8,
    shape: Mutex<LinkShape>,
    cut: AtomicBool,
}

/// A packet on its way.
struct InFlight {
    due: Instant,
    seq: u64,
    to: usize,
    packet: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// The earliest due first (a max-heap, so reversed).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The running switch; stopped, its devices closed, on drop.
pub struct Switch {
    ports: Arc<Vec<Port>>,
    base: Vec<LinkShape>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// How long a reader waits for a packet before looking at the stop flag.
const POLL_MS: i32 = 100;
/// The largest packet a TUN device hands over.
const MAX_PACKET: usize = 65_536;

impl Switch {
    /// Makes the gateway device `gateway` in herd's namespace and an
    /// `eth0` in each of `netns` (host i's shaped by `shapes[i]`), and
    /// starts carrying packets. `octets[i]` is the last octet of host i's
    /// address; the gateway's is 1. Addresses and links are set up by the
    /// caller (`ip`). `seed` seeds the delays and losses drawn.
    pub fn start(
        gateway: &str,
        netns: &[String],
        octets: &[u8],
        shapes: &[LinkShape],
        seed: u64,
    ) -> Result<Switch, LinkError> {
        let mut ports = vec![Port {
            tun: open_tun(gateway)?,
            octet: 1,
            shape: Mutex::new(LinkShape::default()),
            cut: AtomicBool::new(false),
        }];
        for ((ns, &octet), &shape) in netns.iter().zip(octets).zip(shapes) {
            ports.push(Port {
                tun: tun_in(ns)?,
                octet,
                shape: Mutex::new(shape),
                cut: AtomicBool::new(false),
            });
        }
        let ports = Arc::new(ports);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<InFlight>();
        let mut threads = Vec::new();
        for from in 0..ports.len() {
            let (ports, stop, tx) = (ports.clone(), stop.clone(), tx.clone());
            let rng = rand_pcg::Pcg64::seed_from_u64(seed ^ from as u64);
            threads.push(std::thread::spawn(move || {
                read_port(&ports, from, &stop, &tx, rng)
            }));
        }
        drop(tx);
        let deliver = ports.clone();
        threads.push(std::thread::spawn(move || deliver_due(&deliver, &rx)));
        Ok(Switch {
            ports,
            base: std::iter::once(LinkShape::default())
                .chain(shapes.iter().copied())
                .collect(),
            stop,
            threads,
        })
    }

    /// Drops every packet to or from host `host` until [`Self::restore`].
    pub fn cut(&self, host: usize) {
        self.ports[host + 1].cut.store(true, Ordering::Relaxed);
    }

    /// Carries host `host`'s packets again.
    pub fn restore(&self, host: usize) {
        self.ports[host + 1].cut.store(false, Ordering::Relaxed);
    }

    /// Adds `extra` to host `host`'s delay until [`Self::unslow`].
    pub fn slow(&self, host: usize, extra: Duration) {
        let base = self.base[host + 1];
        if let Ok(mut shape) = self.ports[host + 1].shape.lock() {
            shape.delay = base.delay + extra;
        }
    }

    /// Gives host `host` its own delay back.
    pub fn unslow(&self, host: usize) {
        if let Ok(mut shape) = self.ports[host + 1].shape.lock() {
            *shape = self.base[host + 1];
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Reads port `from`'s packets until stopped, sending each on with its due
/// time (or dropping it).
fn read_port(
    ports: &[Port],
    from: usize,
    stop: &AtomicBool,
    tx: &mpsc::Sender<InFlight>,
    mut rng: rand_pcg::Pcg64,
) {
    let port = &ports[from];
    let mut buf = vec![0u8; MAX_PACKET];
    let mut last_due = Instant::now();
    let mut seq = (from as u64) << 48;
    while !stop.load(Ordering::Relaxed) {
        if !readable(&port.tun, POLL_MS) {
            continue;
        }
        let n = match (&port.tun).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let packet = &buf[..n];
        // IPv4 only: version 4, destination at bytes 16..20.
        if n < 20 || packet[0] >> 4 != 4 {
            continue;
        }
        let Some(to) = ports.iter().position(|p| p.octet == packet[19]) else {
            continue;
        };
        if port.cut.load(Ordering::Relaxed) || ports[to].cut.load(Ordering::Relaxed) {
            continue;
        }
        let shape = port.shape.lock().map(|s| *s).unwrap_or_default();
        if shape.loss > 0.0 && rng.gen_bool(shape.loss) {
            continue;
        }
        let wait = if shape.jitter.is_zero() {
            shape.delay
        } else {
            let (lo, hi) = (shape.delay - shape.jitter, shape.delay + shape.jitter);
            rng.gen_range(lo..=hi)
        };
        let due = (Instant::now() + wait).max(last_due);
        last_due = due;
        seq += 1;
        let flight = InFlight {
            due,
            seq,
            to,
            packet: packet.to_vec(),
        };
        if tx.send(flight).is_err() {
            return;
        }
    }
}

/// Writes each packet into its destination's device when it is due, until
/// every reader has gone.
fn deliver_due(ports: &[Port], rx: &mpsc::Receiver<InFlight>) {
    let mut heap = BinaryHeap::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|f: &InFlight| f.due <= now) {
            if let Some(f) = heap.pop() {
                // A full device queue drops the packet, as a wire would.
                let _ = (&ports[f.to].tun).write(&f.packet);
            }
        }
        let next = match heap.peek() {
            Some(f) => rx.recv_timeout(f.due.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(f) => heap.push(f),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Whether `file` has something to read within `ms`.
fn readable(file: &File, ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// The part of `struct ifreq` TUNSETIFF reads: the name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens a TUN device (no packet information header) named `name` in the
/// calling thread's network namespace, non-blocking.
fn open_tun(name: &str) -> Result<File, LinkError> {
    let fail = |source| LinkError::Tun {
        name: name.to_string(),
        source,
    };
    if name.len() >= libc::IFNAMSIZ {
        return Err(fail(std::io::Error::other("name too long")));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .map_err(fail)?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads an ifreq; `req` is one, laid out as C does,
    // and lives for the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    Ok(file)
}

use std::os::unix::fs::OpenOptionsExt as _;

/// Opens `eth0` as a TUN device inside namespace `netns`: from a thread
/// that enters it (a namespace is per thread), so herd's own stays as it
/// is. The device stays in the namespace it was made in.
fn tun_in(netns: &str) -> Result<File, LinkError> {
    let ns = netns.to_string();
    std::thread::spawn(move || {
        let path = format!("/var/run/netns/{ns}");
        let fail = |source| LinkError::Netns {
            netns: ns.clone(),
            source,
        };
        let handle = File::open(&path).map_err(fail)?;
        // SAFETY: setns with a namespace file descriptor we hold open;
        // it changes only this thread, which ends right after.
        if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(fail(std::io::Error::last_os_error()));
        }
        open_tun("eth0")
    })
    .join()
    .unwrap_or_else(|_| {
        Err(LinkError::Netns {
            netns: netns.to_string(),
            source: std::io::Error::other("the thread entering it failed"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_and_losses_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_delay("50:10"),
            Ok((Duration::from_millis(50), Duration::from_millis(10)))
        );
        assert_eq!(
            parse_delay("20"),
            Ok((Duration::from_millis(20), Duration::ZERO))
        );
        assert!(parse_delay("10:20").unwrap_err().contains("jitter"));
        assert!(parse_delay("x").is_err() && parse_delay("5:").is_err());
        assert_eq!(parse_loss("1"), Ok(0.01));
        assert!(parse_loss("60").is_err() && parse_loss("-1").is_err());
        let shape = LinkShape {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(10),
            loss: 0.01,
        };
        assert_eq!(shape.to_string(), "50 ms ± 10 ms delay, 1 % loss");
        let slow: SlowHost = "1:5:10:200".parse().unwrap();
        assert_eq!(
            (slow.host, slow.at, slow.duration, slow.extra),
            (
                1,
                Duration::from_secs(5),
                Duration::from_secs(10),
                Duration::from_millis(200)
            )
        );
        assert!("1:5:0:200".parse::<SlowHost>().is_err());
        assert!("1:5:10".parse::<SlowHost>().is_err());
    }
}
