//! The nemesis's checker: what a trial's leaves were told landed, held
//! against the hub's repository read as plain SQL over Fossil's schema
//! (not through herd's repository code, which is what is on trial): every
//! acknowledged check-in on trunk, each task on trunk once, the trunk
//! linear; and the real `fossil test-integrity`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::supervisor::Ack;

/// What the checker found in one trial's hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrunkCheck {
    /// Check-ins the leaves were told landed.
    pub acked: usize,
    /// Check-ins on the trunk.
    pub on_trunk: usize,
    /// Acknowledged check-ins not on the trunk.
    pub lost: Vec<String>,
    /// Tasks whose check-in is on the trunk more than once.
    pub doubled: Vec<String>,
    /// Check-ins with two children or more (the trunk forked there), and
    /// leaves beyond the one tip.
    pub forks: usize,
}

impl TrunkCheck {
    /// Whether nothing is wrong.
    pub fn holds(&self) -> bool {
        self.lost.is_empty() && self.doubled.is_empty() && self.forks == 0
    }
}

/// Why a hub could not be checked.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct CheckError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

/// A join keeping the rows whose `rid` column is a check-in Fossil's
/// `branch` tag puts on trunk.
fn on_trunk(rid: &str) -> String {
    format!(
        "JOIN tagxref t ON t.rid = {rid} AND t.tagtype > 0 AND t.value = 'trunk' \
         AND t.tagid = (SELECT tagid FROM tag WHERE tagname = 'branch')"
    )
}

/// Checks `acks` against the repository at `hub`.
pub fn check_trunk(hub: &Path, acks: &[Ack]) -> Result<TrunkCheck, CheckError> {
    let fail = |source| CheckError {
        path: hub.display().to_string(),
        source,
    };
    let db = Connection::open_with_flags(hub, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
    let trunk = trunk_checkins(&db).map_err(fail)?;
    let forks: usize = db
        .query_row(
            &format!(
                "SELECT (SELECT count(*) FROM (SELECT plink.pid FROM plink {} \
                 WHERE plink.isprim GROUP BY plink.pid HAVING count(*) > 1)) \
                 + max((SELECT count(*) FROM leaf {}) - 1, 0)",
                on_trunk("plink.cid"),
                on_trunk("leaf.rid")
            ),
            [],
            |r| r.get(0),
        )
        .map_err(fail)?;
    let hashes: HashSet<&str> = trunk.iter().map(|(h, _)| h.as_str()).collect();
    let lost = acks
        .iter()
        .filter(|a| !hashes.contains(a.checkin.as_str()))
        .map(|a| format!("slot {} task {}: {}", a.slot, a.task, a.checkin))
        .collect();
    let mut by_task: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, comment) in &trunk {
        if comment.starts_with("slot ") {
            *by_task.entry(comment.as_str()).or_default() += 1;
        }
    }
    let doubled = by_task
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(task, n)| format!("{task} ×{n}"))
        .collect();
    Ok(TrunkCheck {
        acked: acks.len(),
        on_trunk: trunk.len(),
        lost,
        doubled,
        forks,
    })
}

/// The trunk: from each trunk leaf back through primary parents, every
/// check-in's hash and comment.
fn trunk_checkins(db: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = db.prepare(&format!(
        "WITH RECURSIVE trunk(rid) AS ( \
           SELECT leaf.rid FROM leaf {} \
           UNION SELECT plink.pid FROM plink JOIN trunk ON plink.cid = trunk.rid \
           WHERE plink.isprim) \
         SELECT blob.uuid, coalesce(event.comment, '') FROM trunk \
         JOIN blob ON blob.rid = trunk.rid \
         LEFT JOIN event ON event.objid = trunk.rid",
        on_trunk("leaf.rid")
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// `fossil test-integrity` on the hub: `None` when it passes (or no
/// `fossil` is found, which `fossil` says), else what it said.
pub fn integrity(fossil: &Path, hub: &Path, home: &Path) -> Option<String> {
    let out = std::process::Command::new(fossil)
        .args(["test-integrity", "-R"])
        .arg(hub)
        .env("HOME", home)
        .output();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (!out.status.success() || !text.contains(" 0 errors"))
                .then(|| text.lines().last().unwrap_or_default().to_string())
        }
        Err(e) => Some(format!("cannot run {}: {e}", fossil.display())),
    }
}

/// Lines of the trial's logs (herd's stderr and every child's) that tell
/// of a panic.
pub fn panics(files: &[std::path::PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| std::fs::read(f).ok().map(|b| (f, b)))
        .flat_map(|(f, bytes)| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| l.contains("panicked at") || l.contains("status 101"))
                .map(|l| format!("{}: {}", f.display(), l.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}
