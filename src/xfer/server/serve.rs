//! Sending artifacts: answers to `gimme` (full `file` cards within the
//! reply budget, `igot` beyond it) and clone pages (`cfile` for protocol 3,
//! `file` for 2, igot-everything for the legacy clone), with `clone_seqno`
//! before `push` as the client requires.

use super::session::Session;
use super::types::ServerError;
use crate::repo::{ArtifactHash, Rid};
use crate::xfer::card::{Card, CloneFrom};
use crate::xfer::fastpath;

impl Session<'_> {
    /// Answers `gimme` cards with full `file` cards while the reply is under
    /// budget, then with `igot`.
    pub(super) fn serve_gimmes(&mut self) -> Result<(), ServerError> {
        let mut budget = self.config.max_download;
        let gimmes = std::mem::take(&mut self.gimmes);
        for hash in gimmes {
            let Ok(hash) = ArtifactHash::parse(hash) else {
                continue;
            };
            if !self.may_send(&hash) {
                return Ok(());
            }
            if budget == 0 {
                self.out.push(Card::Igot {
                    hash: hash.to_string(),
                    private: false,
                });
                continue;
            }
            if let Some(content) = self.repo.content(&hash)? {
                budget = budget.saturating_sub(content.len() as u64);
                self.outcome.artifacts_sent += 1;
                self.out.push(Card::File {
                    hash: hash.to_string(),
                    delta_source: None,
                    payload: content,
                });
            }
        }
        Ok(())
    }
    /// `clone VER SEQ` (v2/v3 paging) and the legacy `clone`.
    pub(super) fn serve_clone(
        &mut self,
        from: Option<CloneFrom>,
        project_code: &str,
    ) -> Result<(), ServerError> {
        let repo = self.repo;
        let push = Card::Push {
            server_code: repo.server_code()?,
            project_code: project_code.to_string(),
        };
        if self.artifacts == fastpath::Artifacts::Tip {
            // A sparse clone (`pragma herd-sparse`): the tip's manifest and
            // its baseline, in one round, as a sparse pull would bring them.
            let cards = fastpath::pull_reply(repo, None, fastpath::Artifacts::Tip, &[])?;
            self.count_sent(&cards);
            self.out.extend(cards);
            self.out.push(Card::CloneSeqno(0));
            self.out.push(push);
            return Ok(());
        }
        let Some(from) = from.filter(|f| f.version >= 2) else {
            // Legacy: announce everything, the client asks with gimme.
            self.out.push(push);
            let (rids, _) = repo.blobs_from(Rid(1), u64::MAX)?;
            for rid in rids {
                if let Some(hash) = repo.hash_of(rid)? {
                    self.out.push(Card::Igot {
                        hash: hash.to_string(),
                        private: false,
                    });
                }
            }
            return Ok(());
        };
        let start = i64::try_from(from.seqno).unwrap_or(i64::MAX).max(1);
        let (rids, next) = repo.blobs_from(Rid(start), self.config.max_download)?;
        for rid in rids {
            let Some(hash) = repo.hash_of(rid)? else {
                continue;
            };
            if !self.may_send(&hash) {
                return Ok(());
            }
            let card = if from.version >= 3 {
                let Some(raw) = repo.raw(rid)? else { continue };
                Card::Cfile {
                    hash: hash.to_string(),
                    delta_source: raw.delta_source.map(|h| h.to_string()),
                    full_size: raw.size,
                    payload: raw.stored,
                }
            } else {
                Card::File {
                    hash: hash.to_string(),
                    delta_source: None,
                    payload: repo.content_of(rid)?,
                }
            };
            self.outcome.artifacts_sent += 1;
            self.out.push(card);
        }
        // clone_seqno must come before push: push queues the next round.
        self.out
            .push(Card::CloneSeqno(next.map_or(0, |r| r.0.max(0) as u64)));
        self.out.push(push);
        Ok(())
    }
}
