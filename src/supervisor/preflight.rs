//! What herd refuses before a trial starts: a work directory that already
//! holds something (a work directory holds one trial), and a herd larger
//! than the machine can hold (open files, memory). Each refusal is one line
//! that names the limit and the figures, so a trial that cannot finish is
//! refused in a second instead of running for minutes.

use std::path::Path;

use super::SupervisorError;

/// Memory one sparse leaf-agent costs the machine, in MiB: `scripts/leaf-cost`
/// measured the fall of MemAvailable per live leaf (its pages, page
/// tables and socket buffers, and what the hub and nats-server keep per
/// connection) at 2.5 MiB over 512 sparse leaves; this leaves room.
pub const SPARSE_LEAF_MEMORY_MIB: u64 = 4;
/// Memory one full leaf-agent costs, in MiB: as a sparse one, plus the
/// SQLite page cache it fills while applying every trunk check-in (its
/// own memory reached 8 MiB over 256 full leaves, `scripts/leaf-cost
/// --leaf full`).
pub const FULL_LEAF_MEMORY_MIB: u64 = 10;
/// The hub and nats-server together, in MiB, beyond what each leaf adds
/// (the hub's bound is in docs/guide/guarantees.md).
pub const BASE_MEMORY_MIB: u64 = 512;
/// Descriptors herd holds per leaf: its stdout and stderr pipes and the
/// handle that waits for it, with room.
pub const FILES_PER_LEAF: u64 = 4;
/// Descriptors herd holds beyond its leaves.
pub const BASE_FILES: u64 = 256;

/// What the machine has for a trial.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// The hard open-file limit (RLIMIT_NOFILE) herd's children inherit.
    pub nofile_hard: u64,
    /// MemAvailable from /proc/meminfo, in KiB; `None` when unreadable.
    pub mem_available_kib: Option<u64>,
}

impl Machine {
    /// Reads the limits of this process and this machine.
    pub fn read() -> Machine {
        use nix::sys::resource::{getrlimit, Resource};
        let nofile_hard = getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(_, hard)| hard);
        let mem_available_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| mem_available(&text));
        Machine {
            nofile_hard,
            mem_available_kib,
        }
    }
}

fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Every refusal that needs no process started, in order: the machine's
/// capacity (open files, memory, tmpfs), the NATS server given, the free
/// space where the work directory will be (the one asked for, or the
/// temporary directory).
pub fn admit(config: &super::TrialConfig) -> Result<(), SupervisorError> {
    let home = config.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let in_memory = on_tmpfs(&home).then_some(home.as_path());
    check_capacity(config, Machine::read(), in_memory)?;
    if let Some(urls) = &config.nats_url {
        check_nats_url(urls)?;
    }
    check_space(config, &home)
}

/// The memory, in MiB, one leaf-agent of `leaf` mode costs the machine.
pub fn leaf_memory_mib(leaf: crate::wire::LeafMode) -> u64 {
    match leaf {
        crate::wire::LeafMode::Full => FULL_LEAF_MEMORY_MIB,
        crate::wire::LeafMode::Sparse => SPARSE_LEAF_MEMORY_MIB,
    }
}

/// Refuses a herd the machine cannot hold: herd keeps a few descriptors
/// per leaf (and the hub and nats-server one connection each), every leaf
/// is a process of its own, and a work directory on tmpfs (`in_memory`)
/// holds what the trial writes in memory too. The refusal names each
/// figure it used and the largest herd that would fit.
pub fn check_capacity(
    config: &super::TrialConfig,
    machine: Machine,
    in_memory: Option<&Path>,
) -> Result<(), SupervisorError> {
    let agents = config.spec.agents;
    let agents64 = u64::from(agents);
    let files = agents64 * FILES_PER_LEAF + BASE_FILES;
    if files > machine.nofile_hard {
        let most = machine.nofile_hard.saturating_sub(BASE_FILES) / FILES_PER_LEAF;
        return Err(SupervisorError::TooBig {
            agents,
            detail: format!(
                "need about {files} open files, but the hard open-file limit (RLIMIT_NOFILE) is {}; \
                 raise it (ulimit -Hn) or run at most {most} agents",
                machine.nofile_hard
            ),
        });
    }
    let Some(available_kib) = machine.mem_available_kib else {
        return Ok(());
    };
    let available_mib = available_kib / 1024;
    let per_leaf = leaf_memory_mib(config.spec.leaf);
    // What a herd of `n` needs: its leaves, the hub and nats-server, and
    // on tmpfs everything the trial writes.
    let need_mib = |n: u32| {
        let written = in_memory.map_or(0, |_| {
            let mut shape = config.clone();
            shape.spec.agents = n;
            estimate_disk(&shape).total().div_ceil(1 << 20)
        });
        (u64::from(n) * per_leaf + BASE_MEMORY_MIB + written, written)
    };
    let (need, written) = need_mib(agents);
    if need <= available_mib {
        return Ok(());
    }
    // The largest herd that fits, by bisection (the need grows with n).
    let (mut fits, mut over) = (0u32, agents);
    while over - fits > 1 {
        let mid = fits + (over - fits) / 2;
        if need_mib(mid).0 <= available_mib {
            fits = mid;
        } else {
            over = mid;
        }
    }
    let leaf = config.spec.leaf.to_string();
    let tmpfs = match in_memory {
        Some(dir) => format!(
            ", {:.1} GiB the trial writes to tmpfs at {}",
            written as f64 / 1024.0,
            dir.display()
        ),
        None => String::new(),
    };
    Err(SupervisorError::TooBig {
        agents,
        detail: format!(
            "need about {:.1} GiB of memory ({per_leaf} MiB per {leaf} leaf-agent, \
             {BASE_MEMORY_MIB} MiB for the hub and nats-server{tmpfs}), but MemAvailable is \
             {:.1} GiB; run at most {fits} agents on this machine",
            need as f64 / 1024.0,
            available_mib as f64 / 1024.0
        ),
    })
}

/// Whether `dir` (or its nearest existing ancestor) is on a tmpfs, whose
/// files live in memory.
pub fn on_tmpfs(dir: &Path) -> bool {
    dir.ancestors()
        .find(|a| a.exists())
        .is_some_and(|existing| {
            nix::sys::statfs::statfs(existing)
                .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        })
}

/// What a trial's repositories and stores will take on disk, in bytes: an
/// estimate from the workload's shape, generous rather than tight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskEstimate {
    /// The hub's repository.
    pub hub: u64,
    /// Every leaf's repository and worktree.
    pub leaves: u64,
    /// nats-server's JetStream store (the tip stream's bounded history and
    /// the buckets).
    pub jetstream: u64,
}

impl DiskEstimate {
    /// The sum.
    pub fn total(&self) -> u64 {
        self.hub + self.leaves + self.jetstream
    }
}

/// Bytes a check-in adds beyond its files' content: its manifest (a delta
/// manifest, and a share of the baselines) and the rows Fossil's tables
/// keep for it and its files.
const CHECKIN_OVERHEAD: u64 = 2048;
/// Bytes a sparse leaf keeps per check-in of its own beyond its files:
/// its manifest, the landed one and their rows.
const MANIFEST_BYTES: u64 = 1024;
/// Bytes of a leaf's repository before its first check-in: Fossil's
/// schema, the write-ahead log, the clone's rows.
const LEAF_REPOSITORY_BYTES: u64 = 256 * 1024;
/// Bytes an F card takes in a baseline manifest (a file's name and hash).
const F_CARD_BYTES: u64 = 100;
/// Bytes each file adds to the derived tables (mlink, filename).
const FILE_OVERHEAD: u64 = 200;
/// Bytes one task costs the JetStream buckets (its record, its holds).
const TASK_JETSTREAM: u64 = 1024;

/// The estimate for `config`: the hub holds every commit (content stored
/// zlib-compressed, random lowercase text at about two thirds); a full
/// leaf holds every commit too, plus the worktree with every file whole; a
/// sparse leaf holds its own commits and the baseline it cloned
/// (`scripts/leaf-cost` measures what it really holds); JetStream holds
/// the tip stream (at most its bound) and a record per task.
pub fn estimate_disk(config: &super::TrialConfig) -> DiskEstimate {
    let w = &config.workload();
    let commits = u64::from(config.spec.agents) * u64::from(config.spec.tasks);
    let files = (u64::from(w.min_files) + u64::from(w.max_files)).div_ceil(2);
    let bytes = (u64::from(w.min_bytes) + u64::from(w.max_bytes)).div_ceil(2);
    let content = files * bytes;
    let stored = content * 2 / 3 + CHECKIN_OVERHEAD + files * FILE_OVERHEAD;
    let hub = commits * stored;
    let agents = u64::from(config.spec.agents);
    let leaves = match config.spec.leaf {
        crate::wire::LeafMode::Full => agents * (hub + commits * content),
        crate::wire::LeafMode::Sparse => {
            // Each leaf clones the tip's manifest and its baseline (the
            // tree as it stood: on average half the trial's files) and
            // keeps its own commits.
            let baseline = commits * files * F_CARD_BYTES / 2;
            let own = u64::from(config.spec.tasks) * (stored + content + MANIFEST_BYTES);
            agents * (LEAF_REPOSITORY_BYTES + baseline + own)
        }
    };
    let stream_bound = u64::try_from(crate::coord::TIP_STREAM_MAX_BYTES).unwrap_or(u64::MAX);
    let jetstream = hub.min(stream_bound) + commits * TASK_JETSTREAM;
    DiskEstimate {
        hub,
        leaves,
        jetstream,
    }
}

/// Refuses a trial whose estimated bytes exceed the free space of the file
/// system that will hold its work directory `dir` (or its nearest existing
/// ancestor); says nothing when the free space cannot be read.
pub fn check_space(config: &super::TrialConfig, dir: &Path) -> Result<(), SupervisorError> {
    let Some(existing) = dir.ancestors().find(|a| a.exists()) else {
        return Ok(());
    };
    let Ok(stat) = nix::sys::statvfs::statvfs(existing) else {
        return Ok(());
    };
    let free = stat.blocks_available() * stat.fragment_size();
    let need = estimate_disk(config);
    if need.total() <= free {
        return Ok(());
    }
    let mib = |b: u64| b.div_ceil(1024 * 1024);
    Err(SupervisorError::NoRoom {
        path: dir.to_path_buf(),
        need_mib: mib(need.total()),
        detail: format!(
            "hub {} MiB, leaves {} MiB, JetStream {} MiB",
            mib(need.hub),
            mib(need.leaves),
            mib(need.jetstream)
        ),
        free_mib: free / (1024 * 1024),
    })
}

/// Refuses `dir` unless it does not exist yet or is empty. herd's layout
/// (hub.fossil, nats/, slot-i/, logs/) is made fresh for every trial; a
/// second trial in the same directory would meet the first one's
/// repositories (its leaves cloned into slots that already hold a clone,
/// its verdict counting the earlier trial's commits), so there is no
/// resuming: pick a new directory.
pub fn check_workdir(dir: &Path) -> Result<(), SupervisorError> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SupervisorError::io(format!("read {}", dir.display()), e)),
    };
    match entries.next() {
        None => Ok(()),
        Some(entry) => {
            let name = entry
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .unwrap_or_else(|_| "an unreadable entry".into());
            Err(SupervisorError::WorkdirInUse {
                path: dir.to_path_buf(),
                holds: name,
            })
        }
    }
}

/// Checks that some server of a `--nats-url` list accepts connections, so
/// that a wrong URL is named before the hub starts (and fails on it).
pub fn check_nats_url(urls: &str) -> Result<(), SupervisorError> {
    let unreachable = |why: String| SupervisorError::NatsUnreachable {
        url: urls.to_string(),
        why,
    };
    let servers = crate::coord::server_addrs(urls).map_err(unreachable)?;
    let mut why = Vec::new();
    for server in &servers {
        let target = format!("{}:{}", server.host(), server.port());
        let addrs = match std::net::ToSocketAddrs::to_socket_addrs(&target) {
            Ok(addrs) => addrs,
            Err(e) => {
                why.push(format!("{target}: {e}"));
                continue;
            }
        };
        for addr in addrs {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)) {
                Ok(_) => return Ok(()),
                Err(e) => why.push(format!("{addr}: {e}")),
            }
        }
    }
    Err(unreachable(why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_leaves_hold_every_commit_and_sparse_ones_little() {
        let mut config = crate::supervisor::page::tests::config(16, 30);
        let full = estimate_disk(&config);
        // 480 commits of about three 1 KB files: a few MiB on the hub, and
        // every full leaf holds as much again plus its worktree.
        assert!((1 << 20..8 << 20).contains(&full.hub), "{full:?}");
        assert!(full.leaves > 16 * full.hub, "{full:?}");
        config.spec.leaf = crate::wire::LeafMode::Sparse;
        let sparse = estimate_disk(&config);
        assert_eq!(sparse.hub, full.hub);
        assert!(sparse.leaves * 4 < full.leaves, "{sparse:?} {full:?}");
        assert!(check_space(&config, Path::new("/")).is_ok());
    }

    #[test]
    fn a_nats_url_nobody_listens_on_is_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = check_nats_url(&format!("nats://127.0.0.1:{port}")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("cannot reach NATS at nats://127.0.0.1:{port}")),
            "{text}"
        );
        assert!(text.contains("refused"), "{text}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        check_nats_url(&format!("nats://127.0.0.1:{port},nats://127.0.0.1:{open}")).unwrap();
        assert!(check_nats_url("nats://x:y").is_err());
    }

    #[test]
    fn a_herd_beyond_the_machine_is_refused_naming_the_limit() {
        let config = |agents, leaf| {
            let mut c = crate::supervisor::page::tests::config(agents, 1);
            c.spec.leaf = leaf;
            c
        };
        let (full, sparse) = (crate::wire::LeafMode::Full, crate::wire::LeafMode::Sparse);
        let big = Machine {
            nofile_hard: 1 << 20,
            mem_available_kib: Some(64 << 20),
        };
        check_capacity(&config(1024, full), big, None).unwrap();
        let few_files = Machine {
            nofile_hard: 1024,
            ..big
        };
        let err = check_capacity(&config(4096, full), few_files, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RLIMIT_NOFILE) is 1024"), "{err}");
        assert!(err.contains("16640 open files"), "{err}");
        assert!(err.contains("at most 192 agents"), "{err}");
        let little_memory = Machine {
            mem_available_kib: Some(20 << 20),
            ..big
        };
        // 4,096 × 10 MiB + 512 MiB; at most (20 GiB − 512 MiB) ÷ 10 MiB.
        let err = check_capacity(&config(4096, full), little_memory, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "4096 agents need about 40.5 GiB of memory (10 MiB per full leaf-agent"
            ),
            "{err}"
        );
        assert!(err.contains("MemAvailable is 20.0 GiB"), "{err}");
        assert!(err.contains("at most 1996 agents"), "{err}");
        // Sparse leaves fit, until what they write goes to memory too.
        check_capacity(&config(4096, sparse), little_memory, None).unwrap();
        let mut long = config(4096, sparse);
        long.spec.tasks = 200;
        let tmp = Path::new("/dev/shm");
        let err = check_capacity(&long, little_memory, Some(tmp))
            .unwrap_err()
            .to_string();
        assert!(err.contains("4 MiB per sparse leaf-agent"), "{err}");
        assert!(
            err.contains("the trial writes to tmpfs at /dev/shm"),
            "{err}"
        );
        let most: u32 = err
            .rsplit("at most ")
            .next()
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        long.spec.agents = most;
        check_capacity(&long, little_memory, Some(tmp)).unwrap();
        long.spec.agents = most + 1;
        assert!(check_capacity(&long, little_memory, Some(tmp)).is_err());
        // Unknown memory is not a refusal.
        let unknown = Machine {
            mem_available_kib: None,
            ..big
        };
        check_capacity(&config(4096, full), unknown, None).unwrap();
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let text = "MemTotal:       24684000 kB\nMemFree: 1 kB\nMemAvailable:   21646000 kB\n";
        assert_eq!(mem_available(text), Some(21_646_000));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn only_an_absent_or_empty_directory_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        check_workdir(&dir.path().join("new")).unwrap();
        check_workdir(dir.path()).unwrap();
        std::fs::write(dir.path().join("hub.fossil"), b"").unwrap();
        let err = check_workdir(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("hub.fossil"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }
}
