//! Landing pushed content: every pushed artifact is resolved to full,
//! hash-checked content first (deltas against held or co-pushed artifacts),
//! then plain artifacts are stored and check-ins land in parent order against
//! the moving trunk tip; the rest are refused. A delta whose source is
//! neither held nor pushed is kept against a phantom of its source, as
//! Fossil keeps it (xfer.c `xfer_accept_file`), and completed when the
//! source arrives; a check-in lands only once every artifact it names is
//! held whole, and until then it is asked for again. Also the end of a
//! push: gimme for unknown igots and phantoms, and the fast-path verdict.

use std::collections::{HashMap, HashSet};

use super::session::{Pushed, Session};
use super::types::{Refusal, ServerError, TrunkAdvance, MAX_PHANTOM_GIMMES};
use crate::repo::{parse_artifact, Artifact, ArtifactHash, Landing, RebaseError, Repository};
use crate::xfer::card::{Card, Limits};
use crate::xfer::fastpath;

impl Session<'_> {
    /// Resolves every pushed artifact to full, hash-checked content, keeps
    /// deltas whose source is missing, stores the non-check-ins, then lands
    /// check-ins in parent order.
    pub(super) fn store_pushed(&mut self) -> Result<(), ServerError> {
        let repo = self.repo;
        let Resolved { whole, dangling } = resolve_pushed(repo, &self.pushed, &self.config.limits)?;
        let rcvid = repo.new_rcvid(&self.user, self.nonce.as_deref(), self.peer)?;
        for d in &dangling {
            repo.store_dangling(&d.hash, &d.source, &d.delta, Some(rcvid))?;
        }
        let mut parsed = Vec::new();
        for (hash, content) in &whole {
            match parse_artifact(content) {
                Artifact::Checkin(manifest) => parsed.push((hash, content, manifest)),
                _ => {
                    let stored = repo.store(content, Some(hash), Some(rcvid))?;
                    if stored.is_new {
                        self.outcome.artifacts_received += 1;
                        repo.crosslink(stored.rid)?;
                    }
                }
            }
        }
        let mut checkins = Vec::new();
        for (hash, content, manifest) in parsed {
            if repo.rid_of(hash)?.is_some_and(|(_, phantom)| !phantom) {
                continue; // already held: nothing to land
            }
            let missing = missing_pieces(repo, &manifest)?;
            if !missing.is_empty() {
                // Not whole yet: ask for the pieces and for the check-in
                // again (phantoms are asked for at the end of the push).
                for piece in &missing {
                    repo.store_phantom(piece)?;
                }
                repo.store_phantom(hash)?;
                continue;
            }
            let parent = manifest.parents.first().cloned();
            checkins.push((hash, content, parent, Artifact::Checkin(manifest)));
        }
        // Land check-ins whose parent is the moving tip, in chain order.
        let mut tip = repo.trunk_tip()?;
        while let Some(i) = checkins
            .iter()
            .position(|(_, _, parent, _)| parent.is_some() && *parent == tip)
        {
            let (hash, content, parent, artifact) = checkins.swap_remove(i);
            let stored = repo.store(content, Some(hash), Some(rcvid))?;
            repo.crosslink_parsed(stored.rid, &artifact)?;
            self.outcome.artifacts_received += 1;
            self.outcome.advances.push(TrunkAdvance {
                hash: hash.clone(),
                parent,
                seq: repo.trunk_position()?,
                landed_from: None,
                pusher_can_keep: false,
                merged: Vec::new(),
            });
            tip = Some(hash.clone());
        }
        let Some(mut tip) = tip.filter(|_| !checkins.is_empty()) else {
            return Ok(());
        };
        for (hash, _, parent, artifact) in checkins {
            let conflicts = if self.land {
                match self.land_on(hash, parent.as_ref(), &artifact, &tip, rcvid)? {
                    Landed::On(landed) => {
                        tip = landed;
                        continue;
                    }
                    Landed::Before => continue,
                    Landed::Conflict(paths) => paths,
                    Landed::No => Vec::new(),
                }
            } else {
                Vec::new()
            };
            let parent_text = parent
                .as_ref()
                .map_or("none".to_string(), |p| p.to_string());
            let mut text = format!(
                "would fork: check-in {hash} has parent {parent_text} but trunk tip is {tip}"
            );
            if !conflicts.is_empty() {
                text.push_str(&format!(
                    "; changed on trunk since its parent and not mergeable: {}",
                    crate::repo::describe_conflicts(&conflicts)
                ));
            }
            self.errors.push(text);
            self.outcome.refusals.push(Refusal {
                pushed: hash.clone(),
                parent,
                tip: tip.clone(),
                conflicts,
            });
        }
        Ok(())
    }

    /// A hub landing of pushed check-in `hash` (parsed as `artifact`, not
    /// stored) on trunk tip `tip`: written anew there, files that changed
    /// on trunk since its parent merged by lines, unless lines both sides
    /// changed meet. A push repeated after a
    /// lost reply finds its earlier landing instead.
    fn land_on(
        &mut self,
        hash: &ArtifactHash,
        parent: Option<&ArtifactHash>,
        artifact: &Artifact,
        tip: &ArtifactHash,
        rcvid: i64,
    ) -> Result<Landed, ServerError> {
        let repo = self.repo;
        if let Some(landed) = repo.landed_as(hash)? {
            if let Artifact::Checkin(pushed) = artifact {
                // The first reply, with the merged texts, may be the one
                // that was lost: send them again.
                let on_hub = repo.file_list(&landed)?;
                self.outcome.landed_before_merged = pushed
                    .files
                    .iter()
                    .filter_map(|f| {
                        let (held, _) = on_hub.get(&f.name)?;
                        (f.hash.as_ref() != Some(held)).then(|| held.clone())
                    })
                    .collect();
            }
            self.outcome.landed_before = Some(landed);
            return Ok(Landed::Before);
        }
        let (Artifact::Checkin(manifest), Some(parent)) = (artifact, parent) else {
            return Ok(Landed::No);
        };
        // Only a check-in on a trunk check-in held here can be compared.
        if !repo.is_checkin(parent)? {
            return Ok(Landed::No);
        }
        let (checkin, merged) = match repo.land(hash, manifest, tip, rcvid) {
            Ok(Landing::Landed { checkin, merged }) => (checkin, merged),
            Ok(Landing::Conflict { conflicts }) => return Ok(Landed::Conflict(conflicts)),
            Err(RebaseError::Repo(e)) => return Err(e.into()),
            // A pushed check-in without a parent was ruled out above.
            Err(RebaseError::NoParent { .. } | RebaseError::Conflict { .. }) => {
                return Ok(Landed::No)
            }
        };
        repo.record_landing(hash, &checkin.hash)?;
        // B is a manifest's first card: no need to parse a new baseline.
        let pusher_can_keep = manifest
            .baseline
            .as_ref()
            .is_some_and(|b| checkin.manifest.starts_with(format!("B {b}\n").as_bytes()));
        self.outcome.artifacts_received += 1;
        self.outcome.advances.push(TrunkAdvance {
            hash: checkin.hash.clone(),
            parent: Some(tip.clone()),
            seq: repo.trunk_position()?,
            landed_from: Some(hash.clone()),
            pusher_can_keep,
            merged,
        });
        Ok(Landed::On(checkin.hash))
    }

    /// End of a push: unknown igots and phantoms are asked for; the fast path
    /// gets its verdict.
    pub(super) fn finish_push(&mut self) -> Result<(), ServerError> {
        let repo = self.repo;
        let refused: HashSet<&str> = self
            .outcome
            .refusals
            .iter()
            .map(|r| r.pushed.as_str())
            .collect();
        let mut asked = HashSet::new();
        for hash in std::mem::take(&mut self.igots) {
            let Ok(h) = ArtifactHash::parse(hash) else {
                continue;
            };
            if refused.contains(hash) || repo.rid_of(&h)?.is_some_and(|(_, phantom)| !phantom) {
                continue;
            }
            if asked.insert(h.clone()) {
                self.out.push(Card::Gimme(h.to_string()));
            }
        }
        for phantom in repo.phantoms()?.into_iter().take(MAX_PHANTOM_GIMMES) {
            if asked.insert(phantom.clone()) {
                self.out.push(Card::Gimme(phantom.to_string()));
            }
        }
        if self.fast_push {
            let cards =
                fastpath::push_reply(repo, &self.outcome, self.decoded.turn_grant, self.artifacts)?;
            self.count_sent(&cards);
            self.out.extend(cards);
        }
        Ok(())
    }
}

/// What became of a pushed check-in the hub was asked to land.
enum Landed {
    /// Written anew on the tip, as this check-in.
    On(ArtifactHash),
    /// Landed by an earlier request (this is a repeat).
    Before,
    /// These files changed on trunk since its parent and did not merge.
    Conflict(Vec<crate::repo::FileConflict>),
    /// Not a case for landing (no held parent): refused as sent.
    No,
}

/// Pushed content, resolved.
struct Resolved {
    /// (hash, full content), every hash checked.
    whole: Vec<(ArtifactHash, Vec<u8>)>,
    /// Deltas whose source is neither held nor pushed.
    dangling: Vec<Dangling>,
}

/// A pushed delta waiting for its source.
struct Dangling {
    hash: ArtifactHash,
    source: ArtifactHash,
    delta: Vec<u8>,
}

/// The artifacts a check-in names that are not held whole here: its
/// baseline and the files its F cards name.
///
/// A file the check-in has as its primary parent has it is held when that
/// parent is a check-in crosslinked here (a check-in is crosslinked only
/// once every artifact it names is held whole), so only the others are
/// looked up. That matters for a full leaf's push: its delta manifest names
/// every file changed since its baseline (about √ of the tree) but changes
/// a few, and one index lookup per name on the writer was most of what
/// landing a full leaf's push cost.
fn missing_pieces(
    repo: &Repository,
    manifest: &crate::repo::Manifest,
) -> Result<Vec<ArtifactHash>, ServerError> {
    let held = |hash: &ArtifactHash| -> Result<bool, ServerError> {
        Ok(repo.rid_of(hash)?.is_some_and(|(_, phantom)| !phantom))
    };
    let mut missing = Vec::new();
    if let Some(baseline) = &manifest.baseline {
        if !held(baseline)? {
            missing.push(baseline.clone());
        }
    }
    let parent = match manifest.parents.first() {
        Some(p) if repo.is_checkin(p)? => Some(repo.list_view(p)?),
        _ => None,
    };
    for f in &manifest.files {
        let Some(hash) = &f.hash else { continue };
        let as_parent = parent
            .as_ref()
            .is_some_and(|view| view.entry(&f.name).is_some_and(|(h, _)| h == *hash));
        if !as_parent && !held(hash)? {
            missing.push(hash.clone());
        }
    }
    Ok(missing)
}

/// Turns pushed cards into (hash, full content), applying deltas against
/// held artifacts or other pushed ones, and checking every hash; a delta
/// whose source is neither is set aside as [`Dangling`]. Deltas kept
/// earlier against a source that has now arrived are completed too. Any
/// fault fails the whole request, so no partial artifact is ever stored.
fn resolve_pushed(
    repo: &Repository,
    pushed: &[Pushed<'_>],
    limits: &Limits,
) -> Result<Resolved, ServerError> {
    let mut done: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(ArtifactHash, Vec<u8>)> = Vec::new();
    // Delta cards waiting for their source, with their payload already read.
    let mut pending: Vec<(&Pushed<'_>, Vec<u8>)> = Vec::new();
    for p in pushed {
        let data = payload(p)?;
        match p.delta_source {
            None => finish(&mut out, &mut done, p.hash, data)?,
            Some(_) => pending.push((p, data)),
        }
    }
    // Deltas, possibly against each other: apply until nothing changes.
    let mut dangling = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut still = Vec::new();
        for (p, delta) in pending {
            let src = p.delta_source.unwrap_or_default();
            let source = match done.get(src) {
                Some(&i) => Some(out[i].1.clone()),
                None => match ArtifactHash::parse(src) {
                    Ok(h) => repo.content(&h)?,
                    Err(_) => None,
                },
            };
            let Some(source) = source else {
                still.push((p, delta));
                continue;
            };
            let content = apply(&source, &delta, p.hash, limits)?;
            finish(&mut out, &mut done, p.hash, content)?;
        }
        if still.len() == before {
            for (p, delta) in still {
                let src = p.delta_source.unwrap_or_default();
                let missing = || ServerError::MissingDeltaSource {
                    hash: p.hash.to_string(),
                    source_hash: src.to_string(),
                };
                dangling.push(Dangling {
                    hash: ArtifactHash::parse(p.hash)
                        .map_err(|_| ServerError::WrongHash(p.hash.to_string()))?,
                    source: ArtifactHash::parse(src).map_err(|_| missing())?,
                    delta,
                });
            }
            break;
        }
        pending = still;
    }
    // Deltas kept by earlier pushes whose source is here now (and theirs).
    if repo.has_dangling()? {
        let mut i = 0;
        while i < out.len() {
            for (hash, delta) in repo.dangling_on(&out[i].0)? {
                if done.contains_key(hash.as_str()) {
                    continue;
                }
                let content = apply(&out[i].1, &delta, hash.as_str(), limits)?;
                finish(&mut out, &mut done, hash.as_str(), content)?;
            }
            i += 1;
        }
    }
    Ok(Resolved {
        whole: out,
        dangling,
    })
}

/// Applies a pushed (or kept) delta for artifact `hash`.
fn apply(source: &[u8], delta: &[u8], hash: &str, limits: &Limits) -> Result<Vec<u8>, ServerError> {
    crate::delta::apply(source, delta, limits.max_payload).map_err(|source| ServerError::BadDelta {
        hash: hash.to_string(),
        source,
    })
}

/// Checks `content` against its name `hash` and adds it once.
fn finish(
    out: &mut Vec<(ArtifactHash, Vec<u8>)>,
    done: &mut HashMap<String, usize>,
    hash: &str,
    content: Vec<u8>,
) -> Result<(), ServerError> {
    let name = ArtifactHash::parse(hash).map_err(|_| ServerError::WrongHash(hash.to_string()))?;
    if !name.matches(&content) {
        return Err(ServerError::WrongHash(hash.to_string()));
    }
    if !done.contains_key(hash) {
        done.insert(hash.to_string(), out.len());
        out.push((name, content));
    }
    Ok(())
}

/// A pushed card's payload as sent: `cfile` payloads inflated, `file`
/// payloads as they are.
fn payload(p: &Pushed<'_>) -> Result<Vec<u8>, ServerError> {
    if p.compressed {
        crate::repo::decompress(p.payload).map_err(|reason| ServerError::BadCfile {
            hash: p.hash.to_string(),
            reason,
        })
    } else {
        Ok(p.payload.to_vec())
    }
}
