//! The processes of one trial as the nemesis sees them from outside:
//! herd's children found in `/proc` by parent and name, each remembered
//! with its start time so that a reused pid is never taken for it, then
//! signalled by pid. The nemesis ends only processes its trial started.

use std::collections::BTreeMap;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A process: its pid, name and start time (clock ticks since boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: u32,
    /// Its name (`comm`): `hub`, `nats-server`, `leaf-agent`…
    pub name: String,
    /// When it started, in clock ticks since boot.
    pub start: u64,
}

impl Proc {
    /// Whether this very process (not a later one with its pid) runs.
    pub fn alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|(p, _)| p.start == self.start && !zombie(self.pid))
    }

    /// Sends `signal`; a process already gone is not an error.
    pub fn signal(&self, signal: Signal) -> bool {
        self.alive() && kill(Pid::from_raw(self.pid as i32), signal).is_ok()
    }
}

/// Whether `pid` is a zombie (exited, not yet reaped).
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// `/proc/PID/stat`: the process and its parent's pid.
fn read_stat(pid: u32) -> Option<(Proc, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold anything, ')' included.
    let (head, rest) = text.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (0), ppid (1), … starttime (19).
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((Proc { pid, name, start }, ppid))
}

/// Every process whose parent is `parent`.
pub fn children(parent: u32) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .filter(|(_, ppid)| *ppid == parent)
        .map(|(p, _)| p)
        .collect()
}

/// Every process a trial's herd started that was ever seen, by pid and
/// start time.
#[derive(Debug, Default)]
pub struct Seen {
    procs: BTreeMap<(u32, u64), Proc>,
}

impl Seen {
    /// Looks at herd's children now; returns those running.
    pub fn look(&mut self, herd: u32) -> Vec<Proc> {
        let now = children(herd);
        for p in &now {
            self.procs.insert((p.pid, p.start), p.clone());
        }
        now
    }

    /// Those still running (after herd has gone, a leftover).
    pub fn running(&self) -> Vec<&Proc> {
        self.procs.values().filter(|p| p.alive()).collect()
    }

    /// Kills every one still running.
    pub fn kill_all(&self) {
        for p in self.running() {
            p.signal(Signal::SIGCONT);
            p.signal(Signal::SIGKILL);
        }
    }

    /// How many were seen.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether none was seen.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

/// Fills the file system holding `dir` with a file there until a write
/// fails; returns the bytes written.
pub fn fill(dir: &Path) -> u64 {
    use std::io::Write as _;
    let Ok(mut file) = std::fs::File::create(dir.join("nemesis-filler")) else {
        return 0;
    };
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = 0;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    // What a whole chunk could not take, a smaller write may.
    for size in [64 << 10, 4 << 10, 512] {
        while file.write_all(&chunk[..size]).is_ok() {
            written += size as u64;
        }
    }
    written
}

/// A small tmpfs mounted for one trial; unmounted and removed on drop.
#[derive(Debug)]
pub struct SmallFs {
    /// Where it is mounted.
    pub dir: std::path::PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `mib` MiB at `dir` (made first); `Err` says why
    /// not (not root, no mount).
    pub fn mount(dir: &Path, mib: u64) -> Result<SmallFs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(SmallFs {
                dir: dir.to_path_buf(),
            })
        } else {
            let _ = std::fs::remove_dir(dir);
            Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.dir)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_found_by_its_parent_and_known_dead_once_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut seen = Seen::default();
        let found = seen.look(std::process::id());
        let sleep = found
            .iter()
            .find(|p| p.pid == child.id())
            .expect("the child is found");
        assert_eq!(sleep.name, "sleep");
        assert!(sleep.alive());
        assert!(sleep.signal(Signal::SIGKILL));
        child.wait().unwrap();
        assert!(!sleep.alive());
        assert!(seen.running().iter().all(|p| p.pid != child.id()));
    }
}
