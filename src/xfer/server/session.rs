//! One request's pass over its cards, in order, as Fossil's page_xfer reads
//! them: login, pragmas, pull/push/clone permissions, and what to do at the
//! end. Landing pushes is in `push.rs`, answering gimme and clone in
//! `serve.rs`.

use super::access::Access;
use super::types::{
    Decoded, Outcome, Response, ServerConfig, ServerError, MIN_SHA3_CLIENT, SERVER_VERSION,
};
use crate::repo::{ArtifactHash, Repository};
use crate::xfer::caps::Caps;
use crate::xfer::card::{Card, CloneFrom, Spanned};
use crate::xfer::fastpath;
use crate::xfer::frame::{encode_body, ContentType};
use crate::xfer::login::verify_login;
use crate::xfer::time::timestamp_comment;

/// One pushed artifact, decoded from a `file` or `cfile` card.
pub(super) struct Pushed<'a> {
    pub(super) hash: &'a str,
    pub(super) delta_source: Option<&'a str>,
    /// Full content, a delta, or (cfile) a stored blob.
    pub(super) payload: &'a [u8],
    pub(super) compressed: bool,
}

pub(super) struct Session<'a> {
    pub(super) repo: &'a Repository,
    pub(super) config: &'a ServerConfig,
    pub(super) decoded: &'a Decoded,
    pub(super) peer: Option<&'a str>,
    pub(super) caps: Caps,
    /// The user table read for this request, when the config holds none.
    pub(super) fresh_access: Access,
    pub(super) user: String,
    pub(super) nonce: Option<String>,
    pub(super) client_version: u64,
    pub(super) pulling: bool,
    pub(super) pushing: bool,
    /// Reply cards so far.
    pub(super) out: Vec<Card>,
    /// Error cards, sent last.
    pub(super) errors: Vec<String>,
    pub(super) gimmes: Vec<&'a str>,
    pub(super) igots: Vec<&'a str>,
    pub(super) pushed: Vec<Pushed<'a>>,
    pub(super) clone: Option<Option<CloneFrom>>,
    pub(super) fast_tip: Option<Option<&'a str>>,
    /// Check-ins after the client's tip whose files it holds (`pragma
    /// herd-have`): a fast pull sends their manifests only.
    pub(super) have: Vec<&'a str>,
    pub(super) fast_push: bool,
    /// The pusher asks the hub to land its check-ins on the tip
    /// (`pragma herd-land`).
    pub(super) land: bool,
    /// What the fast path sends this client.
    pub(super) artifacts: fastpath::Artifacts,
    pub(super) stopped: bool,
    pub(super) uncompressed_reply: bool,
    pub(super) outcome: Outcome,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        repo: &'a Repository,
        decoded: &'a Decoded,
        peer: Option<&'a str>,
        config: &'a ServerConfig,
    ) -> Session<'a> {
        Session {
            repo,
            config,
            decoded,
            peer,
            caps: Caps::default(),
            fresh_access: Access::default(),
            user: "nobody".to_string(),
            nonce: None,
            client_version: 0,
            pulling: false,
            pushing: false,
            out: Vec::new(),
            errors: Vec::new(),
            gimmes: Vec::new(),
            igots: Vec::new(),
            pushed: Vec::new(),
            clone: None,
            fast_tip: None,
            have: Vec::new(),
            fast_push: false,
            land: false,
            artifacts: fastpath::Artifacts::All,
            stopped: false,
            uncompressed_reply: false,
            outcome: Outcome {
                cards_in: decoded.cards.len(),
                ..Outcome::default()
            },
        }
    }

    pub(super) fn reply_type(&self) -> ContentType {
        if self.uncompressed_reply {
            ContentType::Uncompressed
        } else {
            self.decoded.content_type
        }
    }

    /// Fossil's fatal errors: whatever was queued is wiped and the pass stops.
    pub(super) fn fail(&mut self, text: &str) {
        self.out.clear();
        self.errors.push(text.to_string());
        self.stopped = true;
    }

    /// The user table in force: the config's, else this request's reading.
    fn access(&self) -> &Access {
        self.config.access.unwrap_or(&self.fresh_access)
    }

    pub(super) fn run(&mut self) -> Result<(), ServerError> {
        let repo = self.repo;
        if self.config.access.is_none() {
            self.fresh_access = Access::load(repo, false)?;
        }
        self.caps = self.access().anonymous_caps();
        let project_code = repo.project_code()?;
        let decoded = self.decoded;
        for spanned in &decoded.cards {
            if self.stopped {
                break;
            }
            self.card(spanned, &project_code)?;
        }
        if self.stopped {
            return Ok(());
        }
        if !self.pushed.is_empty() {
            self.store_pushed()?;
        }
        self.serve_gimmes()?;
        if let Some(from) = self.clone.clone() {
            self.serve_clone(from, &project_code)?;
        }
        // A refusal to send SHA3 content to an old client ends the reply.
        if self.stopped {
            return Ok(());
        }
        if self.pulling {
            match self.fast_tip {
                Some(tip) if fastpath::serves_pull(repo, tip)? => {
                    let cards = fastpath::pull_reply(repo, tip, self.artifacts, &self.have)?;
                    self.count_sent(&cards);
                    self.out.extend(cards);
                }
                _ => {
                    for (_, hash) in repo.unclustered()? {
                        self.out.push(Card::Igot {
                            hash: hash.to_string(),
                            private: false,
                        });
                    }
                }
            }
        }
        if self.pushing {
            self.finish_push()?;
        }
        Ok(())
    }

    pub(super) fn card(
        &mut self,
        spanned: &'a Spanned,
        project_code: &str,
    ) -> Result<(), ServerError> {
        match &spanned.card {
            Card::Login {
                user,
                nonce,
                signature,
            } => self.login(user, nonce, signature, spanned.end, project_code),
            Card::Pragma { name, args } => self.pragma(name, args),
            Card::Pull {
                project_code: pc, ..
            } => self.pull(pc == project_code),
            Card::Push {
                project_code: pc, ..
            } => self.push(pc == project_code),
            Card::Clone(from) => self.begin_clone(from.as_ref(), project_code)?,
            Card::Igot { hash, .. } => {
                if self.pushing {
                    self.igots.push(hash);
                }
            }
            Card::Gimme(hash) => {
                if self.pulling || self.clone.is_some() {
                    self.gimmes.push(hash);
                }
            }
            Card::File {
                hash,
                delta_source,
                payload,
            } => self.accept(hash, delta_source.as_deref(), payload, false),
            Card::Cfile {
                hash,
                delta_source,
                payload,
                ..
            } => self.accept(hash, delta_source.as_deref(), payload, true),
            Card::Unknown(raw) => {
                // Fossil wipes the reply so far but keeps reading.
                self.out.clear();
                self.errors.push(format!(
                    "bad command: {}",
                    String::from_utf8_lossy(raw).trim_end()
                ));
            }
            // Ignored as the 2.21 server ignores them (or answers nothing).
            Card::Cookie(_)
            | Card::Reqconfig(_)
            | Card::Config { .. }
            | Card::Private
            | Card::Message(_)
            | Card::Error(_)
            | Card::CloneSeqno(_)
            | Card::Comment(_) => {}
        }
        Ok(())
    }

    /// `login`: checks the signature over the rest of the request (from
    /// byte `signed_from` of the decoded text) and takes the account's
    /// capabilities.
    fn login(
        &mut self,
        user: &str,
        nonce: &str,
        signature: &str,
        signed_from: usize,
        project_code: &str,
    ) {
        let after = &self.decoded.text[signed_from..];
        // Cloned (two short strings) so the caps can grow below.
        let account = self.access().account(user).cloned();
        match verify_login(
            user,
            nonce,
            signature,
            after,
            project_code,
            account.as_ref().map(|a| a.pw.as_str()),
        ) {
            Ok(()) => {
                if let Some(account) = &account {
                    self.caps.add(&account.caps);
                }
                self.user = user.to_string();
                self.nonce = Some(nonce.to_string());
            }
            Err(_) => self.fail("login failed"),
        }
    }

    /// `pragma`: the client's version and herd's fast-path pragmas; others
    /// are ignored, as Fossil ignores them.
    fn pragma(&mut self, name: &str, args: &'a [String]) {
        match name {
            "client-version" => {
                self.client_version = args.first().and_then(|v| v.parse().ok()).unwrap_or(0);
                if args.len() >= 3 {
                    self.out
                        .push(Card::pragma("server-version", &SERVER_VERSION));
                }
            }
            fastpath::PRAGMA_TIP => {
                self.fast_tip = Some(args.first().map(String::as_str));
            }
            fastpath::PRAGMA_PUSH => self.fast_push = true,
            fastpath::PRAGMA_HAVE => self
                .have
                .extend(args.iter().take(fastpath::MAX_HAVE).map(String::as_str)),
            fastpath::PRAGMA_LAND => self.land = true,
            fastpath::PRAGMA_SPARSE => self.artifacts = fastpath::Artifacts::Tip,
            _ => {}
        }
    }

    /// `pull`, for this project or not.
    fn pull(&mut self, our_project: bool) {
        if !our_project {
            self.fail("wrong project");
        } else if !self.caps.may_read() {
            self.fail("not authorized to read");
        } else {
            self.pulling = true;
        }
    }

    /// `push`, for this project or not. A reader without write rights who
    /// also pulls gets a message rather than an error, as from Fossil.
    fn push(&mut self, our_project: bool) {
        if !our_project {
            self.fail("wrong project");
        } else if self.caps.may_write() {
            self.pushing = true;
        } else if self.pulling {
            self.out
                .push(Card::Message("pull only - not authorized to push".into()));
        } else {
            self.fail("not authorized to write");
        }
    }

    /// `clone`: a client without clone rights gets Fossil's answer (the
    /// codes and an error) and nothing more.
    fn begin_clone(
        &mut self,
        from: Option<&CloneFrom>,
        project_code: &str,
    ) -> Result<(), ServerError> {
        if !self.caps.may_clone() {
            self.out.clear();
            self.out.push(Card::Push {
                server_code: self.repo.server_code()?,
                project_code: project_code.to_string(),
            });
            self.errors.push("not authorized to clone".into());
            self.stopped = true;
        } else {
            if from.is_some_and(|f| f.version >= 3) {
                self.uncompressed_reply = true;
            }
            self.clone = Some(from.cloned());
        }
        Ok(())
    }

    pub(super) fn accept(
        &mut self,
        hash: &'a str,
        delta_source: Option<&'a str>,
        payload: &'a [u8],
        compressed: bool,
    ) {
        if !self.pushing {
            self.fail("not authorized to write");
            return;
        }
        self.pushed.push(Pushed {
            hash,
            delta_source,
            payload,
            compressed,
        });
    }

    /// Fossil refuses SHA3 content to clients older than 2.0.
    pub(super) fn may_send(&mut self, hash: &ArtifactHash) -> bool {
        if hash.as_str().len() == 64 && self.client_version < MIN_SHA3_CLIENT {
            self.fail("Fossil version 2.0 or later required.");
            return false;
        }
        true
    }
    pub(super) fn count_sent(&mut self, cards: &[Card]) {
        self.outcome.artifacts_sent += cards
            .iter()
            .filter(|c| matches!(c, Card::File { .. } | Card::Cfile { .. }))
            .count();
    }

    pub(super) fn finish(mut self) -> Response {
        let content_type = self.reply_type();
        let mut cards = std::mem::take(&mut self.out);
        self.outcome.errors = self.errors.len();
        cards.extend(self.errors.drain(..).map(Card::Error));
        cards.push(Card::Comment(timestamp_comment(self.outcome.errors)));
        self.outcome.cards_out = cards.len();
        Response {
            content_type,
            body: encode_body(content_type, &crate::xfer::card::encode(&cards)),
            outcome: self.outcome,
        }
    }
}
