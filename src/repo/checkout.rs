//! Writing a check-in's files into a directory, byte-identical to what
//! `fossil open`/`update` write (executables get mode 755; with Fossil's
//! default `allow-symlinks` off, a symlink is written as a file holding its
//! target, as Fossil does).

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
        for (name, (h, perm)) in &list {
            let content = self.content(h)?.ok_or_else(|| RepoError::MissingArtifact {
                hash: h.to_string(),
            })?;
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
            std::fs::write(&path, &content).map_err(io("writing a file"))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = if *perm == Perm::Executable {
                    0o755
                } else {
                    0o644
                };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(io("setting permissions"))?;
            }
        }
        Ok(list.len())
    }
}
