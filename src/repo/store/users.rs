//! Users (login, password, capabilities) and the receiving sessions
//! (`rcvfrom`) that every stored artifact is attributed to.

use rusqlite::{params, OptionalExtension};

use super::config::now_ms;
use super::handle::Repository;
use crate::repo::error::{RepoError, SqlContext};

impl Repository {
    /// Records a receiving session and returns its `rcvid`. A nonce seen
    /// before (the same signed request handled again: a push held in the
    /// hub's queue, or a client's retry after a lost reply) is not
    /// recorded twice; `rcvfrom.nonce` is unique.
    pub fn new_rcvid(
        &self,
        login: &str,
        nonce: Option<&str>,
        ipaddr: Option<&str>,
    ) -> Result<i64, RepoError> {
        self.exec(
            "INSERT INTO rcvfrom(uid, mtime, nonce, ipaddr) \
                 VALUES((SELECT uid FROM user WHERE login=?1), julianday('now'), \
                 CASE WHEN EXISTS(SELECT 1 FROM rcvfrom WHERE nonce=?2) THEN NULL ELSE ?2 END, ?3)",
            params![login, nonce, ipaddr],
        )
        .ctx("recording a receiving session")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Capabilities of `login`.
    pub fn user_caps(&self, login: &str) -> Result<Option<String>, RepoError> {
        self.query_row("SELECT cap FROM user WHERE login=?1", [login], |r| r.get(0))
            .optional()
            .ctx("reading user caps")
            .map(Option::flatten)
    }

    /// The stored password of `login` (cleartext or 40-hex shared secret).
    pub fn user_secret(&self, login: &str) -> Result<Option<String>, RepoError> {
        self.query_row("SELECT pw FROM user WHERE login=?1", [login], |r| r.get(0))
            .optional()
            .ctx("reading a user's password")
            .map(Option::flatten)
    }

    /// Creates or replaces user `login` with password `pw` and capabilities `caps`.
    pub fn set_user(&self, login: &str, pw: &str, caps: &str) -> Result<(), RepoError> {
        self.exec(
                "INSERT INTO user(login, pw, cap, info, mtime) VALUES(?1, ?2, ?3, '', ?4) \
                 ON CONFLICT(login) DO UPDATE SET pw=excluded.pw, cap=excluded.cap, mtime=excluded.mtime",
                params![login, pw, caps, now_ms() / 1000],
            )
            .ctx("writing a user")?;
        Ok(())
    }

    /// Sets the capabilities of an existing user.
    pub fn set_caps(&self, login: &str, caps: &str) -> Result<(), RepoError> {
        let n = self
            .conn
            .execute(
                "UPDATE user SET cap=?1 WHERE login=?2",
                params![caps, login],
            )
            .ctx("writing user caps")?;
        if n == 0 {
            return Err(RepoError::NoSuchUser {
                login: login.to_owned(),
            });
        }
        Ok(())
    }
}
