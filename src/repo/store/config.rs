//! The `config` table: single values by name, among them the project and
//! server codes a sync exchanges. Rows are stamped with [`now_ms`].

use rusqlite::{params, OptionalExtension};

use super::handle::Repository;
use crate::repo::error::{RepoError, SqlContext};

/// Current Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Repository {
    /// The repository's `project-code`.
    pub fn project_code(&self) -> Result<String, RepoError> {
        self.config_get("project-code")?
            .ok_or_else(|| RepoError::MissingProjectCode {
                path: self.path().to_owned(),
            })
    }

    /// The repository's `server-code` (empty if missing).
    pub fn server_code(&self) -> Result<String, RepoError> {
        Ok(self.config_get("server-code")?.unwrap_or_default())
    }

    /// One config value.
    pub fn config_get(&self, name: &str) -> Result<Option<String>, RepoError> {
        self.query_row(
            "SELECT CAST(value AS TEXT) FROM config WHERE name=?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .ctx("reading config")
        .map(Option::flatten)
    }

    /// Sets one config value (mtime = now, Unix seconds).
    pub fn config_set(&self, name: &str, value: &str) -> Result<(), RepoError> {
        self.exec(
            "REPLACE INTO config(name, value, mtime) VALUES(?1, ?2, ?3)",
            params![name, value, now_ms() / 1000],
        )
        .ctx("writing config")?;
        Ok(())
    }
}
