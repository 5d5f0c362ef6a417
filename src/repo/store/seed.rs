//! What `fossil new` writes into an empty database: the schema, the ticket
//! report, config rows (fresh server and project codes), the five standard
//! users and, unless the file is for a clone, the initial empty check-in.

use rand::Rng;
use rusqlite::params;

use super::config::now_ms;
use super::handle::Repository;
use super::types::CreateOptions;
use crate::repo::error::{RepoError, SqlContext};
use crate::repo::manifest::{Manifest, TagCard, TagKind};
use crate::repo::schema;
use crate::repo::time;

/// Random lowercase hex of `n` bytes.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill(&mut bytes[..]);
    hex::encode(bytes)
}

impl Repository {
    /// Writes schema, seed rows and (unless this is a clone of `clone_of`)
    /// the initial check-in into an empty database.
    pub(super) fn seed(
        &self,
        opts: &CreateOptions,
        clone_of: Option<&str>,
    ) -> Result<(), RepoError> {
        let c = &self.conn;
        c.execute_batch(schema::CONTENT_SCHEMA)
            .ctx("creating the content schema")?;
        c.execute_batch(schema::DERIVED_SCHEMA)
            .ctx("creating the derived schema")?;
        c.execute(
            "INSERT INTO reportfmt(rn, owner, title, mtime, cols, sqlcode) VALUES(1, NULL, ?1, 2440587.5, ?2, ?3)",
            params![schema::REPORT_TITLE, schema::REPORT_COLS, schema::REPORT_SQL],
        )
        .ctx("seeding the ticket report")?;
        let now = now_ms() / 1000;
        self.seed_config(opts, clone_of, now)?;
        self.seed_users(opts, now)?;
        if clone_of.is_some() {
            return Ok(());
        }
        self.initial_checkin(opts)
    }

    /// The config rows, stamped `now` (Unix seconds); the project code is
    /// `clone_of`'s or a fresh one.
    fn seed_config(
        &self,
        opts: &CreateOptions,
        clone_of: Option<&str>,
        now: i64,
    ) -> Result<(), RepoError> {
        let mut config = vec![
            ("hash-policy", "2".to_owned()),
            ("content-schema", "2".to_owned()),
            ("aux-schema", schema::AUX_SCHEMA.to_owned()),
            ("rebuilt", schema::REBUILT.to_owned()),
            ("admin-log", "1".to_owned()),
            ("access-log", "1".to_owned()),
            ("server-code", random_hex(20)),
            (
                "project-code",
                clone_of.map_or_else(|| random_hex(20), str::to_owned),
            ),
            ("autosync", "1".to_owned()),
            ("localauth", "0".to_owned()),
            ("timeline-plaintext", "1".to_owned()),
        ];
        if let Some(name) = &opts.project_name {
            config.push(("project-name", name.clone()));
        }
        for (name, value) in config {
            self.conn
                .execute(
                    "INSERT INTO config(name, value, mtime) VALUES(?1, ?2, ?3)",
                    params![name, value, now],
                )
                .ctx("seeding config")?;
        }
        Ok(())
    }

    /// The five users `fossil new` makes, stamped `now` (Unix seconds).
    fn seed_users(&self, opts: &CreateOptions, now: i64) -> Result<(), RepoError> {
        let users = [
            (1, opts.admin_user.as_str(), random_hex(5), "s", ""),
            (2, "anonymous", random_hex(8).to_uppercase(), "hmnc", "Anon"),
            (
                3,
                "nobody",
                String::new(),
                opts.nobody_caps.as_str(),
                "Nobody",
            ),
            (4, "developer", String::new(), "ei", "Dev"),
            (5, "reader", String::new(), "kptw", "Reader"),
        ];
        for (uid, login, pw, cap, info) in users {
            self.conn
                .execute(
                    "INSERT INTO user(uid, login, pw, cap, info, mtime) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                    params![uid, login, pw, cap, info, now],
                )
                .ctx("seeding users")?;
        }
        Ok(())
    }

    /// The initial empty check-in on trunk, by the setup user.
    fn initial_checkin(&self, opts: &CreateOptions) -> Result<(), RepoError> {
        let rcvid = self.new_rcvid(&opts.admin_user, None, None)?;
        let manifest = Manifest {
            comment: "initial empty check-in".into(),
            date: time::format_date(now_ms()),
            repo_cksum: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
            tags: vec![
                TagCard {
                    kind: TagKind::Propagating,
                    name: "branch".into(),
                    value: Some("trunk".into()),
                },
                TagCard {
                    kind: TagKind::Propagating,
                    name: "sym-trunk".into(),
                    value: None,
                },
            ],
            user: opts.admin_user.clone(),
            ..Manifest::default()
        };
        let stored = self.store(&manifest.to_bytes(), None, Some(rcvid))?;
        self.crosslink(stored.rid)?;
        Ok(())
    }
}
