//! The empty repository a clone fills: Fossil's schema and seed rows, the
//! server's project code, and no check-in at all (the server's initial
//! check-in arrives with the clone; a local one would be a second root).
//!
//! `repo` has no public constructor for that yet, so this starts from
//! [`Repository::create`] and removes the initial check-in's rows from the
//! artifact and derived tables, in one transaction. It belongs in `repo`
//! (a `create_for_clone`) and should move there.

use std::path::Path;

use crate::repo::{CreateOptions, RepoError, Repository};

/// Tables that hold artifacts or rows derived from them. Nothing else in a
/// fresh repository refers to the initial check-in.
const ARTIFACT_TABLES: &[&str] = &[
    "blob",
    "delta",
    "event",
    "plink",
    "leaf",
    "mlink",
    "filename",
    "tagxref",
    "unclustered",
    "unsent",
    "phantom",
    "orphan",
    "backlink",
    "cherrypick",
];

/// Creates an empty repository at `path` for a clone of project `project_code`.
pub fn create(path: &Path, project_code: &str) -> Result<Repository, RepoError> {
    let repo = Repository::create(
        path,
        &CreateOptions {
            project_name: None,
            admin_user: "admin".to_string(),
            nobody_caps: String::new(),
        },
    )?;
    repo.transaction(|r| {
        for table in ARTIFACT_TABLES {
            r.conn
                .execute(&format!("DELETE FROM {table}"), [])
                .map_err(|source| RepoError::Sql {
                    step: "emptying a repository for a clone",
                    source,
                })?;
        }
        r.config_set("project-code", project_code)
    })?;
    repo.baseline_cache.replace(None);
    Ok(repo)
}
