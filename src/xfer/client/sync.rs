//! Clone, pull and push: the fast path when the server answers herd's
//! pragmas, Fossil's generic rounds otherwise.

use std::path::Path;

use super::error::ClientError;
use super::http::{Client, Reply};
use crate::repo::{ArtifactHash, RepoError, Repository};
use crate::xfer::card::{Card, CloneFrom};
use crate::xfer::fastpath::{
    MAX_HAVE, PRAGMA_ACCEPTED, PRAGMA_HAVE, PRAGMA_LAND, PRAGMA_LANDED, PRAGMA_PUSH, PRAGMA_QUEUE,
    PRAGMA_TIP, PRAGMA_TURN,
};
use crate::xfer::QueueAsk;

/// Most rounds one pull or push may take before the client gives up.
const MAX_ROUNDS: u32 = 1000;
/// Fossil's client asks for at most this many phantoms per round.
const MAX_GIMMES: usize = 200;

/// How a pull ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// New artifacts stored.
    pub received: usize,
    /// The server's trunk tip and length, when it said (fast path).
    pub tip: Option<(ArtifactHash, u64)>,
    /// HTTP round trips this pull took.
    pub rounds: u32,
}

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
    },
}

impl Client {
    /// Clones the server into a new repository at `path` (clone protocol 3,
    /// paged by `clone_seqno`), then crosslinks everything.
    pub fn clone_into(&self, path: &Path) -> Result<Repository, ClientError> {
        let mut seqno: u64 = 1;
        let mut project_code: Option<String> = None;
        let mut received = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let card = Card::Clone(Some(CloneFrom { version: 3, seqno }));
            let reply = self.exchange(&[card], project_code.as_deref())?;
            if let Some(text) = reply.error() {
                // The first round cannot carry a login (its signature needs
                // the project code, which the reply brings): a server that
                // refuses anonymous clones answers the push card and an
                // error, and the next round logs in (Fossil's client_sync
                // ignores that first error the same way).
                let first_refusal = self.login.is_some() && project_code.is_none();
                let code = reply.cards.iter().find_map(|c| match c {
                    Card::Push {
                        project_code: pc, ..
                    } => Some(pc.clone()),
                    _ => None,
                });
                match code {
                    Some(pc) if first_refusal => {
                        project_code = Some(pc);
                        continue;
                    }
                    _ => {
                        return Err(ClientError::Server {
                            url: self.url.clone(),
                            text: text.to_string(),
                        })
                    }
                }
            }
            let mut next = None;
            for card in reply.cards {
                match card {
                    Card::Push {
                        project_code: pc, ..
                    } => project_code = Some(pc),
                    Card::CloneSeqno(n) => next = Some(n),
                    card @ (Card::File { .. } | Card::Cfile { .. }) => received.push(card),
                    _ => {}
                }
            }
            match next {
                Some(0) => {
                    let pc = project_code
                        .ok_or_else(|| self.protocol("clone reply without push card"))?;
                    let repo = Repository::create_for_clone(path, &pc).map_err(self.repo_err())?;
                    self.in_transaction(&repo, |r| self.store_received(r, received, None))?;
                    self.set_known_tip(repo.trunk_tip().map_err(self.repo_err())?);
                    return Ok(repo);
                }
                Some(n) if n > seqno => seqno = n,
                Some(n) => {
                    return Err(self.protocol(format!("clone_seqno went from {seqno} to {n}")))
                }
                None => return Err(self.protocol("clone reply without clone_seqno")),
            }
        }
        Err(self.protocol("clone did not finish"))
    }

    /// Pulls what the server has and `repo` lacks.
    pub fn pull(&self, repo: &Repository) -> Result<PullOutcome, ClientError> {
        let project_code = repo.project_code().map_err(self.repo_err())?;
        let server_code = repo.server_code().map_err(self.repo_err())?;
        let pull = Card::Pull {
            server_code,
            project_code: project_code.clone(),
        };
        let tip = self
            .known_tip()
            .or(repo.trunk_tip().map_err(self.repo_err())?);
        let tip_args: Vec<&str> = tip.iter().map(|t| t.as_str()).collect();
        let mut first = vec![Card::pragma(PRAGMA_TIP, &tip_args)];
        first.extend(self.sparse_card());
        let have = self.landed_unstored();
        if !self.sparse && !have.is_empty() {
            let names: Vec<&str> = have.iter().take(MAX_HAVE).map(|h| h.as_str()).collect();
            first.push(Card::pragma(PRAGMA_HAVE, &names));
        }
        first.push(pull.clone());
        let reply = self.exchange(&first, Some(&project_code))?;
        self.check_error(&reply)?;
        if let Some(args) = reply.pragma(PRAGMA_TIP) {
            let server_tip = parse_tip(args);
            let received =
                self.in_transaction(repo, |r| self.store_received(r, reply.cards, None))?;
            if let Some((tip, _)) = &server_tip {
                self.set_known_tip(Some(tip.clone()));
                // Every landing named was on trunk before this reply, so
                // it came with it (its manifest stored, its files held).
                if let Ok(mut landed) = self.landed_unstored.lock() {
                    landed.retain(|h| !have.contains(h));
                }
            }
            return Ok(PullOutcome {
                received,
                tip: server_tip,
                rounds: 1,
            });
        }
        self.generic_pull(repo, pull, reply, &project_code)
    }

    /// Fossil's rounds: igots become phantoms, phantoms are asked for, until
    /// a round brings nothing new. A stock server answers a gimme for a
    /// check-in with a delta against its parent's manifest whether or not
    /// the client holds that parent (xfer.c, `send_delta_parent`): such a
    /// card is set aside, and it and its source are asked for together in
    /// the next round (Fossil's own client stores the delta against a
    /// phantom source instead; the effect is the same).
    pub(super) fn generic_pull(
        &self,
        repo: &Repository,
        pull: Card,
        mut reply: Reply,
        project_code: &str,
    ) -> Result<PullOutcome, ClientError> {
        let mut received = 0;
        let mut rounds = 1;
        loop {
            let cards = std::mem::take(&mut reply.cards);
            let (got, new_phantoms) = self.in_transaction(repo, |r| {
                let (cards, deferred) = self.set_aside_unresolvable(r, cards)?;
                let mut new_phantoms = 0;
                let igots = cards.iter().filter_map(|c| match c {
                    Card::Igot { hash, .. } => Some(hash),
                    _ => None,
                });
                for hash in igots.chain(deferred.iter()) {
                    let h = self.hash(hash)?;
                    if r.rid_of(&h).map_err(self.repo_err())?.is_none() {
                        r.store_phantom(&h).map_err(self.repo_err())?;
                        new_phantoms += 1;
                    }
                }
                let got = self.store_received(r, cards, None)?;
                Ok::<_, ClientError>((got, new_phantoms + deferred.len()))
            })?;
            received += got;
            let phantoms = repo.phantoms().map_err(self.repo_err())?;
            if phantoms.is_empty() || (got == 0 && new_phantoms == 0 && rounds > 1) {
                break;
            }
            if rounds >= MAX_ROUNDS {
                return Err(self.protocol("pull did not converge"));
            }
            let mut cards = vec![pull.clone()];
            cards.extend(
                phantoms
                    .iter()
                    .take(MAX_GIMMES)
                    .map(|h| Card::Gimme(h.to_string())),
            );
            reply = self.exchange(&cards, Some(project_code))?;
            rounds += 1;
            self.check_error(&reply)?;
        }
        Ok(PullOutcome {
            received,
            tip: None,
            rounds,
        })
    }

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

    /// The push itself, with one more pragma for the server.
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
        cards.extend(files);
        cards.extend(manifests);
        let mut reply = self.exchange(&cards, Some(&project_code))?;
        for _ in 0..MAX_ROUNDS {
            if let Some(args) = reply.pragma(PRAGMA_LANDED) {
                let (checkin, seq) =
                    parse_tip(args).ok_or_else(|| self.protocol("landing without a check-in"))?;
                let stored = self.in_transaction(repo, |r| {
                    r.clear_unsent().map_err(self.repo_err())?;
                    self.keep_landed(r, reply.cards, &checkin)
                })?;
                if stored {
                    self.set_known_tip(Some(checkin.clone()));
                } else if let (false, Ok(mut landed)) = (self.sparse, self.landed_unstored.lock()) {
                    landed.push(checkin.clone());
                }
                return Ok(PushOutcome::Landed {
                    checkin,
                    seq,
                    stored,
                });
            }
            if let Some(args) = reply.pragma(PRAGMA_ACCEPTED) {
                let tip = args.first().and_then(|h| ArtifactHash::parse(h).ok());
                let seq = args.get(1).and_then(|s| s.parse().ok());
                self.set_known_tip(tip.clone());
                repo.clear_unsent().map_err(self.repo_err())?;
                return Ok(PushOutcome::Accepted { tip, seq });
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
                return Ok(PushOutcome::Refused {
                    tip,
                    seq,
                    turn,
                    message,
                    received,
                });
            }
            self.check_error(&reply)?;
            // Generic protocol: answer gimmes until the server asks for nothing.
            let gimmes: Vec<ArtifactHash> = reply
                .cards
                .iter()
                .filter_map(|c| match c {
                    Card::Gimme(h) => ArtifactHash::parse(h).ok(),
                    _ => None,
                })
                .collect();
            if gimmes.is_empty() {
                repo.clear_unsent().map_err(self.repo_err())?;
                return Ok(PushOutcome::Accepted {
                    tip: None,
                    seq: None,
                });
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
            reply = self.exchange(&cards, Some(&project_code))?;
        }
        Err(self.protocol("push did not converge"))
    }

    /// Stores the landed check-in's manifest from a landing reply when
    /// the baseline it reads through is held here (or it is a baseline
    /// itself and small enough to be worth keeping: never, for a sparse
    /// copy, which keeps only what it committed on). Says whether it did.
    fn keep_landed(
        &self,
        repo: &Repository,
        cards: Vec<Card>,
        checkin: &ArtifactHash,
    ) -> Result<bool, ClientError> {
        let Some(manifest) = cards.iter().find_map(|c| match c {
            Card::File { hash, payload, .. } if hash == checkin.as_str() => Some(payload),
            _ => None,
        }) else {
            return Ok(false);
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
        self.store_received(repo, cards, None)?;
        Ok(true)
    }

    pub(super) fn local_content(
        &self,
        repo: &Repository,
        hash: &ArtifactHash,
    ) -> Result<Vec<u8>, ClientError> {
        repo.content(hash)
            .map_err(self.repo_err())?
            .ok_or_else(|| ClientError::Repo {
                url: self.url.clone(),
                source: RepoError::MissingArtifact {
                    hash: hash.to_string(),
                },
            })
    }

    /// Runs `f` atomically in `repo` (a transaction of its own, or a savepoint
    /// inside the caller's), naming this server in errors.
    pub(super) fn in_transaction<T>(
        &self,
        repo: &Repository,
        f: impl FnOnce(&Repository) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        repo.savepoint(|| f(repo)).map_err(|e| match e {
            ClientError::Repo { url, source } if url.is_empty() => ClientError::Repo {
                url: self.url.clone(),
                source,
            },
            other => other,
        })
    }

    pub(super) fn check_error(&self, reply: &Reply) -> Result<(), ClientError> {
        match reply.error() {
            Some(text) => Err(ClientError::Server {
                url: self.url.clone(),
                text: text.to_string(),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn hash(&self, text: &str) -> Result<ArtifactHash, ClientError> {
        ArtifactHash::parse(text).map_err(|_| self.protocol(format!("bad hash {text}")))
    }
}

/// `herd-tip TIP SEQ` arguments.
fn parse_tip(args: &[String]) -> Option<(ArtifactHash, u64)> {
    let tip = ArtifactHash::parse(args.first()?).ok()?;
    let seq = args.get(1)?.parse().ok()?;
    Some((tip, seq))
}
