//! The repository module against the real `fossil` binary (2.21): fossil
//! verifies, lists, opens and rebuilds what we write, and we read, parse and
//! check out what fossil writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use herd::repo::{
    parse_artifact, Artifact, ArtifactHash, CheckinSpec, CreateOptions, FileChange, Manifest,
    RebaseError, Repository,
};

/// Runs fossil with HOME in `home` (it writes ~/.fossil) and USER=admin.
fn fossil(home: &Path, cwd: &Path, args: &[&str]) -> Output {
    let out = Command::new("fossil")
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("USER", "admin")
        .env_remove("FOSSIL_USER")
        .output()
        .unwrap_or_else(|e| {
            panic!("the real `fossil` binary (2.21) is required on PATH for these tests: {e}")
        });
    assert!(
        out.status.success(),
        "fossil {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn opts() -> CreateOptions {
    CreateOptions {
        project_name: Some("herd test".into()),
        admin_user: "admin".into(),
        nobody_caps: "gio".into(),
    }
}

/// Every regular file under `dir` (relative path → bytes), skipping fossil's checkout db.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let name = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if name == ".fslckout" || name == "_FOSSIL_" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Makes `n` check-ins: each adds two files (names with spaces), edits one
/// older file and every fourth deletes one. Returns comments in order.
fn make_history(repo: &Repository, n: usize, t0: SystemTime) -> Vec<String> {
    let mut tip = repo.trunk_tip().unwrap().unwrap();
    let mut comments = Vec::new();
    for i in 0..n {
        let mut changes = vec![
            FileChange {
                path: format!("dir {}/file {i}.txt", i % 7),
                content: Some(format!("file {i}\n").repeat(i % 13 + 1).into_bytes()),
            },
            FileChange {
                path: format!("top-{i}.md"),
                content: Some(format!("# {i}\nsome text\n").into_bytes()),
            },
        ];
        if i > 0 {
            changes.push(FileChange {
                path: format!("top-{}.md", i / 2),
                content: Some(format!("edited at {i}\n").into_bytes()),
            });
        }
        if i % 4 == 3 {
            changes.push(FileChange {
                path: format!("dir {}/file {}.txt", (i - 3) % 7, i - 3),
                content: None,
            });
        }
        let comment = format!("commit number {i} with \\ backslash");
        let spec = CheckinSpec {
            parent: tip.clone(),
            changes,
            comment: comment.clone(),
            user: if i % 2 == 0 {
                "alice".into()
            } else {
                "bob".into()
            },
            time: t0 + Duration::from_secs(i as u64 + 1),
        };
        tip = repo.commit(&spec).unwrap().hash;
        comments.push(comment);
    }
    comments
}

fn ci_events(path: &Path) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("SELECT count(*) FROM event WHERE type='ci'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Every row of `sql` as text.
fn rows(path: &Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    let out = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join("|"))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    out
}

#[test]
fn fossil_accepts_a_repository_we_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let path = home.join("ours.fossil");
    let n = 300;
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let (tip, ours) = {
        let repo = Repository::create(&path, &opts()).unwrap();
        let comments = make_history(&repo, n, t0);
        assert_eq!(repo.trunk_commits().unwrap(), n as u64 + 1);
        assert_eq!(repo.trunk_leaves().unwrap(), 1);
        let tip = repo.trunk_tip().unwrap().unwrap();
        let co = home.join("ours-co");
        repo.checkout(&tip, &co).unwrap();
        (tip, (tree(&co), comments))
    };
    let (our_files, comments) = ours;
    let p = path.to_str().unwrap();

    let integrity = stdout(&fossil(home, home, &["test-integrity", "--parse", "-R", p]));
    assert!(
        !integrity.contains("wrong hash") && !integrity.contains("mismatch"),
        "{integrity}"
    );
    assert!(integrity.contains("0 errors"), "{integrity}");

    let timeline = stdout(&fossil(
        home,
        home,
        &["timeline", "-R", p, "-n", "0", "-W", "0", "-t", "ci"],
    ));
    for (i, c) in comments.iter().enumerate() {
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        assert!(
            timeline.contains(&format!("{c} (user: {user}")),
            "timeline lacks {c:?}:\n{timeline}"
        );
    }
    assert!(timeline.contains("initial empty check-in"));

    let leaves = stdout(&fossil(home, home, &["leaves", "-R", p]));
    let leaf_lines = leaves
        .lines()
        .filter(|l| l.trim_start().starts_with('('))
        .count();
    assert_eq!(leaf_lines, 1, "{leaves}");
    assert!(leaves.contains(&tip.as_str()[..10]), "{leaves}");

    let wd = home.join("fossil-co");
    std::fs::create_dir(&wd).unwrap();
    let opened = fossil(home, &wd, &["open", p, tip.as_str()]);
    let said = format!(
        "{}{}",
        stdout(&opened),
        String::from_utf8_lossy(&opened.stderr)
    );
    assert!(
        !said.to_lowercase().contains("checksum") && !said.contains("WARNING"),
        "{said}"
    );
    assert_eq!(tree(&wd), our_files, "fossil's checkout differs from ours");
    fossil(home, &wd, &["close"]);

    let copy = home.join("copy.fossil");
    std::fs::copy(&path, &copy).unwrap();
    let before = ci_events(&copy);
    fossil(home, home, &["rebuild", copy.to_str().unwrap()]);
    assert_eq!(ci_events(&copy), before);
    // Our derived rows match what fossil derives itself.
    for sql in [
        "SELECT (SELECT uuid FROM blob WHERE rid=mid), coalesce((SELECT uuid FROM blob WHERE rid=fid),''), \
         coalesce((SELECT uuid FROM blob WHERE rid=pid),''), (SELECT name FROM filename WHERE fnid=mlink.fnid), \
         mperm FROM mlink ORDER BY 1, 4",
        "SELECT (SELECT uuid FROM blob WHERE rid=pid), (SELECT uuid FROM blob WHERE rid=cid), isprim FROM plink ORDER BY 1, 2",
        "SELECT uuid FROM leaf JOIN blob USING(rid) ORDER BY 1",
        "SELECT uuid, tagname, tagtype, value FROM tagxref JOIN tag USING(tagid) JOIN blob USING(rid) ORDER BY 1, 2",
    ] {
        let (a, b) = (rows(&path, sql), rows(&copy, sql));
        let only_ours: Vec<_> = a.iter().filter(|r| !b.contains(r)).take(5).collect();
        let only_fossil: Vec<_> = b.iter().filter(|r| !a.contains(r)).take(5).collect();
        assert!(
            a == b,
            "derived rows differ after fossil rebuild ({} vs {} rows): {sql}\nonly ours: {only_ours:#?}\nonly fossil's: {only_fossil:#?}",
            a.len(),
            b.len()
        );
    }
    assert_eq!(before, n as i64 + 1);
}

#[test]
fn we_read_a_repository_fossil_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let path = home.join("theirs.fossil");
    let p = path.to_str().unwrap();
    fossil(home, home, &["new", "--admin-user", "admin", p]);
    let wd = home.join("wd");
    std::fs::create_dir(&wd).unwrap();
    fossil(home, &wd, &["open", p]);
    let big: String = (0..200)
        .map(|i| format!("line {i} of a file fossil will deltify\n"))
        .collect();
    std::fs::write(wd.join("a.txt"), &big).unwrap();
    std::fs::create_dir(wd.join("sub dir")).unwrap();
    std::fs::write(wd.join("sub dir/b c.txt"), "hello\n").unwrap();
    fossil(home, &wd, &["add", "a.txt", "sub dir/b c.txt"]);
    fossil(
        home,
        &wd,
        &[
            "commit",
            "-m",
            "first\tcommit with \\ and spaces",
            "--no-warnings",
        ],
    );
    std::fs::write(wd.join("a.txt"), format!("{big}one more line\n")).unwrap();
    fossil(home, &wd, &["commit", "-m", "edit one", "--no-warnings"]);
    std::fs::write(
        wd.join("a.txt"),
        format!("first line\n{big}one more line\nand another\n"),
    )
    .unwrap();
    std::fs::write(wd.join("new.txt"), "new\n").unwrap();
    fossil(home, &wd, &["add", "new.txt"]);
    fossil(home, &wd, &["commit", "-m", "edit two", "--no-warnings"]);
    fossil(home, &wd, &["close"]);
    let deltas: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM delta", [], |r| r.get(0))
        .unwrap();
    assert!(deltas > 0, "fossil should have stored deltas");
    let fossil_files = tree(&wd);

    let repo = Repository::open(&path).unwrap();
    let tip = repo
        .trunk_tip()
        .unwrap()
        .expect("fossil's repo has a trunk tip");
    let manifest = Manifest::parse(&repo.content(&tip).unwrap().unwrap()).unwrap();
    assert_eq!(manifest.comment, "edit two");
    assert_eq!(repo.trunk_commits().unwrap(), 4);
    let mut checkins = 0;
    for h in repo.trunk_after(None).unwrap() {
        let bytes = repo.content(&h).unwrap().unwrap();
        assert!(matches!(parse_artifact(&bytes), Artifact::Checkin(_)));
        let m = Manifest::parse(&bytes).unwrap();
        assert_eq!(
            m.to_bytes(),
            bytes,
            "our writer reproduces fossil's manifest {h}"
        );
        checkins += 1;
    }
    assert_eq!(checkins, 4);
    let first = repo.trunk_after(None).unwrap()[1].clone();
    assert_eq!(
        Manifest::parse(&repo.content(&first).unwrap().unwrap())
            .unwrap()
            .comment,
        "first\tcommit with \\ and spaces"
    );
    let co = home.join("ours");
    repo.checkout(&tip, &co).unwrap();
    assert_eq!(tree(&co), fossil_files);

    // And we can extend fossil's history; fossil still verifies it.
    let ci = repo
        .commit(&CheckinSpec {
            parent: tip,
            changes: vec![FileChange {
                path: "sub dir/b c.txt".into(),
                content: Some(b"changed by herd\n".to_vec()),
            }],
            comment: "from herd".into(),
            user: "admin".into(),
            time: SystemTime::now(),
        })
        .unwrap();
    assert_eq!(repo.trunk_tip().unwrap(), Some(ci.hash));
    drop(repo);
    let integrity = stdout(&fossil(home, home, &["test-integrity", "--parse", "-R", p]));
    assert!(integrity.contains("0 errors"), "{integrity}");
}

#[test]
fn rebase_and_replication_stay_valid_for_fossil() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let hub_path = home.join("hub.fossil");
    let leaf_path = home.join("leaf.fossil");
    drop(Repository::create(&hub_path, &opts()).unwrap());
    std::fs::copy(&hub_path, &leaf_path).unwrap(); // a leaf starts as a clone
    let hub = Repository::open(&hub_path).unwrap();
    let root = hub.trunk_tip().unwrap().unwrap();
    let commit = |repo: &Repository, parent: &ArtifactHash, path: &str, body: &str| {
        repo.commit(&CheckinSpec {
            parent: parent.clone(),
            changes: vec![FileChange {
                path: path.into(),
                content: Some(body.as_bytes().to_vec()),
            }],
            comment: format!("write {path}"),
            user: "leaf".into(),
            time: SystemTime::now(),
        })
        .unwrap()
    };
    let a = commit(&hub, &root, "slot-0/a.txt", "a\n");
    let b = commit(&hub, &root, "slot-1/b.txt", "b\n"); // forks off root
    let rebased = hub.rebase(&b.hash, &a.hash).unwrap();
    let files = hub.file_list(&rebased.hash).unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["slot-0/a.txt", "slot-1/b.txt"]
    );
    assert_eq!(
        files["slot-1/b.txt"].0,
        hub.file_list(&b.hash).unwrap()["slot-1/b.txt"].0,
        "same file artifact"
    );
    let c = commit(&hub, &root, "slot-0/a.txt", "conflict\n");
    // Added on both sides: there is no common text to merge lines against.
    assert!(
        matches!(hub.rebase(&c.hash, &rebased.hash), Err(RebaseError::Conflict { conflicts })
            if conflicts.len() == 1 && conflicts[0].path == "slot-0/a.txt"
                && conflicts[0].why == herd::repo::ConflictKind::Whole)
    );

    // Replicate the trunk into a fresh repository the way the sync fast path
    // does: manifest first (its files become phantoms), then the files.
    let leaf = Repository::open(&leaf_path).unwrap();
    for h in [a.hash.clone(), rebased.hash.clone()] {
        let mut arts = hub.checkin_artifacts(&h).unwrap();
        arts.reverse();
        for art in arts {
            let bytes = hub.content(&art).unwrap().unwrap();
            let s = leaf.store(&bytes, Some(&art), None).unwrap();
            leaf.crosslink(s.rid).unwrap();
        }
    }
    assert!(leaf.phantoms().unwrap().is_empty());
    assert_eq!(leaf.file_list(&rebased.hash).unwrap(), files);
    assert_eq!(
        leaf.trunk_after(Some(&a.hash)).unwrap(),
        vec![rebased.hash.clone()]
    );
    assert_eq!(leaf.trunk_tip().unwrap(), Some(rebased.hash.clone()));
    drop(leaf);
    drop(hub);
    for p in [&hub_path, &leaf_path] {
        let out = stdout(&fossil(
            home,
            home,
            &["test-integrity", "--parse", "-R", p.to_str().unwrap()],
        ));
        assert!(out.contains("0 errors"), "{out}");
    }
}

/// A sparse copy (a leaf) takes only the trunk tip's manifests, never the
/// files other slots wrote: with `skip_file_phantoms` crosslinking a
/// baseline that names every file makes no phantom rows, the tip still
/// reads as its full file list, and fossil finds the copy valid.
#[test]
fn a_sparse_copy_holds_manifests_without_file_phantoms() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let hub_path = home.join("hub.fossil");
    drop(Repository::create(&hub_path, &opts()).unwrap());
    let copies = [home.join("full.fossil"), home.join("sparse.fossil")];
    for c in &copies {
        std::fs::copy(&hub_path, c).unwrap();
    }
    let hub = Repository::open(&hub_path).unwrap();
    make_history(
        &hub,
        30,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    let tip = hub.trunk_tip().unwrap().unwrap();
    let baseline = {
        let m = Manifest::parse(&hub.content(&tip).unwrap().unwrap()).unwrap();
        m.baseline.unwrap_or_else(|| tip.clone())
    };
    let named: std::collections::HashSet<ArtifactHash> = [&baseline, &tip]
        .iter()
        .flat_map(|h| {
            Manifest::parse(&hub.content(h).unwrap().unwrap())
                .unwrap()
                .files
        })
        .filter_map(|f| f.hash)
        .collect();
    // The files the tip's own F cards name, as the tip and its parent have
    // them: when the parent is held, the tip's mlink rows name these.
    let tip_m = Manifest::parse(&hub.content(&tip).unwrap().unwrap()).unwrap();
    let parent_files = hub.file_list(&tip_m.parents[0]).unwrap();
    let changed: std::collections::HashSet<ArtifactHash> = tip_m
        .files
        .iter()
        .flat_map(|f| {
            [
                f.hash.clone(),
                parent_files.get(&f.name).map(|e| e.0.clone()),
            ]
        })
        .flatten()
        .collect();
    let mut file_phantoms = Vec::new();
    for (i, path) in copies.iter().enumerate() {
        let copy = Repository::open(path).unwrap();
        if i == 1 {
            copy.skip_file_phantoms();
        }
        for h in [&baseline, &tip] {
            let s = copy
                .store(&hub.content(h).unwrap().unwrap(), Some(h), None)
                .unwrap();
            copy.crosslink(s.rid).unwrap();
        }
        assert_eq!(copy.file_list(&tip).unwrap(), hub.file_list(&tip).unwrap());
        let phantoms = copy.phantoms().unwrap();
        file_phantoms.push(
            phantoms
                .into_iter()
                .filter(|p| named.contains(p))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        file_phantoms[0].len(),
        named.len(),
        "a full copy wants every file"
    );
    assert!(
        file_phantoms[1].len() < named.len() / 4
            && file_phantoms[1].iter().all(|p| changed.contains(p)),
        "the sparse copy wants only what the tip changed: {} of {}",
        file_phantoms[1].len(),
        named.len()
    );
    drop(hub);
    for p in &copies {
        let out = stdout(&fossil(
            home,
            home,
            &["test-integrity", "-R", p.to_str().unwrap()],
        ));
        assert!(out.contains("0 errors"), "{out}");
    }
}

/// Artifacts arrive in any order from a stock server's igot/gimme rounds. A
/// baseline check-in whose parent is held but waits for its own baseline (an
/// orphan) is crosslinked without mlink rows, which are filled in once the
/// parent's baseline arrives; nothing fails on the way (it used to: the
/// parent's file list was read before the parent was crosslinked).
#[test]
fn a_checkin_on_an_orphan_parent_crosslinks_and_is_completed_later() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let hub_path = home.join("hub.fossil");
    let copy_path = home.join("copy.fossil");
    drop(Repository::create(&hub_path, &opts()).unwrap());
    std::fs::copy(&hub_path, &copy_path).unwrap();
    let hub = Repository::open(&hub_path).unwrap();
    make_history(
        &hub,
        60,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    let parse = |h: &ArtifactHash| Manifest::parse(&hub.content(h).unwrap().unwrap()).unwrap();
    // A baseline C whose parent P is a delta manifest on baseline Y.
    let trunk = hub.trunk_after(None).unwrap();
    let (c, p, y) = trunk
        .iter()
        .find_map(|c| {
            let cm = parse(c);
            let p = cm.parents.first()?.clone();
            let y = parse(&p).baseline?;
            cm.baseline.is_none().then_some((c.clone(), p, y))
        })
        .expect("60 check-ins make a baseline after a delta manifest");
    let copy = Repository::open(&copy_path).unwrap();
    let put = |h: &ArtifactHash| {
        let s = copy
            .store(&hub.content(h).unwrap().unwrap(), Some(h), None)
            .unwrap();
        copy.crosslink(s.rid).unwrap();
    };
    put(&p); // an orphan: its baseline Y is missing
    put(&c); // on a held but orphaned parent
    let mlinks = |repo: &Path, h: &ArtifactHash| {
        rows(
            repo,
            &format!(
                "SELECT count(*) FROM mlink JOIN blob ON blob.rid=mlink.mid WHERE blob.uuid='{h}'"
            ),
        )
    };
    assert_eq!(mlinks(&copy_path, &c), ["Integer(0)"], "deferred");
    put(&y);
    assert_eq!(copy.file_list(&p).unwrap(), hub.file_list(&p).unwrap());
    assert_eq!(mlinks(&copy_path, &c), mlinks(&hub_path, &c), "filled in");
}

/// Size check: `HERD_REPO_SIZE_COMMITS` check-ins (default 150; 5000 is the
/// release target, `cargo test --release`) of 3 new files each. Every delta
/// manifest's text is a few KB (MAX_DELTA_CARD_BYTES); every check-in is
/// *stored* in a few KB (older baselines as deltas of the next one, delta
/// manifests of their child), except whole baselines: the newest and one
/// per chain of MAX_CHAIN_LINKS deltas; the repository file stays a small multiple of
/// the compressed content it stores; fossil verifies the result.
#[test]
fn manifest_and_repository_sizes() {
    // The F-card cap plus the other cards, with room to spare.
    const FEW_KB: i64 = herd::repo::MAX_DELTA_CARD_BYTES as i64 + 1024;
    let n: usize = std::env::var("HERD_REPO_SIZE_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let tmp = tempfile::tempdir().unwrap();
    let path: PathBuf = tmp.path().join("size.fossil");
    let repo = Repository::create(&path, &opts()).unwrap();
    let started = std::time::Instant::now();
    let mut tip = repo.trunk_tip().unwrap().unwrap();
    for i in 0..n {
        let changes = (0..3)
            .map(|j| FileChange {
                path: format!("slot-{}/task-{i}/file-{j}.txt", i % 16),
                content: Some(format!("{i}-{j} ").repeat(30).into_bytes()),
            })
            .collect();
        tip = repo
            .commit(&CheckinSpec {
                parent: tip,
                changes,
                comment: format!("task {i}"),
                user: "leaf".into(),
                time: SystemTime::now(),
            })
            .unwrap()
            .hash;
    }
    let elapsed = started.elapsed();
    let tip_files = repo.file_list(&tip).unwrap().len();
    assert_eq!(tip_files, 3 * n);
    drop(repo);
    let c = rusqlite::Connection::open(&path).unwrap();
    // (text size, stored size, is a delta manifest, is stored as a delta)
    // of every check-in but the initial empty one.
    let rows: Vec<(i64, i64, bool, bool)> = c
        .prepare(
            "SELECT blob.size, length(blob.content), \
                    EXISTS(SELECT 1 FROM plink WHERE cid=blob.rid AND baseid IS NOT NULL), \
                    EXISTS(SELECT 1 FROM delta WHERE delta.rid=blob.rid) \
             FROM event JOIN blob ON rid=objid WHERE type='ci' AND comment<>'initial empty check-in'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), n);
    let max_of = |it: &mut dyn Iterator<Item = i64>| it.max().unwrap_or(0);
    let max_delta_text = max_of(&mut rows.iter().filter(|r| r.2).map(|r| r.0));
    let baselines: Vec<&(i64, i64, bool, bool)> = rows.iter().filter(|r| !r.2).collect();
    let max_baseline_text = max_of(&mut baselines.iter().map(|r| r.0));
    // Chain roots: baselines stored in full.
    let roots: Vec<i64> = baselines.iter().filter(|r| !r.3).map(|r| r.1).collect();
    let max_stored = max_of(&mut rows.iter().filter(|r| r.2 || r.3).map(|r| r.1));
    let stored_manifests: i64 = rows.iter().map(|r| r.1).sum();
    let text_manifests: i64 = rows.iter().map(|r| r.0).sum();
    let stored: i64 = c
        .query_row("SELECT sum(length(content)) FROM blob", [], |r| r.get(0))
        .unwrap();
    let stored_files: i64 = c
        .query_row(
            "SELECT sum(length(content)) FROM blob WHERE rid NOT IN (SELECT objid FROM event)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(c);
    let file_size = std::fs::metadata(&path).unwrap().len() as i64;
    let factor = file_size as f64 / stored as f64;
    eprintln!(
        "size check: {n} check-ins ({tip_files} files) in {elapsed:?}\n  \
         delta manifests: text max {max_delta_text} B\n  \
         {} baselines: text max {max_baseline_text} B; {} chain roots stored in full ({:?} B)\n  \
         stored per check-in (all but roots): max {max_stored} B; \
         manifests: text total {text_manifests} B, stored total {stored_manifests} B (avg {} B)\n  \
         stored content {stored} B (files {stored_files} B); repository file {file_size} B \
         = {factor:.2} x stored content, {:.2} x stored files",
        baselines.len(),
        roots.len(),
        roots,
        stored_manifests / n as i64,
        file_size as f64 / stored_files as f64,
    );
    assert!(
        max_delta_text <= FEW_KB,
        "a delta manifest of {max_delta_text} bytes"
    );
    assert!(
        max_stored <= FEW_KB,
        "a check-in stored in {max_stored} bytes"
    );
    // A whole baseline per MAX_CHAIN_LINKS + 1, counting the newest.
    let links = herd::repo::MAX_CHAIN_LINKS;
    assert!(
        roots.len() <= baselines.len().div_ceil(links + 1),
        "{} roots for {} baselines",
        roots.len(),
        baselines.len()
    );
    assert!(
        file_size < stored * 3 + 1_000_000,
        "repository file {file_size} B for {stored} B of content"
    );
    let home = tmp.path();
    let out = stdout(&fossil(
        home,
        home,
        &["test-integrity", "-R", path.to_str().unwrap()],
    ));
    assert!(out.contains(" 0 errors"), "{out}");
}

/// (artifact, its delta source) for every row stored as a delta.
fn delta_pairs(path: &Path) -> std::collections::BTreeSet<String> {
    rows(
        path,
        "SELECT a.uuid, s.uuid FROM delta JOIN blob a ON a.rid=delta.rid \
         JOIN blob s ON s.rid=delta.srcid",
    )
    .into_iter()
    .collect()
}

/// Asserts that `theirs` stores the same rows as deltas of the same sources
/// as `ours`, naming the first few differences.
fn same_deltas(
    theirs: &std::collections::BTreeSet<String>,
    ours: &std::collections::BTreeSet<String>,
    what: &str,
) {
    let only_theirs: Vec<_> = theirs.difference(ours).take(5).collect();
    let only_ours: Vec<_> = ours.difference(theirs).take(5).collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "{what}: {} deltas, ours {}; only theirs {only_theirs:?}, only ours {only_ours:?}",
        theirs.len(),
        ours.len()
    );
}

/// The longest delta chain: deltas applied to read the oldest version
/// from the whole one it starts from.
fn longest_chain(path: &Path) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(
        "WITH RECURSIVE chain(rid, n) AS (\
           SELECT rid, 0 FROM blob WHERE rid NOT IN (SELECT rid FROM delta) \
           UNION ALL SELECT delta.rid, n+1 FROM delta JOIN chain ON delta.srcid=chain.rid) \
         SELECT max(n) FROM chain",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Decompressions `fossil` makes to read `uuid`: one per delta on its
/// chain, plus the whole version it starts from.
fn reads_of(path: &Path, uuid: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(
        "WITH RECURSIVE up(rid) AS (SELECT rid FROM blob WHERE uuid=?1 \
           UNION ALL SELECT srcid FROM delta JOIN up USING(rid)) SELECT count(*) FROM up",
        [uuid],
        |r| r.get(0),
    )
    .unwrap()
}

/// Runs `fossil rebuild` on `path` and returns every progress figure it
/// printed ("  12.3% complete..." lines, separated by carriage returns).
fn rebuild_progress(home: &Path, path: &Path) -> Vec<f64> {
    let out = stdout(&fossil(home, home, &["rebuild", path.to_str().unwrap()]));
    let figures: Vec<f64> = out
        .split(['\r', '\n'])
        .filter_map(|l| l.trim().strip_suffix("% complete..."))
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(!figures.is_empty(), "no progress in {out:?}");
    figures
}

/// Runs `fossil rebuild` on `path`: its progress must end at 100 % and
/// never pass it.
fn assert_rebuilds_to_100(home: &Path, path: &Path) {
    let figures = rebuild_progress(home, path);
    let top = figures.iter().copied().fold(0.0, f64::max);
    assert!(top <= 100.0, "{}: progress reached {top} %", path.display());
    assert_eq!(
        figures.last(),
        Some(&100.0),
        "{}: {figures:?}",
        path.display()
    );
}

/// Storage as Fossil keeps it: the newest version of a manifest, of its
/// baseline and of a file is whole (reading the tip is one decompression),
/// older versions are deltas of newer ones within MAX_CHAIN_LINKS, and
/// `fossil rebuild` finds nothing to restore: its progress ends at 100 %
/// (a forward delta made it pass 100 %: rebuild undid the delta and
/// visited the row twice) and it keeps every delta as we made it. A
/// Fossil-made clone makes the same deltas (and reads its tip as cheaply).
#[test]
fn fossil_rebuilds_what_we_store_to_100_percent_and_reads_the_tip_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let ours = home.join("ours.fossil");
    let repo = Repository::create(&ours, &opts()).unwrap();
    let mut tip = repo.trunk_tip().unwrap().unwrap();
    let mut notes = String::new();
    for i in 0..80 {
        // A first check-in of 300 files, then two new files each and an
        // edit of one long file: delta manifests, a new baseline now and
        // then (MAX_DELTA_CARD_BYTES), and file versions to deltify.
        let new = if i == 0 { 300 } else { 2 };
        let mut changes: Vec<FileChange> = (0..new)
            .map(|j| FileChange {
                path: format!("d{}/f-{i}-{j}.txt", j % 9),
                content: Some(format!("{i} {j}\n").repeat(20).into_bytes()),
            })
            .collect();
        notes.push_str(&format!(
            "line {i} of the notes that every check-in edits\n"
        ));
        changes.push(FileChange {
            path: "notes.txt".into(),
            content: Some(notes.clone().into_bytes()),
        });
        tip = repo
            .commit(&CheckinSpec {
                parent: tip,
                changes,
                comment: format!("check-in {i}"),
                user: "alice".into(),
                time: SystemTime::now(),
            })
            .unwrap()
            .hash;
    }
    let tip_text = repo.content(&tip).unwrap().unwrap();
    let baseline = Manifest::parse(&tip_text).unwrap().baseline;
    drop(repo);
    let notes_uuid = ArtifactHash::sha3_of(notes.as_bytes()).to_string();

    // Fossil rebuilds a copy to 100 %, never past it, and keeps every
    // delta as we made it.
    let ours_pairs = delta_pairs(&ours);
    let rebuilt = home.join("rebuilt.fossil");
    std::fs::copy(&ours, &rebuilt).unwrap();
    assert_rebuilds_to_100(home, &rebuilt);
    same_deltas(
        &delta_pairs(&rebuilt),
        &ours_pairs,
        "our repository rebuilt by fossil",
    );

    assert!(ours_pairs.len() > 100, "{} deltas", ours_pairs.len());
    assert_eq!(reads_of(&ours, tip.as_str()), 1, "the tip is whole");
    if let Some(b) = &baseline {
        assert_eq!(
            reads_of(&ours, b.as_str()),
            1,
            "the tip's baseline is whole"
        );
    }
    assert_eq!(
        reads_of(&ours, &notes_uuid),
        1,
        "the newest file version is whole"
    );
    let longest = longest_chain(&ours);
    assert!(
        (1..=herd::repo::MAX_CHAIN_LINKS as i64).contains(&longest),
        "longest chain {longest}"
    );
    let out = stdout(&fossil(
        home,
        home,
        &["test-integrity", "-R", ours.to_str().unwrap()],
    ));
    assert!(out.contains(" 0 errors"), "{out}");
    // The tip through the CLI: the manifest we wrote, read whole.
    let shown = fossil(
        home,
        home,
        &["artifact", tip.as_str(), "-R", ours.to_str().unwrap()],
    );
    assert_eq!(shown.stdout, tip_text);

    // A Fossil-made clone of it stores every artifact as we do, so its tip
    // costs the same single read.
    let clone = home.join("clone.fossil");
    fossil(
        home,
        home,
        &["clone", ours.to_str().unwrap(), clone.to_str().unwrap()],
    );
    assert_eq!(
        reads_of(&clone, tip.as_str()),
        reads_of(&ours, tip.as_str())
    );
    // It makes every delta we made, and a few more: `fossil clone` also
    // tries undeltaed manifests against nearby later ones
    // (`extra_deltification`, skipped with --nocompress).
    let clone_pairs = delta_pairs(&clone);
    let missing: Vec<_> = ours_pairs.difference(&clone_pairs).take(5).collect();
    assert!(missing.is_empty(), "deltas the clone lacks: {missing:?}");

    // Rebuilding the clone too: both end at 100 %.
    assert_rebuilds_to_100(home, &clone);
}
