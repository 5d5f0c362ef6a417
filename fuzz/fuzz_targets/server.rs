//! Fuzz target: the sync server on a real (temporary) repository must answer
//! every request with a reply and never panic. The first input byte picks the
//! content type; the repository's project code is fixed so seeds can carry
//! `pull`/`push` cards that pass the project check.
#![no_main]

use herd::repo::{CreateOptions, Repository};
use herd::xfer::{handle, Request};
use libfuzzer_sys::fuzz_target;

/// The project code the seeds in corpus/server use.
const PROJECT_CODE: &str = "d0119d97d5ec4de58b41fc12bd6d374d9cbd9f7d";

thread_local! {
    static REPO: (tempfile::TempDir, Repository) = {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let repo = Repository::create(
            &dir.path().join("fuzz.fossil"),
            &CreateOptions {
                project_name: None,
                admin_user: "admin".into(),
                nobody_caps: "gio".into(),
            },
        )
        .expect("create the fuzz repository");
        repo.config_set("project-code", PROJECT_CODE).expect("set project code");
        (dir, repo)
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let content_type = match kind % 3 {
        0 => "application/x-fossil",
        1 => "application/x-fossil-debug",
        _ => "application/x-fossil-uncompressed",
    };
    REPO.with(|(_, repo)| {
        let response = handle(
            repo,
            &Request {
                content_type,
                body,
                peer: None,
            },
        );
        assert!(!response.body.is_empty(), "every request gets a reply");
    });
});
