//! herd's one-round-trip pull and push, carried in `pragma` cards that a
//! real Fossil server ignores (reference 5.3: unknown pragmas are silently
//! skipped), so a client can tell from the reply whether the server speaks it.
//! Every `SEQ` below is a trunk position
//! ([`crate::repo::Repository::trunk_position`]: the root is 0).
//!
//! - Pull: the client sends `pragma herd-tip [HASH]` (the hub tip it knows;
//!   no argument when it knows none) with its `pull` card. The server answers
//!   `pragma herd-tip TIP SEQ` and a `file` card for every artifact of the
//!   trunk check-ins after HASH, files before manifests, in one reply.
//! - Push: the client sends `pragma herd-push`, `push` and every new artifact
//!   as `file` cards. Accepted: `pragma herd-accepted HASH SEQ`. Refused: the
//!   `pragma herd-tip TIP SEQ`, the files the pusher lacks (everything on
//!   trunk after its parent), then the `error` card last.
//! - Push queue: a client that adds `pragma herd-queue` to its push agrees to
//!   wait for its turn instead of racing. A server that keeps a queue (the
//!   hub) may hold such a push unanswered while another pusher has the turn,
//!   and answers it when its turn comes: with the refusal above plus
//!   `pragma herd-turn TOKEN`, which reserves the trunk for this pusher for a
//!   short lease. The client rebases and pushes again with
//!   `pragma herd-queue TOKEN`. Other servers ignore both pragmas.
//! - Hub landing: a client that adds `pragma herd-land` to its push asks the
//!   server to land a check-in whose parent is no longer the tip itself.
//!   The server then writes the check-in anew on the tip (same
//!   changes, comment and user; never storing the pushed manifest) and
//!   answers `pragma herd-landed HASH SEQ MERGED`, with the new manifest as a
//!   `file` card when it reads through the pushed check-in's baseline (the
//!   client holds that, so it can store the manifest and commit on it; a
//!   new baseline would be the whole tree's file list, which a sparse
//!   client does not want). A file the check-in changed that also changed
//!   on trunk since its parent is merged by lines (three ways); MERGED
//!   counts them, and their merged texts come as `file` cards before the
//!   manifest, since the pusher lacks them. A check-in whose lines
//!   conflict is refused as above, the error naming the files and lines. A
//!   push repeated after a lost reply is answered with the earlier landing.
//!   Other servers ignore the pragma and refuse the push as usual.
//! - Sparse: a client that adds `pragma herd-sparse` keeps only what it
//!   needs to commit on the newest tip: that tip's manifest and its
//!   baseline. Fast pulls and refusals then carry the tip's manifest (and
//!   its baseline when that is newer than the client's tip) and nothing
//!   else; the check-ins in between and everyone's files stay phantoms, as
//!   in a shallow, partial clone. A leaf rebases over manifests and never
//!   reads another slot's files, so shipping and storing every check-in on
//!   every leaf would be pure cost, paid once per leaf per commit. A
//!   `clone` with the pragma is answered the same way, in one round: the
//!   project code, the tip's manifest and its baseline; a leaf joining a
//!   long trunk copies none of what the others wrote.
//! - Stored form: with every artifact (a client that is not sparse), each
//!   goes as a `cfile` card holding the blob as the hub stores it: zlib
//!   compressed, and for a manifest stored as a delta (a baseline against
//!   the previous baseline, a delta manifest against its parent), that
//!   delta. Its source is an older trunk check-in, which a client that
//!   receives all of trunk holds or gets in the same reply; a delta against
//!   anything else is expanded. So a new baseline, the whole tree's file
//!   list, travels as the few lines that changed since the last one.
//! - Have: a full client (one that receives every artifact) adds `pragma
//!   herd-have CHECKIN...` to a fast pull, naming trunk check-ins after its
//!   tip whose files it already holds: the ones the hub landed for it,
//!   whose files it pushed. The reply then carries their manifests but not
//!   their files, so a file's content reaches each leaf once.
//!
//! This file builds the server's side; the client's is in `client.rs`.

use std::collections::HashSet;

use super::card::Card;
use super::server::{Outcome, ServerError};
use crate::repo::{parse_artifact, Artifact, ArtifactHash, Repository};

/// `pragma herd-tip [HASH]` (client) / `pragma herd-tip TIP SEQ` (server).
pub const PRAGMA_TIP: &str = "herd-tip";
/// `pragma herd-push`: the client wants a fast-path verdict.
pub const PRAGMA_PUSH: &str = "herd-push";
/// `pragma herd-accepted HASH SEQ`: the push landed; HASH is the new tip.
pub const PRAGMA_ACCEPTED: &str = "herd-accepted";
/// `pragma herd-queue [TOKEN]`: the pusher waits for its turn (and holds
/// turn TOKEN, when given).
pub const PRAGMA_QUEUE: &str = "herd-queue";
/// `pragma herd-turn TOKEN`: with a refusal, the trunk is this pusher's next.
pub const PRAGMA_TURN: &str = "herd-turn";
/// `pragma herd-land`: land this push's check-ins on the tip if they do
/// not conflict.
pub const PRAGMA_LAND: &str = "herd-land";
/// `pragma herd-landed HASH SEQ MERGED`: the push was landed as check-in
/// HASH, MERGED of its files merged by lines with trunk's (their texts,
/// then its manifest, follow as `file` cards).
pub const PRAGMA_LANDED: &str = "herd-landed";
/// `pragma herd-sparse`: send this client the tip's manifest (and its
/// baseline), no files, no check-ins in between.
pub const PRAGMA_SPARSE: &str = "herd-sparse";

/// `pragma herd-have CHECKIN...`: the client holds these check-ins' files.
pub const PRAGMA_HAVE: &str = "herd-have";
/// Most check-ins one `herd-have` may name; the rest are ignored (their
/// files are sent).
pub const MAX_HAVE: usize = 64;

/// Which artifacts of trunk check-ins the fast path sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifacts {
    /// Files and manifests of every check-in.
    All,
    /// Manifests only, of every check-in given (tip bundles).
    Manifests,
    /// The newest check-in's manifest, and its baseline when that is among
    /// the check-ins given (`pragma herd-sparse`).
    Tip,
}

/// Whether the fast path can answer a pull from a client whose hub tip is
/// `tip`: it can when the client knows no tip (it gets the whole trunk) or
/// when the tip is a check-in held here. Otherwise the generic protocol runs.
pub fn serves_pull(repo: &Repository, tip: Option<&str>) -> Result<bool, ServerError> {
    let Some(tip) = tip else { return Ok(true) };
    let Ok(hash) = ArtifactHash::parse(tip) else {
        return Ok(false);
    };
    Ok(repo.rid_of(&hash)?.is_some_and(|(_, phantom)| !phantom))
}

/// The fast pull reply for a client at `tip` that holds the files of the
/// check-ins `have` names.
pub fn pull_reply(
    repo: &Repository,
    tip: Option<&str>,
    artifacts: Artifacts,
    have: &[&str],
) -> Result<Vec<Card>, ServerError> {
    let after = tip.map(ArtifactHash::parse).transpose()?;
    let mut cards = vec![tip_card(repo)?];
    let mut after_tip = trunk_after(repo, after.as_ref(), artifacts)?;
    let held = held_files(repo, have)?;
    if !held.is_empty() {
        after_tip.retain(|c| !matches!(c, Card::File { hash, .. } if held.contains(hash.as_str())));
    }
    cards.extend(after_tip);
    Ok(cards)
}

/// The file artifacts (not manifests) the check-ins `have` introduced;
/// names that are not held check-ins are ignored.
fn held_files(repo: &Repository, have: &[&str]) -> Result<HashSet<String>, ServerError> {
    let mut held = HashSet::new();
    for name in have {
        let Ok(hash) = ArtifactHash::parse(name) else {
            continue;
        };
        if !repo.is_checkin(&hash)? {
            continue;
        }
        for artifact in repo.checkin_artifacts(&hash)? {
            if !repo.is_checkin(&artifact)? {
                held.insert(artifact.to_string());
            }
        }
    }
    Ok(held)
}

/// The fast push verdict for what the request did; a refusal names the
/// turn the pusher was granted, if any.
pub fn push_reply(
    repo: &Repository,
    outcome: &Outcome,
    turn: Option<u64>,
    artifacts: Artifacts,
) -> Result<Vec<Card>, ServerError> {
    if let Some(refusal) = outcome.refusals.first() {
        let mut cards = vec![tip_card(repo)?];
        if let Some(token) = turn {
            cards.push(Card::pragma(PRAGMA_TURN, &[&token.to_string()]));
        }
        cards.extend(trunk_after(repo, refusal.parent.as_ref(), artifacts)?);
        return Ok(cards);
    }
    if let Some(landed) = &outcome.landed_before {
        let seq = repo.trunk_position()? - repo.trunk_after(Some(landed))?.len() as u64;
        return landed_reply(repo, landed, seq, false, &outcome.landed_before_merged);
    }
    match outcome.advances.last() {
        Some(advance) if advance.landed_from.is_some() => landed_reply(
            repo,
            &advance.hash,
            advance.seq,
            advance.pusher_can_keep,
            &advance.merged,
        ),
        Some(advance) => Ok(vec![Card::pragma(
            PRAGMA_ACCEPTED,
            &[advance.hash.as_str(), &advance.seq.to_string()],
        )]),
        None => Ok(vec![tip_card(repo)?]),
    }
}

/// `pragma herd-landed HASH SEQ MERGED`, the texts the landing merged
/// (the pusher lacks them), and the landed check-in's manifest when
/// `with_manifest`.
fn landed_reply(
    repo: &Repository,
    landed: &ArtifactHash,
    seq: u64,
    with_manifest: bool,
    merged: &[ArtifactHash],
) -> Result<Vec<Card>, ServerError> {
    let mut cards = vec![Card::pragma(
        PRAGMA_LANDED,
        &[landed.as_str(), &seq.to_string(), &merged.len().to_string()],
    )];
    for hash in merged {
        let text = repo.content(hash)?.ok_or_else(|| missing(hash))?;
        cards.push(file_card(hash, text));
    }
    if with_manifest {
        let manifest =
            repo.content(landed)?
                .ok_or_else(|| crate::repo::RepoError::MissingArtifact {
                    hash: landed.to_string(),
                })?;
        cards.push(file_card(landed, manifest));
    }
    Ok(cards)
}

/// `pragma herd-tip TIP SEQ` for the current trunk.
fn tip_card(repo: &Repository) -> Result<Card, ServerError> {
    let seq = repo.trunk_position()?.to_string();
    Ok(match repo.trunk_tip()? {
        Some(tip) => Card::pragma(PRAGMA_TIP, &[tip.as_str(), &seq]),
        None => Card::pragma(PRAGMA_TIP, &[]),
    })
}

/// `file` cards for every artifact of the trunk check-ins after `after`:
/// their files first, then the manifests oldest first, so a receiver that
/// crosslinks in order always holds a check-in's files before the check-in.
/// A delta manifest's baseline is sent only when it is itself after `after`
/// (otherwise the receiver, being at `after` on a linear trunk, holds it).
pub fn trunk_after(
    repo: &Repository,
    after: Option<&ArtifactHash>,
    artifacts: Artifacts,
) -> Result<Vec<Card>, ServerError> {
    let mut checkins = repo.trunk_after(after)?;
    if artifacts == Artifacts::Tip {
        if let Some(tip) = checkins.pop() {
            let baseline = match repo.content(&tip)?.map(|c| parse_artifact(&c)) {
                Some(Artifact::Checkin(m)) => m.baseline,
                _ => None,
            };
            checkins = baseline
                .filter(|b| checkins.contains(b))
                .into_iter()
                .chain([tip])
                .collect();
        }
    }
    checkin_cards(repo, &checkins, artifacts)
}

/// Cards for the artifacts of `checkins` (consecutive trunk check-ins,
/// oldest first), files first, then the manifests in order: `file` cards,
/// or with [`Artifacts::All`] `cfile` cards in stored form (see the module
/// comment).
pub fn checkin_cards(
    repo: &Repository,
    checkins: &[ArtifactHash],
    artifacts: Artifacts,
) -> Result<Vec<Card>, ServerError> {
    let manifests: HashSet<&ArtifactHash> = checkins.iter().collect();
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    let mut tail = Vec::new();
    for checkin in checkins {
        if artifacts != Artifacts::All {
            let content = repo.content(checkin)?.ok_or_else(|| missing(checkin))?;
            tail.push(file_card(checkin, content));
            continue;
        }
        let baseline = repo.baseline_of(checkin)?;
        for artifact in repo.checkin_artifacts(checkin)? {
            if artifact == *checkin
                || manifests.contains(&artifact)
                || Some(&artifact) == baseline.as_ref()
                || !seen.insert(artifact.clone())
            {
                continue;
            }
            if let Some(card) = stored_card(repo, &artifact, &seen)? {
                files.push(card);
            }
        }
        tail.push(stored_card(repo, checkin, &seen)?.ok_or_else(|| missing(checkin))?);
    }
    files.extend(tail);
    Ok(files)
}

/// `hash` as a `cfile` card in stored form, or as a `file` card when it is
/// stored as a delta against something the receiver may lack (neither a
/// check-in nor among `sent`).
fn stored_card(
    repo: &Repository,
    hash: &ArtifactHash,
    sent: &HashSet<ArtifactHash>,
) -> Result<Option<Card>, ServerError> {
    let Some((rid, false)) = repo.rid_of(hash)? else {
        return Ok(None);
    };
    let Some(raw) = repo.raw(rid)? else {
        return Ok(None);
    };
    if let Some(src) = &raw.delta_source {
        if !sent.contains(src) && !repo.is_checkin(src)? {
            return Ok(repo.content(hash)?.map(|c| file_card(hash, c)));
        }
    }
    Ok(Some(Card::Cfile {
        hash: hash.to_string(),
        delta_source: raw.delta_source.map(|h| h.to_string()),
        full_size: raw.size,
        payload: raw.stored,
    }))
}

fn missing(hash: &ArtifactHash) -> crate::repo::RepoError {
    crate::repo::RepoError::MissingArtifact {
        hash: hash.to_string(),
    }
}

fn file_card(hash: &ArtifactHash, payload: Vec<u8>) -> Card {
    Card::File {
        hash: hash.to_string(),
        delta_source: None,
        payload,
    }
}
