//! Clone and pull: the fast path when the server answers herd's pragmas,
//! Fossil's generic rounds otherwise; the helpers push shares (`push.rs`).

use std::path::Path;

use super::error::ClientError;
use super::http::{Client, Reply};
use crate::repo::{ArtifactHash, RepoError, Repository};
use crate::xfer::card::{Card, CloneFrom};
use crate::xfer::fastpath::{MAX_HAVE, PRAGMA_HAVE, PRAGMA_TIP};

/// Most rounds one pull or push may take before the client gives up.
pub(super) const MAX_ROUNDS: u32 = 1000;
/// Fossil's client asks for at most this many phantoms per round.
const MAX_GIMMES: usize = 200;

/// How a pull ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// New artifacts stored.
    pub received: usize,
    /// The server's trunk tip and its trunk position, when it said (fast
    /// path).
    pub tip: Option<(ArtifactHash, u64)>,
    /// HTTP round trips this pull took.
    pub rounds: u32,
}

impl Client {
    /// Clones the server into a new repository at `path` (clone protocol 3,
    /// paged by `clone_seqno`), then crosslinks everything. A sparse client
    /// asks for a sparse clone (`pragma herd-sparse`): herd's hub answers in
    /// one round with the trunk tip's manifest and its baseline, the files
    /// staying phantoms without rows (see `xfer::fastpath`).
    pub fn clone_into(&self, path: &Path) -> Result<Repository, ClientError> {
        let mut seqno: u64 = 1;
        let mut project_code: Option<String> = None;
        let mut received = Vec::new();
        let mut server_tip = None;
        for _ in 0..MAX_ROUNDS {
            let mut cards: Vec<Card> = self.sparse_card().into_iter().collect();
            cards.push(Card::Clone(Some(CloneFrom { version: 3, seqno })));
            let reply = self.exchange(&cards, project_code.as_deref())?;
            if let Some(args) = reply.pragma(PRAGMA_TIP) {
                server_tip = parse_tip(args).map(|(tip, _)| tip);
            }
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
                    if self.sparse {
                        repo.skip_file_phantoms();
                    }
                    self.in_transaction(&repo, |r| self.store_received(r, received, None))?;
                    let tip = match server_tip {
                        Some(tip) => Some(tip),
                        None => repo.trunk_tip().map_err(self.repo_err())?,
                    };
                    self.set_known_tip(tip);
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
pub(super) fn parse_tip(args: &[String]) -> Option<(ArtifactHash, u64)> {
    let tip = ArtifactHash::parse(args.first()?).ok()?;
    let seq = args.get(1)?.parse().ok()?;
    Some((tip, seq))
}
