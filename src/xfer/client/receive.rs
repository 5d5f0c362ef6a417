//! Storing what a server sent: `file` and `cfile` cards become artifacts
//! (cfile payloads inflated, deltas applied against held or co-received
//! artifacts, every hash checked), then the new ones are crosslinked with
//! parents first: plain artifacts and clusters, then check-ins by date.

use std::collections::HashMap;

use super::error::ClientError;
use super::http::Client;
use crate::repo::{parse_named_artifact, Artifact, ArtifactHash, Repository};
use crate::xfer::card::Card;

/// A received delta: its name, its source's name, the delta, and the delta
/// as the `cfile` carried it (zlib), when one did.
type ReceivedDelta = (String, String, Vec<u8>, Option<Vec<u8>>);

impl Client {
    /// Stores the `file`/`cfile` cards among `cards` (deltas resolved against
    /// held or received artifacts, every hash checked), then crosslinks the
    /// new ones: non-check-ins first, then check-ins by date. Returns how
    /// many were new.
    pub(super) fn store_received(
        &self,
        repo: &Repository,
        cards: Vec<Card>,
        rcvid: Option<i64>,
    ) -> Result<usize, ClientError> {
        // Full artifacts, with their stored form when a `cfile` brought it.
        let mut full: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut deltas: Vec<ReceivedDelta> = Vec::new();
        for card in cards {
            let (hash, source, data, stored) = match card {
                Card::File {
                    hash,
                    delta_source,
                    payload,
                } => (hash, delta_source, payload, None),
                Card::Cfile {
                    hash,
                    delta_source,
                    payload,
                    ..
                } => {
                    let data = crate::repo::decompress(&payload).map_err(|what| {
                        ClientError::Artifact {
                            url: self.url.clone(),
                            hash: hash.clone(),
                            what,
                        }
                    })?;
                    (hash, delta_source, data, Some(payload))
                }
                _ => continue,
            };
            match source {
                Some(src) => deltas.push((hash, src, data, stored)),
                None => full.push((hash, data, stored)),
            }
        }
        let mut stored = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (hash, data, compressed) in full {
            let whole = compressed.map(|c| (c, None));
            self.keep(repo, &mut stored, &mut index, &hash, data, whole, rcvid)?;
        }
        // Deltas may be against later artifacts or each other: retry until
        // no progress. Older versions are deltas of newer ones (a server
        // pages rows oldest first), so each pass goes newest first and a
        // chain resolves in one pass.
        while !deltas.is_empty() {
            let before = deltas.len();
            let mut still = Vec::new();
            for (hash, src, delta, compressed) in deltas.into_iter().rev() {
                let source = self.hash(&src)?;
                match repo.content(&source).map_err(self.repo_err())? {
                    Some(base) => {
                        let data = crate::delta::apply(&base, &delta, self.limits.max_payload)
                            .map_err(|e| ClientError::Artifact {
                                url: self.url.clone(),
                                hash: hash.clone(),
                                what: e.to_string(),
                            })?;
                        // Kept as the delta it came as, as the sender stores
                        // it: nothing to compress, and crosslinking finds the
                        // older version a delta already.
                        let as_delta = compressed.map(|c| (c, Some(source)));
                        self.keep(repo, &mut stored, &mut index, &hash, data, as_delta, rcvid)?;
                    }
                    None => still.push((hash, src, delta, compressed)),
                }
            }
            if still.len() == before {
                return Err(ClientError::Artifact {
                    url: self.url.clone(),
                    hash: still[0].0.clone(),
                    what: format!("unresolved delta against {}", still[0].1),
                });
            }
            still.reverse();
            deltas = still;
        }
        let new = stored.len();
        let mut names = vec![String::new(); new];
        for (name, &i) in &index {
            names[i].clone_from(name);
        }
        let mut checkins = Vec::new();
        for ((rid, artifact), name) in stored.into_iter().zip(names) {
            match artifact {
                Artifact::Checkin(m) => checkins.push((name, rid, m)),
                other => {
                    repo.crosslink_parsed(rid, &other)
                        .map_err(self.repo_err())?;
                }
            }
        }
        for (rid, m) in parents_first(checkins) {
            let artifact = Artifact::Checkin(m);
            repo.crosslink_parsed(rid, &artifact)
                .map_err(self.repo_err())?;
            if let Artifact::Checkin(m) = artifact {
                // A leaf rebases onto this tip next: keep it parsed.
                repo.remember_manifest(rid, std::sync::Arc::from(m));
            }
        }
        Ok(new)
    }

    /// Stores one received artifact (hash-checked by the repository, once)
    /// and remembers it for crosslinking if it is new. `stored_form` is the
    /// zlib bytes the card brought, when it did, with the source they are
    /// a delta against when they are one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn keep(
        &self,
        repo: &Repository,
        stored: &mut Vec<(crate::repo::Rid, Artifact)>,
        index: &mut HashMap<String, usize>,
        hash: &str,
        data: Vec<u8>,
        stored_form: Option<(Vec<u8>, Option<ArtifactHash>)>,
        rcvid: Option<i64>,
    ) -> Result<(), ClientError> {
        let name = self.hash(hash)?;
        let result = match stored_form {
            Some((delta, Some(source))) => repo.store_delta(&data, delta, &source, &name, rcvid),
            Some((whole, None)) => repo.store_compressed(&data, Some(whole), Some(&name), rcvid),
            None => repo.store_compressed(&data, None, Some(&name), rcvid),
        };
        let s = result.map_err(|e| match e {
            crate::repo::RepoError::HashMismatch { .. } => ClientError::Artifact {
                url: self.url.clone(),
                hash: hash.to_string(),
                what: "content does not match its name".into(),
            },
            other => self.repo_err()(other),
        })?;
        if s.is_new && !index.contains_key(hash) {
            index.insert(hash.to_string(), stored.len());
            // Stored under its name, checked against this content.
            let artifact = parse_named_artifact(&data);
            if matches!(artifact, Artifact::Other) {
                repo.remember_received(s.hash, data);
            }
            stored.push((s.rid, artifact));
        }
        Ok(())
    }
}

/// Received check-ins (name, row, manifest) in the order to crosslink them:
/// by date, and a check-in's primary parent among them before it, so that
/// each finds its parent crosslinked (its mlink rows are written at once,
/// and a parent that came as a delta of it is left as it is). Dates alone
/// do not say it: the check-ins of one hub batch may share a timestamp.
fn parents_first(
    mut checkins: Vec<(String, crate::repo::Rid, Box<crate::repo::Manifest>)>,
) -> Vec<(crate::repo::Rid, Box<crate::repo::Manifest>)> {
    checkins.sort_by(|a, b| (&a.2.date, a.1).cmp(&(&b.2.date, b.1)));
    let at: HashMap<String, usize> = checkins
        .iter()
        .enumerate()
        .map(|(i, (name, _, _))| (name.clone(), i))
        .collect();
    let parent_of: Vec<Option<usize>> = checkins
        .iter()
        .map(|(_, _, m)| m.parents.first().and_then(|p| at.get(p.as_str()).copied()))
        .collect();
    let mut order = Vec::with_capacity(checkins.len());
    let mut placed = vec![false; checkins.len()];
    for start in 0..checkins.len() {
        // The unplaced ancestors of `start` within the batch, then it.
        let mut line = Vec::new();
        let mut cur = Some(start);
        while let Some(i) = cur.filter(|&i| !placed[i]) {
            placed[i] = true;
            line.push(i);
            cur = parent_of[i];
        }
        order.extend(line.into_iter().rev());
    }
    let mut slots: Vec<Option<(crate::repo::Rid, Box<crate::repo::Manifest>)>> = checkins
        .into_iter()
        .map(|(_, rid, m)| Some((rid, m)))
        .collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkin(
        name: &str,
        parent: Option<&str>,
        date: &str,
    ) -> (String, crate::repo::Rid, Box<crate::repo::Manifest>) {
        let m = crate::repo::Manifest {
            date: date.into(),
            parents: parent
                .map(|p| crate::repo::ArtifactHash::sha3_of(p.as_bytes()))
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let hash = crate::repo::ArtifactHash::sha3_of(name.as_bytes()).to_string();
        (hash, crate::repo::Rid(0), Box::new(m))
    }

    #[test]
    fn parents_are_crosslinked_before_their_children_whatever_the_dates_say() {
        // One batch, one timestamp: c's row came first, then a, then b.
        let same = "2026-12-07T00:00:00.000";
        let mut batch = vec![
            checkin("c", Some("b"), same),
            checkin("a", None, same),
            checkin("b", Some("a"), same),
        ];
        for (i, c) in batch.iter_mut().enumerate() {
            c.1 = crate::repo::Rid(i as i64);
        }
        let order: Vec<i64> = parents_first(batch)
            .into_iter()
            .map(|(rid, _)| rid.0)
            .collect();
        assert_eq!(order, [1, 2, 0], "a, then b, then c");
    }
}
