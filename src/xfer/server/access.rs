//! Who may do what: the repository's `user` table as the sync server reads
//! it (login, `pw`, `cap`), and the policy for clients that do not log in.
//!
//! Fossil reads the user row on every request (src/xfer.c check_login). A
//! hub serving hundreds of pushes a second reads the table once at start
//! instead ([`Access::load`], kept in [`ServerConfig::access`]); without a
//! loaded table each request reads it afresh, as Fossil does. Checking a
//! signature is [`verify_login`]'s business; this file only looks users up
//! and grants capabilities.
//!
//! [`ServerConfig::access`]: super::ServerConfig::access
//! [`verify_login`]: crate::xfer::login::verify_login

use std::collections::HashMap;

use crate::repo::{RepoError, Repository};
use crate::xfer::caps::Caps;
use crate::xfer::login::is_anonymous;

/// Logins that exist only to lend their capabilities to others; Fossil
/// never lets anyone log in as them.
const SPECIAL_LOGINS: [&str; 4] = ["anonymous", "nobody", "developer", "reader"];

/// One user who may log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The `user.pw` column: a 40-hex shared secret or a cleartext password.
    pub pw: String,
    /// The `user.cap` column.
    pub caps: String,
}

/// The users a server knows and what a client that does not log in may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Capabilities every session starts with (`nobody`'s, unless login is
    /// required).
    anonymous: String,
    /// Users with a password, by login.
    accounts: HashMap<String, Account>,
    /// Whether `nobody`'s capabilities were withheld.
    require_login: bool,
}

impl Access {
    /// Reads the `user` table. With `require_login`, a client that does not
    /// log in (or logs in as `nobody` or `anonymous`) gets no capability at
    /// all, whatever `nobody`'s row says: the row stays as it is, so a
    /// `fossil server` on the same file still sees it.
    pub fn load(repo: &Repository, require_login: bool) -> Result<Access, RepoError> {
        let anonymous = if require_login {
            String::new()
        } else {
            repo.user_caps("nobody")?.unwrap_or_default()
        };
        let mut accounts = HashMap::new();
        for (login, pw, caps) in users(repo)? {
            if pw.is_empty() || SPECIAL_LOGINS.contains(&login.as_str()) {
                continue;
            }
            accounts.insert(login, Account { pw, caps });
        }
        Ok(Access {
            anonymous,
            accounts,
            require_login,
        })
    }

    /// What a session has before (or without) a login.
    pub fn anonymous_caps(&self) -> Caps {
        Caps::new(&self.anonymous)
    }

    /// The user `login` may log in as, if any (never one of the special
    /// logins, nor a user without a password).
    pub fn account(&self, login: &str) -> Option<&Account> {
        if is_anonymous(login) {
            return None;
        }
        self.accounts.get(login)
    }

    /// Keeps the table for the rest of the process, so a `Copy`
    /// [`ServerConfig`](super::ServerConfig) can hold it: one small
    /// allocation per server started, never per request.
    pub fn leak(self) -> &'static Access {
        Box::leak(Box::new(self))
    }

    /// Whether clients must log in to get any capability.
    pub fn requires_login(&self) -> bool {
        self.require_login
    }

    /// Logins that may log in, sorted.
    pub fn logins(&self) -> Vec<&str> {
        let mut logins: Vec<&str> = self.accounts.keys().map(String::as_str).collect();
        logins.sort_unstable();
        logins
    }
}

/// Every row of the `user` table as (login, pw, cap), NULLs as empty.
fn users(repo: &Repository) -> Result<Vec<(String, String, String)>, RepoError> {
    let sql = |source| RepoError::Sql {
        step: "reading the user table",
        source,
    };
    let mut stmt = repo
        .conn
        .prepare_cached("SELECT login, coalesce(pw, ''), coalesce(cap, '') FROM user")
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(dir: &std::path::Path) -> Repository {
        Repository::scratch(dir)
    }

    #[test]
    fn users_with_passwords_are_accounts_and_nobody_is_the_default() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        repo.set_user("alice", "pw", "io").unwrap();
        repo.set_user("nopw", "", "s").unwrap();
        let open = Access::load(&repo, false).unwrap();
        assert!(open.anonymous_caps().may_write());
        assert_eq!(open.account("alice").map(|a| a.caps.as_str()), Some("io"));
        assert!(open.account("nopw").is_none(), "no password, no login");
        assert!(open.account("nobody").is_none() && open.account("developer").is_none());
        // admin (uid 1) has a random password and may log in.
        assert_eq!(open.logins(), vec!["admin", "alice"]);

        let closed = Access::load(&repo, true).unwrap();
        let none = closed.anonymous_caps();
        assert!(!none.may_clone() && !none.may_read() && !none.may_write());
        assert!(closed.requires_login());
        assert_eq!(closed.account("alice"), open.account("alice"));
        // The row itself is untouched.
        assert_eq!(repo.user_caps("nobody").unwrap().as_deref(), Some("gio"));
    }
}
