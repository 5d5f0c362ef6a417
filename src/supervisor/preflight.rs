//! What herd refuses before a trial starts: a work directory that already
//! holds something (a work directory holds one trial), and a herd larger
//! than the machine can hold (open files, memory). Each refusal is one line
//! that names the limit and the figures.

use std::path::Path;

use super::SupervisorError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
