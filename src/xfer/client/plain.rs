//! Fossil's plain sync, as stock `fossil` speaks it: no herd pragmas at all.
//! A pull is a `pull` card and the igot/gimme rounds (reference 5.5); a push
//! is a `push` card with the check-in's new artifacts as `file` cards,
//! followed by rounds answering the server's `gimme`s. A stock server never
//! refuses a check-in for its parent (it accepts forks), so a push either
//! lands or fails with an `error` card.
//!
//! The fast-path functions in `sync.rs` also work against a stock server;
//! these exist so that side-by-side trials measure exactly what Fossil's own
//! client would send, with no pragma a stock server has to skip.

use std::collections::HashSet;

use super::error::ClientError;
use super::http::Client;
use super::sync::PullOutcome;
use crate::repo::{ArtifactHash, Repository};
use crate::xfer::card::Card;

/// Most rounds of gimmes one push answers before giving up.
const MAX_PUSH_ROUNDS: u32 = 100;

impl Client {
    /// Pulls with Fossil's generic rounds only: `pull`, then `gimme` for
    /// every phantom the server's igots (and received clusters) made, until
    /// none is left (see `generic_pull`).
    pub fn pull_plain(&self, repo: &Repository) -> Result<PullOutcome, ClientError> {
        let project_code = repo.project_code().map_err(self.repo_err())?;
        let pull = Card::Pull {
            server_code: repo.server_code().map_err(self.repo_err())?,
            project_code: project_code.clone(),
        };
        let reply = self.exchange(std::slice::from_ref(&pull), Some(&project_code))?;
        self.check_error(&reply)?;
        self.generic_pull(repo, pull, reply, &project_code)
    }

    /// Splits off the `file`/`cfile` deltas whose source is neither held
    /// nor (directly or through other deltas) in `cards`; returns the rest
    /// and the names to ask for again: each such artifact and its source.
    pub(super) fn set_aside_unresolvable(
        &self,
        repo: &Repository,
        cards: Vec<Card>,
    ) -> Result<(Vec<Card>, Vec<String>), ClientError> {
        let delta_of = |card: &Card| match card {
            Card::File {
                hash,
                delta_source: Some(src),
                ..
            }
            | Card::Cfile {
                hash,
                delta_source: Some(src),
                ..
            } => Some((hash.clone(), src.clone())),
            _ => None,
        };
        let mut available: HashSet<String> = cards
            .iter()
            .filter_map(|c| match c {
                Card::File {
                    hash,
                    delta_source: None,
                    ..
                }
                | Card::Cfile {
                    hash,
                    delta_source: None,
                    ..
                } => Some(hash.clone()),
                _ => None,
            })
            .collect();
        let mut pending: Vec<(String, String)> = cards.iter().filter_map(delta_of).collect();
        loop {
            let before = pending.len();
            let mut still = Vec::new();
            for (hash, src) in pending {
                let held = available.contains(&src)
                    || repo
                        .rid_of(&self.hash(&src)?)
                        .map_err(self.repo_err())?
                        .is_some_and(|(_, phantom)| !phantom);
                if held {
                    available.insert(hash);
                } else {
                    still.push((hash, src));
                }
            }
            pending = still;
            if pending.len() == before {
                break;
            }
        }
        if pending.is_empty() {
            return Ok((cards, Vec::new()));
        }
        let unresolved: HashSet<&String> = pending.iter().map(|(hash, _)| hash).collect();
        let again = pending
            .iter()
            .flat_map(|(hash, src)| [hash.clone(), src.clone()])
            .collect();
        let kept = cards
            .into_iter()
            .filter(|c| delta_of(c).map_or(true, |(hash, _)| !unresolved.contains(&hash)))
            .collect();
        Ok((kept, again))
    }

    /// Pushes one check-in the plain way: the files it introduced and its
    /// manifest in one message, then whatever the server asks for with
    /// `gimme` (a baseline or parent it lacks). `Ok` with the number of
    /// rounds when no reply carried an `error` card: the server stored and
    /// crosslinked the check-in, fork or not.
    pub fn push_plain(
        &self,
        repo: &Repository,
        checkin: &ArtifactHash,
    ) -> Result<u32, ClientError> {
        let project_code = repo.project_code().map_err(self.repo_err())?;
        let push = Card::Push {
            server_code: repo.server_code().map_err(self.repo_err())?,
            project_code: project_code.clone(),
        };
        let mut cards = vec![push.clone()];
        for artifact in repo.checkin_artifacts(checkin).map_err(self.repo_err())? {
            // Other check-ins (the baseline) came from the server or were
            // pushed before; should it lack one, it asks with a gimme.
            if artifact != *checkin && repo.is_checkin(&artifact).map_err(self.repo_err())? {
                continue;
            }
            cards.push(Card::File {
                payload: self.local_content(repo, &artifact)?,
                hash: artifact.to_string(),
                delta_source: None,
            });
        }
        let mut reply = self.exchange(&cards, Some(&project_code))?;
        for round in 1..=MAX_PUSH_ROUNDS {
            self.check_error(&reply)?;
            let mut cards = vec![push.clone()];
            for card in &reply.cards {
                let Card::Gimme(hash) = card else { continue };
                let hash = self.hash(hash)?;
                cards.push(Card::File {
                    payload: self.local_content(repo, &hash)?,
                    hash: hash.to_string(),
                    delta_source: None,
                });
            }
            if cards.len() == 1 {
                repo.clear_unsent().map_err(self.repo_err())?;
                return Ok(round);
            }
            reply = self.exchange(&cards, Some(&project_code))?;
        }
        Err(self.protocol("push did not converge"))
    }
}
