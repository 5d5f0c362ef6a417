//! One hub per repository: an exclusive `flock` on the repository file,
//! held for the hub's life.
//!
//! A hub keeps an in-memory view of its repository (the trunk tip, cached
//! file lists, the user table), so a second hub on the same file would
//! answer from a stale view. The lock is advisory and of the `flock` kind,
//! which on Linux is independent of the POSIX record locks SQLite takes on
//! the same file: a `fossil` command reading the repository is not stopped.
//! The kernel releases it when the hub exits, however it exits.
//!
//! The descriptor must stay open while any SQLite connection of the
//! process is open: closing a descriptor of a file drops every POSIX lock
//! the process holds on it. [`RepoLock`] is therefore the last thing a hub
//! lets go of.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Why the repository could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process (another hub) holds the lock.
    #[error("repository {path} is served by another hub (it holds the repository's lock)")]
    Held {
        /// The repository file.
        path: PathBuf,
    },
    /// The file could not be opened or locked.
    #[error("lock repository {path}")]
    Io {
        /// The repository file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive lock on a repository file; released when dropped (or when
/// the process ends).
#[derive(Debug)]
pub struct RepoLock {
    /// The open descriptor carrying the lock.
    _file: File,
}

impl RepoLock {
    /// Takes the exclusive lock on `path` without waiting.
    pub fn acquire(path: &Path) -> Result<RepoLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Read access is enough for flock; the file is never written here.
        let file = File::open(path).map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; no memory is
        // passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                LockError::Held {
                    path: path.to_path_buf(),
                }
            } else {
                io(err)
            });
        }
        Ok(RepoLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.fossil");
        std::fs::write(&path, b"x").unwrap();
        let first = RepoLock::acquire(&path).unwrap();
        let err = RepoLock::acquire(&path).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        assert!(err.to_string().contains("r.fossil"), "{err}");
        drop(first);
        RepoLock::acquire(&path).unwrap();
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = RepoLock::acquire(&dir.path().join("none")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }
}
