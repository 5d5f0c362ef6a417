//! The thread's link to the hub: the client as the trial wants it, the
//! slot's repository cloned or reopened, trace headers on requests.

use std::path::{Path, PathBuf};

use crate::coord::{TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::repo::Repository;
use crate::telemetry::W3c;
use crate::wire::LeafMode;
use crate::xfer::{Client, ClientError};

use super::super::error::LeafError;
use super::super::retry::with_start_retries;
use super::SyncConfig;

/// The client to the hub as the trial wants it: sparse unless the leaf is
/// full, uncompressed to a hub nearby, signing with the login when one is
/// set, sending the start-up trace context.
pub(super) fn hub_client(config: &SyncConfig) -> Client {
    // Sparse: this leaf keeps other slots' manifests (it rebases over
    // them) but never their files. Full: it receives everything.
    let mut client = Client::new(&config.hub_url);
    if config.leaf != LeafMode::Full {
        client = client.sparse();
    }
    if is_local(&config.hub_url) {
        client = client.uncompressed();
    }
    if let Some(login) = &config.login {
        client = client.with_login(&login.user, login.secret.expose());
    }
    set_trace(&client, &config.trace);
    client
}

/// Whether `url` names a hub on this machine or a private network (a
/// loopback address, `localhost`, a private IPv4 range such as the
/// simulated hosts' 10.213.N.0/24), where compressing sync bodies costs
/// CPU and saves next to nothing.
fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            std::net::IpAddr::V6(v6) => v6.is_loopback(),
        })
}

/// SQLite's page cache per leaf, in KiB: a leaf reads the tip and its own
/// check-in, so hot pages are few; SQLite's default (2 MiB) per process
/// would be most of a leaf's own memory in a herd of thousands.
const LEAF_PAGE_CACHE_KIB: u32 = 256;

/// The slot's repository: opened and brought up to date with `pull` when it
/// exists (a restarted leaf), else cloned afresh (a half-written clone from
/// a failed try is removed first). A hub that does not answer is retried as
/// at start-up.
pub(in crate::leaf) fn open_or_clone(
    config: &SyncConfig,
    client: &Client,
    pull: impl Fn(&Client, &Repository) -> Result<crate::xfer::PullOutcome, ClientError>,
) -> Result<Repository, LeafError> {
    let clone_err = |source| LeafError::Clone {
        url: config.hub_url.clone(),
        path: config.repo_path.clone(),
        source: Box::new(source),
    };
    if config.repo_path.exists() {
        let repo = Repository::open(&config.repo_path).map_err(|source| LeafError::Repo {
            step: "open the repository",
            path: config.repo_path.clone(),
            source: Box::new(source),
        })?;
        limit_page_cache(config, &repo)?;
        with_start_retries(|| pull(client, &repo)).map_err(clone_err)?;
        return Ok(repo);
    }
    if let Some(dir) = config.repo_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| LeafError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let repo = with_start_retries(|| {
        remove_repository(&config.repo_path);
        client.clone_into(&config.repo_path)
    })
    .map_err(clone_err)?;
    limit_page_cache(config, &repo)?;
    Ok(repo)
}

fn limit_page_cache(config: &SyncConfig, repo: &Repository) -> Result<(), LeafError> {
    repo.limit_cache(LEAF_PAGE_CACHE_KIB)
        .map_err(|source| LeafError::Repo {
            step: "bound the page cache",
            path: config.repo_path.clone(),
            source: Box::new(source),
        })
}

/// Sends `trace` with the client's following requests, so the hub's span
/// of each exchange is a child of the operation it serves.
pub(in crate::leaf) fn set_trace(client: &Client, trace: &W3c) {
    let mut headers = Vec::new();
    if let Some(tp) = &trace.traceparent {
        headers.push((TRACEPARENT_HEADER.to_string(), tp.clone()));
        if let Some(ts) = &trace.tracestate {
            headers.push((TRACESTATE_HEADER.to_string(), ts.clone()));
        }
    }
    client.set_headers(headers);
}

/// Removes a half-made clone (and its SQLite side files) before a retry.
fn remove_repository(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hubs_are_recognized() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.3.4.5/",
            "http://localhost:9/x",
            "http://[::1]:80/",
            "http://10.213.7.2:8080/",
            "http://192.168.1.9/",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "http://192.0.2.1:8080/",
            "https://example.org/",
            "http://[::2]/",
            "",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }
}
