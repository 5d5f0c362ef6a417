//! Transactions and savepoints on the handle's connection, and forgetting
//! what the caches derived from rows a rollback removed.

use super::handle::Repository;
use crate::repo::error::{RepoError, SqlContext};

impl Repository {
    /// Runs `f` in `BEGIN IMMEDIATE … COMMIT`, rolling back if it fails.
    pub fn transaction<T, E: From<RepoError>>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .ctx("beginning a transaction")?;
        match f(self) {
            Ok(v) => {
                if let Err(source) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.forget_derived();
                    return Err(RepoError::Sql {
                        step: "committing a transaction",
                        source,
                    }
                    .into());
                }
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.forget_derived();
                Err(e)
            }
        }
    }

    /// Drops what was derived from rows a rollback may have removed.
    fn forget_derived(&self) {
        self.baseline_cache.borrow_mut().clear();
        self.checkin_count.set(None);
        self.manifest_cache.borrow_mut().clear();
        // Rows rolled back may be numbered again for other content, and
        // deltas made in the transaction are gone.
        self.chain_heights.borrow_mut().clear();
    }

    /// Runs `f` inside a savepoint, so it is atomic alone and nests inside a
    /// caller's transaction.
    pub(crate) fn savepoint<T, E: From<RepoError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if self.conn.is_autocommit() {
            // Alone, take the write lock up front: a deferred transaction that
            // reads first cannot be upgraded once another writer commits (WAL).
            return self.transaction(|_| f());
        }
        self.conn
            .execute_batch("SAVEPOINT herd_sp")
            .ctx("opening a savepoint")?;
        match f() {
            Ok(v) => {
                self.conn
                    .execute_batch("RELEASE herd_sp")
                    .ctx("releasing a savepoint")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO herd_sp; RELEASE herd_sp");
                self.forget_derived();
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::CreateOptions;

    /// The kept check-in count follows this connection's commits, another
    /// connection's (a hub reader while the writer lands check-ins), and a
    /// rollback of its own.
    #[test]
    fn the_checkin_count_stays_true_across_connections_and_rollbacks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.fossil");
        let writer = Repository::create(&p, &CreateOptions::for_tests()).unwrap();
        let reader = Repository::open(&p).unwrap();
        let commit = |repo: &Repository, name: &str| {
            let parent = repo.trunk_tip().unwrap().unwrap();
            repo.commit(&crate::repo::CheckinSpec {
                parent,
                changes: vec![crate::repo::FileChange {
                    path: name.into(),
                    content: Some(name.as_bytes().to_vec()),
                }],
                comment: name.into(),
                user: "t".into(),
                time: std::time::SystemTime::now(),
            })
            .unwrap()
        };
        assert_eq!(
            (
                writer.trunk_commits().unwrap(),
                reader.trunk_commits().unwrap()
            ),
            (1, 1)
        );
        commit(&writer, "a");
        assert_eq!(writer.trunk_commits().unwrap(), 2, "its own commit");
        assert_eq!(
            reader.trunk_commits().unwrap(),
            2,
            "another connection's commit"
        );
        let failed: Result<(), RepoError> = writer.transaction(|w| {
            commit(w, "b");
            assert_eq!(w.trunk_commits().unwrap(), 3, "inside the transaction");
            Err(RepoError::MissingArtifact { hash: "x".into() })
        });
        assert!(failed.is_err());
        assert_eq!(writer.trunk_commits().unwrap(), 2, "after the rollback");
        assert_eq!(reader.trunk_commits().unwrap(), 2);
        commit(&reader, "c");
        assert_eq!(
            (
                writer.trunk_commits().unwrap(),
                reader.trunk_commits().unwrap()
            ),
            (3, 3)
        );
    }

    #[test]
    fn transaction_rolls_back_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let repo =
            Repository::create(&dir.path().join("r.fossil"), &CreateOptions::for_tests()).unwrap();
        let res: Result<(), RepoError> = repo.transaction(|r| {
            r.config_set("x", "1")?;
            Err(RepoError::NoSuchUser { login: "z".into() })
        });
        assert!(res.is_err());
        assert_eq!(repo.config_get("x").unwrap(), None);
    }
}
