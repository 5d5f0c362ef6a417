//! Push: the request (every artifact the check-ins introduced), then the
//! fast path's verdict (landed by the hub, accepted, refused with what a
//! rebase needs) or Fossil's generic rounds answering gimmes.

use super::error::ClientError;
use super::http::{Client, Reply};
use super::sync::{parse_tip, MAX_ROUNDS};
use crate::repo::{ArtifactHash, Repository};
use crate::xfer::card::Card;
use crate::xfer::fastpath::{
    PRAGMA_ACCEPTED, PRAGMA_LAND, PRAGMA_LANDED, PRAGMA_PUSH, PRAGMA_QUEUE, PRAGMA_TIP, PRAGMA_TURN,
};
use crate::xfer::QueueAsk;

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Every check-in landed.
    Accepted {
        /// The server's new tip, when it said (fast path).
        tip: Option<ArtifactHash>,
        /// The new tip's trunk position, when the server said.
        seq: Option<u64>,
    },
    /// The server refused a check-in: its parent is not the trunk tip. The
    /// artifacts needed to rebase onto `tip` have been stored locally.
    Refused {
        /// The server's trunk tip.
        tip: ArtifactHash,
        /// Its trunk position.
        seq: u64,
        /// The server's error text.
        message: String,
        /// Artifacts received with the refusal.
        received: usize,
        /// The push-queue turn granted with this refusal: push again (after
        /// rebasing onto `tip`) with [`QueueAsk::Turn`] and this token.
        turn: Option<u64>,
    },
    /// The hub landed the check-in itself, written anew on its tip
    /// ([`Client::push_landing`]); the pushed check-in is not on the hub.
    Landed {
        /// The check-in the hub wrote, now (or, for a repeated push, once)
        /// its trunk tip.
        checkin: ArtifactHash,
        /// Its trunk position.
        seq: u64,
        /// Whether its manifest was stored here: only when its baseline is
        /// held, so a sparse copy never needs the hub's newer baselines.
        stored: bool,
        /// How many of its files the hub merged by lines with trunk's
        /// (their merged texts are stored here either way).
        merged: u32,
    },
}

/// What a push's reply says on the fast path.
enum Verdict {
    /// The verdict.
    Given(PushOutcome),
    /// None: the server runs Fossil's generic protocol; the reply is
    /// handed back.
    None(Reply),
}

impl Client {
    /// Pushes `checkins` (and the artifacts each introduced). On the fast
    /// path one round trip gives the verdict; a refusal brings the artifacts
    /// needed to rebase.
    pub fn push(
        &self,
        repo: &Repository,
        checkins: &[ArtifactHash],
    ) -> Result<PushOutcome, ClientError> {
        self.push_queued(repo, checkins, None)
    }

    /// [`Client::push`] taking part in the server's push queue (see
    /// `xfer::fastpath`): a server that keeps one may hold the request until
    /// this pusher's turn; a server that does not ignores `ask`.
    pub fn push_queued(
        &self,
        repo: &Repository,
        checkins: &[ArtifactHash],
        ask: Option<QueueAsk>,
    ) -> Result<PushOutcome, ClientError> {
        let pragma = match ask {
            Some(QueueAsk::Wait) => Some(Card::pragma(PRAGMA_QUEUE, &[])),
            Some(QueueAsk::Turn(token)) => Some(Card::pragma(PRAGMA_QUEUE, &[&token.to_string()])),
            None => None,
        };
        self.push_with(repo, checkins, pragma)
    }

    /// [`Client::push`] asking the hub to land `checkin` on its tip itself
    /// when trunk moved since its parent but none of its files changed
    /// there (`pragma herd-land`, see `xfer::fastpath`): then the answer is
    /// [`PushOutcome::Landed`]. A conflicting check-in is refused as usual,
    /// the error naming the files; a server without hub landing refuses
    /// any stale parent.
    pub fn push_landing(
        &self,
        repo: &Repository,
        checkin: &ArtifactHash,
    ) -> Result<PushOutcome, ClientError> {
        self.push_with(
            repo,
            std::slice::from_ref(checkin),
            Some(Card::pragma(PRAGMA_LAND, &[])),
        )
    }

    /// The push itself, with one more pragma for the server: the request,
    /// then the fast path's verdict or, from a server without it, Fossil's
    /// rounds of gimmes until it asks for nothing more.
    fn push_with(
        &self,
        repo: &Repository,
        checkins: &[ArtifactHash],
        pragma: Option<Card>,
    ) -> Result<PushOutcome, ClientError> {
        let project_code = repo.project_code().map_err(self.repo_err())?;
        let push = Card::Push {
            server_code: repo.server_code().map_err(self.repo_err())?,
            project_code: project_code.clone(),
        };
        let mut cards = vec![Card::pragma(PRAGMA_PUSH, &[])];
        cards.extend(self.sparse_card());
        cards.extend(pragma);
        cards.push(push.clone());
        cards.extend(self.push_files(repo, checkins)?);
        let mut reply = self.exchange(&cards, Some(&project_code))?;
        for _ in 0..MAX_ROUNDS {
            reply = match self.fast_verdict(repo, reply)? {
                Verdict::Given(outcome) => return Ok(outcome),
                Verdict::None(reply) => reply,
            };
            self.check_error(&reply)?;
            match self.gimmes_answered(repo, &reply, &push)? {
                Some(cards) => reply = self.exchange(&cards, Some(&project_code))?,
                None => {
                    repo.clear_unsent().map_err(self.repo_err())?;
                    return Ok(PushOutcome::Accepted {
                        tip: None,
                        seq: None,
                    });
                }
            }
        }
        Err(self.protocol("push did not converge"))
    }

    /// The `file` cards of a push: every artifact the check-ins introduced,
    /// files before manifests.
    fn push_files(
        &self,
        repo: &Repository,
        checkins: &[ArtifactHash],
    ) -> Result<Vec<Card>, ClientError> {
        let mut files = Vec::new();
        let mut manifests = Vec::new();
        // A server that speaks the fast path (it told us its tip) holds every
        // check-in on its trunk, so a delta manifest's baseline, itself an
        // earlier trunk check-in, need not travel again: it is the largest
        // artifact of a push, and the server would only hash and drop it.
        let fast = self.known_tip().is_some();
        for checkin in checkins {
            for artifact in repo.checkin_artifacts(checkin).map_err(self.repo_err())? {
                if fast
                    && artifact != *checkin
                    && !checkins.contains(&artifact)
                    && repo.is_checkin(&artifact).map_err(self.repo_err())?
                {
                    continue;
                }
                let content = self.local_content(repo, &artifact)?;
                let card = Card::File {
                    hash: artifact.to_string(),
                    delta_source: None,
                    payload: content,
                };
                if artifact == *checkin {
                    manifests.push(card);
                } else {
                    files.push(card);
                }
            }
        }
        files.extend(manifests);
        Ok(files)
    }

    /// The fast path's verdict in `reply`, if it carries one: landed by the
    /// hub, accepted, or refused (with what the pusher needs to rebase).
    fn fast_verdict(&self, repo: &Repository, reply: Reply) -> Result<Verdict, ClientError> {
        if let Some(args) = reply.pragma(PRAGMA_LANDED) {
            let (checkin, seq) =
                parse_tip(args).ok_or_else(|| self.protocol("landing without a check-in"))?;
            let merged = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
            let stored = self.in_transaction(repo, |r| {
                r.clear_unsent().map_err(self.repo_err())?;
                self.keep_landed(r, reply.cards, &checkin)
            })?;
            if stored {
                self.set_known_tip(Some(checkin.clone()));
            } else if let (false, Ok(mut landed)) = (self.sparse, self.landed_unstored.lock()) {
                landed.push(checkin.clone());
            }
            return Ok(Verdict::Given(PushOutcome::Landed {
                checkin,
                seq,
                stored,
                merged,
            }));
        }
        if let Some(args) = reply.pragma(PRAGMA_ACCEPTED) {
            let tip = args.first().and_then(|h| ArtifactHash::parse(h).ok());
            let seq = args.get(1).and_then(|s| s.parse().ok());
            self.set_known_tip(tip.clone());
            repo.clear_unsent().map_err(self.repo_err())?;
            return Ok(Verdict::Given(PushOutcome::Accepted { tip, seq }));
        }
        if let (Some(args), Some(message)) = (reply.pragma(PRAGMA_TIP), reply.error()) {
            let message = message.to_string();
            let (tip, seq) =
                parse_tip(args).ok_or_else(|| self.protocol("refusal without a tip"))?;
            let turn = reply
                .pragma(PRAGMA_TURN)
                .and_then(|args| args.first())
                .and_then(|t| t.parse().ok());
            let received =
                self.in_transaction(repo, |r| self.store_received(r, reply.cards, None))?;
            self.set_known_tip(Some(tip.clone()));
            return Ok(Verdict::Given(PushOutcome::Refused {
                tip,
                seq,
                turn,
                message,
                received,
            }));
        }
        Ok(Verdict::None(reply))
    }

    /// Fossil's generic push: the next request, answering the reply's
    /// gimmes; `None` when the server asked for nothing.
    fn gimmes_answered(
        &self,
        repo: &Repository,
        reply: &Reply,
        push: &Card,
    ) -> Result<Option<Vec<Card>>, ClientError> {
        let gimmes: Vec<ArtifactHash> = reply
            .cards
            .iter()
            .filter_map(|c| match c {
                Card::Gimme(h) => ArtifactHash::parse(h).ok(),
                _ => None,
            })
            .collect();
        if gimmes.is_empty() {
            return Ok(None);
        }
        let mut cards = vec![push.clone()];
        for hash in gimmes {
            if let Some(content) = repo.content(&hash).map_err(self.repo_err())? {
                cards.push(Card::File {
                    hash: hash.to_string(),
                    delta_source: None,
                    payload: content,
                });
            }
        }
        if cards.len() == 1 {
            return Err(self.protocol("server asks for artifacts this repository lacks"));
        }
        Ok(Some(cards))
    }

    /// Stores the landed check-in's manifest from a landing reply when
    /// the baseline it reads through is held here (or it is a baseline
    /// itself and small enough to be worth keeping: never, for a sparse
    /// copy, which keeps only what it committed on). Says whether it did.
    /// The texts the hub merged are stored either way: a full copy that
    /// later names the landing as held (`herd-have`) is not sent them.
    fn keep_landed(
        &self,
        repo: &Repository,
        mut cards: Vec<Card>,
        checkin: &ArtifactHash,
    ) -> Result<bool, ClientError> {
        let at = cards
            .iter()
            .position(|c| matches!(c, Card::File { hash, .. } if hash == checkin.as_str()));
        let Some(at) = at else {
            self.store_received(repo, cards, None)?;
            return Ok(false);
        };
        let manifest_card = cards.remove(at);
        self.store_received(repo, cards, None)?;
        let Card::File {
            payload: manifest, ..
        } = &manifest_card
        else {
            unreachable!("found as a file card");
        };
        let (baseline, parent) = match crate::repo::parse_artifact(manifest) {
            crate::repo::Artifact::Checkin(m) => (m.baseline, m.parents.into_iter().next()),
            _ => return Err(self.protocol(format!("landed {checkin} is not a check-in"))),
        };
        let holds = |h: &ArtifactHash| {
            repo.rid_of(h)
                .map(|found| found.is_some_and(|(_, phantom)| !phantom))
                .map_err(self.repo_err())
        };
        let held = match &baseline {
            Some(b) => holds(b)?,
            None => !self.sparse,
        };
        // A full copy holds trunk without gaps: it fast-pulls after its
        // known tip, so storing a check-in whose parent it lacks would
        // skip the check-ins in between for good.
        let contiguous = self.sparse || parent.as_ref().map_or(Ok(false), holds)?;
        if !held || !contiguous {
            return Ok(false);
        }
        self.store_received(repo, vec![manifest_card], None)?;
        Ok(true)
    }
}
