//! Creating a repository file (built beside its path and renamed into
//! place, so a failure leaves nothing) and opening one, ours or Fossil's.
//! What a new file holds is in `seed.rs`.

use std::path::Path;

use rusqlite::Connection;

use super::handle::Repository;
use super::types::CreateOptions;
use crate::repo::error::{RepoError, SqlContext};
use crate::repo::schema;

impl Repository {
    /// Creates a new repository at `path`, as `fossil new` does: full schema,
    /// seeded rows and the initial empty check-in. Built in a temporary file
    /// beside `path` and renamed into place, so a failure leaves nothing.
    pub fn create(path: &Path, opts: &CreateOptions) -> Result<Repository, RepoError> {
        Repository::create_inner(path, opts, None)
    }

    /// Creates the empty repository a clone of project `project_code` fills:
    /// the same schema and seed rows, that project code, and no check-in at
    /// all (the server's initial check-in arrives with the clone; a local
    /// one would be a second root).
    pub fn create_for_clone(path: &Path, project_code: &str) -> Result<Repository, RepoError> {
        let opts = CreateOptions {
            project_name: None,
            admin_user: "admin".to_string(),
            nobody_caps: String::new(),
        };
        Repository::create_inner(path, &opts, Some(project_code))
    }

    fn create_inner(
        path: &Path,
        opts: &CreateOptions,
        clone_of: Option<&str>,
    ) -> Result<Repository, RepoError> {
        if path.exists() {
            return Err(RepoError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let io = |step| {
            move |source| RepoError::Io {
                step,
                path: path.to_owned(),
                source,
            }
        };
        let tmp = tempfile::Builder::new()
            .prefix(".herd-new-")
            .suffix(".fossil")
            .tempfile_in(dir)
            .map_err(io("creating a temporary repository file"))?;
        {
            let conn = Connection::open(tmp.path()).ctx("opening the new repository")?;
            conn.pragma_update(None, "page_size", 4096)
                .ctx("setting the page size")?;
            conn.pragma_update(None, "foreign_keys", false)
                .ctx("disabling foreign keys")?;
            conn.pragma_update(None, "application_id", schema::APPLICATION_ID)
                .ctx("setting the application id")?;
            let repo = Repository::over(conn, tmp.path());
            repo.transaction(|r| r.seed(opts, clone_of))?;
            repo.conn.close().map_err(|(_, source)| RepoError::Sql {
                step: "closing the new repository",
                source,
            })?;
        }
        tmp.persist_noclobber(path).map_err(|e| RepoError::Io {
            step: "moving the new repository into place",
            path: path.to_owned(),
            source: e.error,
        })?;
        Repository::open(path)
    }

    /// Opens an existing repository (ours or one made by `fossil new`).
    pub fn open(path: &Path) -> Result<Repository, RepoError> {
        if !path.is_file() {
            return Err(RepoError::NotARepository {
                path: path.to_owned(),
                reason: "no such file",
            });
        }
        let conn = Connection::open(path).ctx("opening the repository")?;
        let not_repo = |reason| RepoError::NotARepository {
            path: path.to_owned(),
            reason,
        };
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN \
                 ('blob','delta','rcvfrom','user','config','mlink','plink','event','tagxref')",
                [],
                |r| r.get(0),
            )
            .map_err(|_| not_repo("not an sqlite database"))?;
        if tables != 9 {
            return Err(not_repo("fossil tables are missing"));
        }
        Self::configure(&conn)?;
        let repo = Repository::over(conn, path);
        match repo.config_get("project-code")? {
            Some(code) if !code.is_empty() => Ok(repo),
            _ => Err(RepoError::MissingProjectCode {
                path: path.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
impl Repository {
    /// A new repository `r.fossil` in `dir`, for unit tests.
    pub(crate) fn scratch(dir: &Path) -> Repository {
        Repository::create(&dir.join("r.fossil"), &CreateOptions::for_tests())
            .expect("create a scratch repository")
    }

    /// Commits `changes` (path, new content or `None` to delete) on
    /// `parent`, for unit tests; the new check-in's name.
    pub(crate) fn scratch_commit(
        &self,
        parent: &crate::repo::ArtifactHash,
        changes: Vec<(String, Option<Vec<u8>>)>,
    ) -> crate::repo::ArtifactHash {
        let changes = changes
            .into_iter()
            .map(|(path, content)| crate::repo::FileChange { path, content })
            .collect();
        self.commit(&crate::repo::CheckinSpec {
            parent: parent.clone(),
            changes,
            comment: "c".into(),
            user: "u".into(),
            time: std::time::SystemTime::now(),
        })
        .expect("commit to a scratch repository")
        .hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_refuses_an_existing_file_and_open_reads_codes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.fossil");
        let repo = Repository::create(&p, &CreateOptions::for_tests()).unwrap();
        assert_eq!(repo.project_code().unwrap().len(), 40);
        assert_eq!(repo.server_code().unwrap().len(), 40);
        assert_eq!(repo.user_caps("nobody").unwrap().as_deref(), Some("gio"));
        drop(repo);
        assert!(matches!(
            Repository::create(&p, &CreateOptions::for_tests()),
            Err(RepoError::AlreadyExists { .. })
        ));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with(".herd-new-")),
            "{names:?}"
        );
        let repo = Repository::open(&p).unwrap();
        assert_eq!(
            repo.config_get("aux-schema").unwrap().as_deref(),
            Some("2015-01-24")
        );
    }

    #[test]
    fn open_rejects_non_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"not sqlite at all, just text").unwrap();
        assert!(matches!(
            Repository::open(&p),
            Err(RepoError::NotARepository { .. })
        ));
        assert!(matches!(
            Repository::open(&dir.path().join("nope")),
            Err(RepoError::NotARepository { .. })
        ));
    }
}
