//! The README is a front page and the guide holds the rest: every relative
//! link resolves, the README stays short, and the by-hand steps in the
//! guide (its one block marked `sh`) run as they stand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README, the guide's pages and the architecture page.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        root().join("README.md"),
        root().join("docs/architecture.md"),
    ];
    for entry in std::fs::read_dir(root().join("docs/guide")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

/// The targets of `](target)` links that are not URLs or in-page anchors.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target.to_string());
        }
        rest = &rest[end..];
    }
    links
}

#[test]
fn the_readme_is_a_front_page_and_every_link_resolves() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; the rest belongs in docs/guide"
    );
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap_or(Path::new("."));
        for link in relative_links(&text) {
            if !dir.join(&link).exists() {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
        let guide = page.starts_with(root().join("docs/guide"));
        if guide && !page.ends_with("debugging.md") {
            assert!(
                !text.lines().any(|l| l.trim() == "```sh"),
                "{}: a block marked sh is run by this test; mark examples console",
                page.display()
            );
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

#[test]
fn the_by_hand_steps_run_as_they_stand() {
    let page = std::fs::read_to_string(root().join("docs/guide/debugging.md")).unwrap();
    let block: String = page
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("one block marked sh")
        .to_string();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&block)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bash");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the by-hand steps did not finish in 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.contains(r#""event":"summary""#))
        .unwrap_or_else(|| {
            panic!(
                "no leaf summary:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(summary.contains(r#""committed":3"#), "{summary}");
    assert!(
        stdout.contains("trunk_commits"),
        "the hub's /stats answered: {stdout}"
    );
}

/// The `n`th table (from 1) of `text`: its consecutive lines starting `|`.
fn nth_table(text: &str, n: usize) -> Vec<&str> {
    let mut tables: Vec<Vec<&str>> = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with('|') {
            if !inside {
                tables.push(Vec::new());
            }
            inside = true;
            if let Some(table) = tables.last_mut() {
                table.push(line);
            }
        } else {
            inside = false;
        }
    }
    tables
        .into_iter()
        .nth(n.saturating_sub(1))
        .unwrap_or_default()
}

#[test]
fn tables_the_guide_includes_equal_their_results_files() {
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = line
                .strip_prefix("<!-- table: ")
                .and_then(|l| l.strip_suffix(" -->"))
            else {
                continue;
            };
            let (file, n) = name.split_once('#').expect("PATH#N");
            let source = std::fs::read_to_string(root().join(file))
                .unwrap_or_else(|e| panic!("{}: {file}: {e}", page.display()));
            let expected = nth_table(&source, n.parse().expect("a table number"));
            assert!(
                !expected.is_empty(),
                "{}: {file} has no table {n}",
                page.display()
            );
            let shown: Vec<&str> = lines[i + 1..]
                .iter()
                .skip_while(|l| l.is_empty())
                .take_while(|l| l.starts_with('|'))
                .copied()
                .collect();
            assert_eq!(
                shown,
                expected,
                "{}: the table after the marker for {name} differs from the file; run scripts/guide-tables",
                page.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "the guide includes its generated tables ({checked})"
    );
}
