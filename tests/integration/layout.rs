//! The house rules of the source tree, checked: no file in src/ or bin/
//! longer than 500 lines before its tests, no function longer than 120
//! lines. A file that outgrows the first becomes a folder; a function that
//! outgrows the second is cut into named steps.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 120;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a file before its `#[cfg(test)]` module.
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .count()
}

/// Every function of `text` (rustfmt's layout: the body ends at the first
/// `}` line indented as the `fn` line) with its length in lines.
fn functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let signature = [
            "pub ",
            "pub(crate) ",
            "pub(super) ",
            "async ",
            "const ",
            "unsafe ",
        ]
        .iter()
        .fold(body, |rest, prefix| {
            rest.strip_prefix(prefix).unwrap_or(rest)
        });
        let Some(name) = signature.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let name = name.split(['(', '<']).next().unwrap_or(name).to_string();
            found.push((name, end + 2));
        }
    }
    found
}

#[test]
fn files_and_functions_stay_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("bin"), &mut files);
    assert!(files.len() > 50, "the source tree is found: {files:?}");
    let mut over = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let shown = file.strip_prefix(root).unwrap_or(file).display();
        let n = code_lines(&text);
        if n > MAX_FILE_LINES {
            over.push(format!("{shown}: {n} lines before its tests"));
        }
        for (name, n) in functions(&text) {
            if n > MAX_FN_LINES {
                over.push(format!("{shown}: fn {name} is {n} lines"));
            }
        }
    }
    assert!(over.is_empty(), "over the limits:\n{}", over.join("\n"));
}

#[test]
fn the_counters_see_what_they_count() {
    let text = "fn a() {\n    x;\n}\n\nimpl T {\n    pub(super) async fn b<T>(\n        y: u8,\n    ) {\n        z;\n    }\n    fn c();\n}\n#[cfg(test)]\nmod tests {}\n";
    assert_eq!(code_lines(text), 12);
    assert_eq!(
        functions(text),
        vec![("a".to_string(), 3), ("b".to_string(), 5)]
    );
}
