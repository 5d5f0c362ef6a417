//! A long trunk landed in one process: check-ins that each add one new
//! file, pushed in turn by a number of agents, each on the check-in it last
//! landed, and landed by [`Repository::land`] on the tip in batches, as
//! the hub's writer lands what sparse leaves push. The repository-level
//! model of `scripts/trunk-bench`, without processes or a network: the
//! test that counts what a landing touches ([`Work`]) as the trunk grows,
//! and the benchmark that profiles it, drive it.

use super::checkin::{baseline_cards, prefer_delta};
use super::error::RebaseError;
use super::hash::ArtifactHash;
use super::manifest::{FileCard, Manifest, Perm};
use super::rebase::Landing;
use super::store::{now_ms, Repository};
use super::time;

/// Agents pushing one-file check-ins onto one trunk, in turn.
pub struct OneFileLoad {
    /// Each agent's last landed check-in, the parent of its next push.
    parents: Vec<ArtifactHash>,
    /// The trunk tip.
    tip: ArtifactHash,
    /// Check-ins landed so far.
    landed: u64,
}

impl OneFileLoad {
    /// `agents` agents (at least one) starting on `repo`'s trunk tip.
    pub fn new(repo: &Repository, agents: usize) -> Result<OneFileLoad, RebaseError> {
        let tip = repo
            .trunk_tip()?
            .ok_or_else(|| super::error::RepoError::MissingArtifact {
                hash: "the trunk tip".into(),
            })?;
        Ok(OneFileLoad {
            parents: vec![tip.clone(); agents.max(1)],
            tip,
            landed: 0,
        })
    }

    /// Check-ins landed so far.
    pub fn landed(&self) -> u64 {
        self.landed
    }

    /// Lands `count` check-ins in one transaction (one writer batch).
    pub fn land_batch(&mut self, repo: &Repository, count: usize) -> Result<(), RebaseError> {
        repo.transaction(|repo| {
            for _ in 0..count {
                self.land_one(repo)?;
            }
            Ok(())
        })
    }

    /// The next agent's push, landed on the tip.
    fn land_one(&mut self, repo: &Repository) -> Result<(), RebaseError> {
        let task = self.landed;
        let agent = (task % self.parents.len() as u64) as usize;
        let user = format!("slot-{agent}");
        let rcvid = repo.new_rcvid(&user, None, None)?;
        let content = format!("slot {agent} task {task}\n");
        let file = repo.store(content.as_bytes(), None, Some(rcvid))?;
        let name = format!("slot-{agent}/task-{task}.txt");
        let pushed = self.pushed(repo, agent, &name, file.hash, user)?;
        let hash = ArtifactHash::sha3_of(&pushed.to_bytes());
        match repo.land(&hash, &pushed, &self.tip, rcvid)? {
            Landing::Landed { checkin, .. } => {
                repo.record_landing(&hash, &checkin.hash)?;
                self.parents[agent] = checkin.hash.clone();
                self.tip = checkin.hash;
                self.landed += 1;
                Ok(())
            }
            Landing::Conflict { conflicts } => Err(RebaseError::Conflict { conflicts }),
        }
    }

    /// The manifest agent `agent` pushes: its last landed check-in plus the
    /// new file, as a delta on that check-in's baseline or, by Fossil's
    /// rule, a new baseline.
    fn pushed(
        &self,
        repo: &Repository,
        agent: usize,
        name: &str,
        hash: ArtifactHash,
        user: String,
    ) -> Result<Manifest, RebaseError> {
        let parent = &self.parents[agent];
        let (base, view) = repo.based_view(parent)?;
        let card = FileCard {
            name: name.to_owned(),
            hash: Some(hash),
            perm: Perm::Regular,
            oldname: None,
        };
        let mut files = view.delta;
        let (baseline, files) = if prefer_delta(files.len() + 1, view.base.len()) {
            let at = files.partition_point(|f| f.name.as_str() < name);
            files.insert(at, card);
            (Some(base), files)
        } else {
            let mut all = baseline_cards(&view.base);
            for f in files.drain(..).chain(std::iter::once(card)) {
                match all.binary_search_by(|a| a.name.cmp(&f.name)) {
                    Ok(i) if f.hash.is_none() => {
                        all.remove(i);
                    }
                    Ok(i) => all[i] = f,
                    Err(i) if f.hash.is_some() => all.insert(i, f),
                    Err(_) => {}
                }
            }
            (None, all)
        };
        Ok(Manifest {
            baseline,
            comment: format!("slot {agent} task {}", self.landed),
            date: time::format_date(now_ms()),
            files,
            parents: vec![parent.clone()],
            user,
            ..Manifest::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{CreateOptions, Work};

    /// Counts per landing over `n` landings.
    fn per_landing(w: Work, n: u64) -> Work {
        Work {
            rows_changed: w.rows_changed * 100 / n,
            sql_steps: w.sql_steps * 100 / n,
            blobs_written: w.blobs_written * 100 / n,
            bytes_written: w.bytes_written * 100 / n,
            blobs_read: w.blobs_read * 100 / n,
            bytes_read: w.bytes_read * 100 / n,
            bytes_hashed: w.bytes_hashed * 100 / n,
        }
    }

    /// 5,000 one-file landings by 16 agents: what the writer touches per
    /// landing, counted over the first and the last thousand. Rows, SQL
    /// steps and blobs must not grow at all (nothing scans history). Bytes
    /// follow the manifests, which by Fossil's baseline rule list up to
    /// √(3 × files) cards (and a baseline, the whole tree, comes about as
    /// often): they may grow as the square root of the tree, not faster.
    #[test]
    fn a_landing_touches_no_more_as_the_trunk_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.fossil");
        let repo = Repository::create(&path, &CreateOptions::for_tests()).unwrap();
        repo.cache_for_many_leaves();
        repo.count_sql_steps();
        let mut load = OneFileLoad::new(&repo, 16).unwrap();
        let mut thousands = Vec::new();
        for _ in 0..5 {
            let before = repo.work();
            for _ in 0..125 {
                load.land_batch(&repo, 8).unwrap();
            }
            thousands.push(per_landing(repo.work() - before, 1000));
        }
        assert_eq!(load.landed(), 5000);
        assert_eq!(repo.trunk_commits().unwrap(), 5001);
        assert_eq!(repo.trunk_leaves().unwrap(), 1);
        assert_eq!(repo.file_list(&load.tip).unwrap().len(), 5000);
        let (first, last) = (thousands[0], thousands[4]);
        eprintln!("per landing ×100, first thousand: {first:?}\nlast thousand: {last:?}");
        for (what, a, b) in [
            ("rows changed", first.rows_changed, last.rows_changed),
            ("SQL steps", first.sql_steps, last.sql_steps),
            ("blobs written", first.blobs_written, last.blobs_written),
        ] {
            assert!(a > 0, "{what}: none counted");
            assert!(b * 100 <= a * 102, "{what} per landing grew: {a} -> {b}");
        }
        assert!(
            last.blobs_read <= first.blobs_read + 5,
            "{first:?} -> {last:?}"
        );
        // Mid-window trees: 500 and 4,500 files, a factor of 3 in √files.
        for (what, a, b) in [
            ("bytes written", first.bytes_written, last.bytes_written),
            ("bytes read", first.bytes_read, last.bytes_read),
            ("bytes hashed", first.bytes_hashed, last.bytes_hashed),
        ] {
            assert!(a > 0, "{what}: none counted");
            assert!(
                b <= a * 3 * 5 / 4,
                "{what} per landing grew faster than the square root of the tree: {a} -> {b}"
            );
        }
    }
}
