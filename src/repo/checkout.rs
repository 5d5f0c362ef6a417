//! Writing a check-in's files into a directory, byte-identical to what
//! `fossil open`/`update` write (executables get mode 755; with Fossil's
//! default `allow-symlinks` off, a symlink is written as a file holding its
//! target, as Fossil does), and moving such a directory from one check-in
//! to another (`fossil update` on a checkout without edits), touching only
//! the files that differ.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::error::RepoError;
use super::hash::ArtifactHash;
use super::manifest::Perm;
use super::store::Repository;

impl Repository {
    /// Writes every file of check-in `hash` under `dir`, creating directories.
    /// Existing files are overwritten; files not in the check-in are left alone.
    pub fn checkout(&self, hash: &ArtifactHash, dir: &Path) -> Result<usize, RepoError> {
        let list = self.file_list(hash)?;
        let received = self.received_texts.take().texts;
        for (name, (h, perm)) in &list {
            match received.get(h) {
                Some(text) => write_file(dir, name, text, *perm)?,
                None => self.write_checked_out(dir, name, h, *perm)?,
            }
        }
        Ok(list.len())
    }

    /// Moves `dir`, a checkout of check-in `from`, to check-in `to`: files
    /// whose content differs are written, files `to` lacks are removed,
    /// the rest is not touched. `local` names files written into `dir`
    /// since `from` was checked out (path → their content's hash): they
    /// are compared by that hash, and removed when `to` lacks them. Both
    /// check-ins must be held with their files. Returns the files written
    /// or removed. When both read through one baseline only their delta
    /// cards are compared, so the cost follows what changed between them,
    /// not the tree.
    pub fn update_checkout(
        &self,
        dir: &Path,
        from: &ArtifactHash,
        to: &ArtifactHash,
        local: &HashMap<String, ArtifactHash>,
    ) -> Result<usize, RepoError> {
        let old = self.list_view(from)?;
        let new = self.list_view(to)?;
        let mut names: BTreeSet<String> = local.keys().cloned().collect();
        if old.shares_base(&new) {
            names.extend(old.delta.iter().map(|f| f.name.clone()));
            names.extend(new.delta.iter().map(|f| f.name.clone()));
        } else {
            names.extend(old.names());
            names.extend(new.names());
        }
        let received = self.received_texts.take().texts;
        let mut touched = 0;
        for name in &names {
            let target = new.entry(name);
            let unchanged = match (local.get(name), &target) {
                (Some(on_disk), Some((h, _))) => on_disk == h,
                (Some(_), None) => false,
                (None, target) => old.entry(name) == *target,
            };
            if unchanged {
                continue;
            }
            touched += 1;
            match target {
                Some((h, perm)) => match received.get(&h) {
                    Some(text) => write_file(dir, name, text, perm)?,
                    None => self.write_checked_out(dir, name, &h, perm)?,
                },
                None => {
                    let path = dir.join(name);
                    match std::fs::remove_file(&path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(RepoError::Io {
                                step: "removing a file",
                                path,
                                source: e,
                            })
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(touched)
    }

    /// Writes artifact `h` as file `name` under `dir` with `perm`'s mode.
    fn write_checked_out(
        &self,
        dir: &Path,
        name: &str,
        h: &ArtifactHash,
        perm: Perm,
    ) -> Result<(), RepoError> {
        let content = self.content(h)?.ok_or_else(|| RepoError::MissingArtifact {
            hash: h.to_string(),
        })?;
        write_file(dir, name, &content, perm)
    }

    /// Keeps `text`, the content of file artifact `hash` just received, for
    /// the next worktree update.
    /// At most [`MAX_RECEIVED_BYTES`] are kept; past it the update reads
    /// the rest from the repository.
    pub(crate) fn remember_received(&self, hash: ArtifactHash, text: Vec<u8>) {
        let mut received = self.received_texts.borrow_mut();
        if received.bytes + text.len() <= MAX_RECEIVED_BYTES {
            received.bytes += text.len();
            received.texts.insert(hash, text.into());
        }
    }
}

/// Most bytes of received file texts kept for the next worktree update.
const MAX_RECEIVED_BYTES: usize = 16 * 1024 * 1024;

/// Writes `content` as file `name` under `dir` with `perm`'s mode.
fn write_file(dir: &Path, name: &str, content: &[u8], perm: Perm) -> Result<(), RepoError> {
    let path = dir.join(name);
    let io = |step| {
        let p = path.clone();
        move |source| RepoError::Io {
            step,
            path: p,
            source,
        }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating a directory"))?;
    }
    std::fs::write(&path, content).map_err(io("writing a file"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if perm == Perm::Executable {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io("setting permissions"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(
        repo: &Repository,
        parent: &ArtifactHash,
        changes: &[(&str, Option<&str>)],
    ) -> ArtifactHash {
        let changes = changes
            .iter()
            .map(|(path, content)| ((*path).into(), content.map(|c| c.as_bytes().to_vec())))
            .collect();
        repo.scratch_commit(parent, changes)
    }

    /// Catching up over many check-ins writes the net change: a file
    /// changed by ten of them is written once, one added and deleted again
    /// never, one deleted is removed once.
    #[test]
    fn an_update_writes_the_net_change_once() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::scratch(dir.path());
        let root = repo.trunk_tip().unwrap().unwrap();
        let from = commit(
            &repo,
            &root,
            &[("keep.txt", Some("k")), ("gone.txt", Some("g"))],
        );
        let wt = dir.path().join("wt");
        repo.checkout(&from, &wt).unwrap();
        let mut tip = from.clone();
        for i in 0..10 {
            let text = format!("version {i}\n");
            tip = commit(&repo, &tip, &[("hot.txt", Some(&text))]);
        }
        tip = commit(&repo, &tip, &[("brief.txt", Some("b"))]);
        tip = commit(&repo, &tip, &[("brief.txt", None), ("gone.txt", None)]);
        let touched = repo
            .update_checkout(&wt, &from, &tip, &HashMap::new())
            .unwrap();
        assert_eq!(touched, 2, "hot.txt written once, gone.txt removed once");
        assert_eq!(
            std::fs::read_to_string(wt.join("hot.txt")).unwrap(),
            "version 9\n"
        );
        assert!(!wt.join("gone.txt").exists() && !wt.join("brief.txt").exists());
        assert_eq!(std::fs::read_to_string(wt.join("keep.txt")).unwrap(), "k");
    }
}
