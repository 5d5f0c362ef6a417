//! Every call that sets process attributes or sends signals lives here.
//!
//! Children run in their own process group (so a signal reaches a child and
//! anything it forks, and a Ctrl-C at the terminal reaches herd alone, which
//! then stops them in order) with a parent-death signal, so none outlives
//! herd even when herd dies by SIGKILL.

use std::io;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource, UsageWho};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, getppid, Pid};
use tokio::process::{Child, Command};

/// Prepares `cmd` to run as a supervised child: own process group, killed
/// when herd dies, no inherited stdin.
pub fn supervise(cmd: &mut Command) {
    let parent = getpid();
    cmd.process_group(0)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe system calls (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // herd may have died between fork and prctl; then nobody would
            // send the signal, so give up now.
            if getppid() != parent {
                return Err(io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to the child's process group. A child that is already gone
/// is not an error.
pub fn signal_group(child: &Child, signal: Signal) {
    if let Some(pid) = child.id() {
        // The child leads its own group, so its pid is the group id.
        signal_pid_group(pid, signal);
    }
}

/// Asks a child to stop with SIGTERM, waits up to `grace`, then kills its
/// group. Always reaps the child.
pub async fn stop(child: &mut Child, grace: Duration) -> io::Result<std::process::ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    signal_group(child, Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(child, Signal::SIGKILL);
            child.wait().await
        }
    }
}

/// Raises the soft open-file limit to what `needed` descriptors require, up
/// to the hard limit. Returns the limit in force afterwards.
pub fn raise_nofile(needed: u64) -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft >= needed {
        return Ok(soft);
    }
    let target = needed.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).map_err(io::Error::from)?;
    Ok(target)
}

/// Sends `signal` to the process group led by `pid`, ignoring a group that
/// is already gone.
pub fn signal_pid_group(pid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pid as i32), signal);
}

/// User + system CPU, in ms, of this process and of every child it has
/// reaped (and theirs): after a trial's children have all been waited for,
/// the difference across the trial is the CPU of all its processes.
pub fn cpu_ms() -> Option<f64> {
    Some(crate::telemetry::own_cpu_ms()? + crate::telemetry::rusage_ms(UsageWho::RUSAGE_CHILDREN)?)
}
