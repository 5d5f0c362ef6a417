//! Check-in manifests and clusters as bytes: a strict parser and an exact
//! writer of Fossil's card format (www/fileformat.wiki, src/manifest.c).
//!
//! No I/O here: the repository reads and stores the bytes, this module only
//! turns them into [`Manifest`] values and back. Cards are one per line,
//! letters never decrease, F and T cards are sorted, and the last line is
//! `Z <md5 of everything before it>`.

use md5::{Digest, Md5};

use super::encode::{defossilize, fossilize};
use super::error::ManifestError;
use super::hash::ArtifactHash;
use super::time;

/// File permission of an F card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Perm {
    /// An ordinary file.
    #[default]
    Regular,
    /// An executable file (`x`).
    Executable,
    /// A symbolic link (`l`).
    Symlink,
}

impl Perm {
    /// The `mlink.mperm` value Fossil stores: 0, 1 (x) or 2 (l).
    pub fn mperm(self) -> i64 {
        match self {
            Perm::Regular => 0,
            Perm::Executable => 1,
            Perm::Symlink => 2,
        }
    }
}

/// One `F` card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCard {
    /// Decoded relative path.
    pub name: String,
    /// The file's artifact; `None` only in a delta manifest, meaning "deleted".
    pub hash: Option<ArtifactHash>,
    /// Permission.
    pub perm: Perm,
    /// Previous name when the file was renamed.
    pub oldname: Option<String>,
}

/// The prefix of a `T` card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagKind {
    /// `*`: propagates to descendants (tagtype 2).
    Propagating,
    /// `+`: applies to this check-in only (tagtype 1).
    Singleton,
    /// `-`: cancels a tag (tagtype 0).
    Cancel,
}

impl TagKind {
    fn prefix(self) -> char {
        match self {
            TagKind::Propagating => '*',
            TagKind::Singleton => '+',
            TagKind::Cancel => '-',
        }
    }

    /// The `tagxref.tagtype` Fossil stores.
    pub fn tagtype(self) -> i64 {
        match self {
            TagKind::Propagating => 2,
            TagKind::Singleton => 1,
            TagKind::Cancel => 0,
        }
    }
}

/// One `T` card of a check-in (target always `*`, the check-in itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCard {
    /// Prefix.
    pub kind: TagKind,
    /// Decoded tag name, e.g. `branch`, `sym-trunk`.
    pub name: String,
    /// Decoded value, if any.
    pub value: Option<String>,
}

/// A parsed check-in manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// `B`: the baseline of a delta manifest.
    pub baseline: Option<ArtifactHash>,
    /// `C`, decoded; written as `(no comment)` when empty.
    pub comment: String,
    /// `D`, as written (`YYYY-MM-DDTHH:MM:SS.SSS`).
    pub date: String,
    /// `F` cards, sorted by name.
    pub files: Vec<FileCard>,
    /// `N`: mimetype of the comment.
    pub mimetype: Option<String>,
    /// `P`: primary parent first, then merge parents.
    pub parents: Vec<ArtifactHash>,
    /// `Q` cards, kept verbatim (cherry-picks and backouts).
    pub cherrypicks: Vec<String>,
    /// `R`: MD5 over the full file list, if present.
    pub repo_cksum: Option<String>,
    /// `T` cards.
    pub tags: Vec<TagCard>,
    /// `U`, decoded; empty means anonymous.
    pub user: String,
}

/// What a blob is, structurally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// A check-in manifest.
    Checkin(Box<Manifest>),
    /// A cluster: the artifacts its `M` cards name.
    Cluster(Vec<ArtifactHash>),
    /// Anything else: file content, control artifacts, wiki, tickets.
    Other,
}

/// Classifies `bytes` without ever failing: malformed structural artifacts are `Other`,
/// as Fossil treats them.
pub fn parse_artifact(bytes: &[u8]) -> Artifact {
    if !looks_structural(bytes) {
        return Artifact::Other;
    }
    if bytes.starts_with(b"M ") {
        return parse_cluster(bytes).map_or(Artifact::Other, Artifact::Cluster);
    }
    Manifest::parse(bytes).map_or(Artifact::Other, |m| Artifact::Checkin(Box::new(m)))
}

/// Cheap pre-check: every structural artifact ends with `\nZ <32 hex>\n`.
fn looks_structural(bytes: &[u8]) -> bool {
    let n = bytes.len();
    n >= 36
        && bytes[n - 1] == b'\n'
        && bytes[n - 35..].starts_with(b"Z ")
        && (n == 35 || bytes[n - 36] == b'\n')
}

/// Parses a cluster artifact: sorted `M <hash>` cards then `Z`.
pub fn parse_cluster(bytes: &[u8]) -> Result<Vec<ArtifactHash>, ManifestError> {
    let lines = checked_lines(bytes)?;
    let mut out: Vec<ArtifactHash> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let lineno = i + 1;
        let rest = line
            .strip_prefix("M ")
            .ok_or(ManifestError::UnexpectedCard {
                line: lineno,
                card: line.chars().next().unwrap_or(' '),
            })?;
        let h = hash_arg(rest, lineno)?;
        if out.last().is_some_and(|prev| prev >= &h) {
            return Err(ManifestError::BadCard {
                line: lineno,
                what: "M cards not strictly sorted",
            });
        }
        out.push(h);
    }
    if out.is_empty() {
        return Err(ManifestError::MissingCard { card: 'M' });
    }
    Ok(out)
}

/// Writes a cluster artifact naming `hashes` (sorted and deduplicated here).
pub fn build_cluster(hashes: &[ArtifactHash]) -> Vec<u8> {
    let mut sorted: Vec<&ArtifactHash> = hashes.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut text = String::new();
    for h in sorted {
        text.push_str("M ");
        text.push_str(h.as_str());
        text.push('\n');
    }
    finish(text)
}

/// Appends the Z card.
fn finish(mut text: String) -> Vec<u8> {
    let sum = hex::encode(Md5::digest(text.as_bytes()));
    text.push_str("Z ");
    text.push_str(&sum);
    text.push('\n');
    text.into_bytes()
}

/// Checks text, final newline and the Z card; returns the card lines before Z.
fn checked_lines(bytes: &[u8]) -> Result<Vec<&str>, ManifestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
    let body = text
        .strip_suffix('\n')
        .ok_or(ManifestError::NoFinalNewline)?;
    let (before, zline) = match body.rfind('\n') {
        Some(i) => (&text[..=i], &body[i + 1..]),
        None => ("", body),
    };
    let declared = zline.strip_prefix("Z ").ok_or(ManifestError::MissingZ)?;
    let computed = hex::encode(Md5::digest(before.as_bytes()));
    if declared != computed {
        return Err(ManifestError::BadZ {
            declared: declared.chars().take(40).collect(),
            computed,
        });
    }
    Ok(before.lines().collect())
}

fn hash_arg(s: &str, line: usize) -> Result<ArtifactHash, ManifestError> {
    ArtifactHash::parse(s).map_err(|_| ManifestError::BadCard {
        line,
        what: "invalid artifact hash",
    })
}

/// Validates a decoded file name as Fossil does: relative, `/`-separated,
/// no empty, `.` or `..` segments, no backslash or control characters.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.starts_with('/') {
        return Err("absolute path");
    }
    if name.contains('\\') {
        return Err("backslash in path");
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("control character in path");
    }
    for seg in name.split('/') {
        match seg {
            "" => return Err("empty path segment"),
            "." | ".." => return Err("'.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

impl Manifest {
    /// Unix milliseconds of the `D` card.
    pub fn unix_ms(&self) -> Option<i64> {
        time::parse_date(&self.date)
    }

    /// Parses a check-in manifest strictly (section 3 of the reference).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.starts_with(b"-----BEGIN PGP") {
            return Err(ManifestError::BadCard {
                line: 1,
                what: "pgp-signed manifests are not supported",
            });
        }
        let lines = checked_lines(bytes)?;
        let mut m = Manifest::default();
        let (mut seen_c, mut seen_d, mut seen_u, mut seen_p) = (false, false, false, false);
        let mut last = 'A';
        for (i, line) in lines.iter().enumerate() {
            let lineno = i + 1;
            let bad = |what| ManifestError::BadCard { line: lineno, what };
            let mut chars = line.chars();
            let card = chars.next().ok_or(bad("empty line"))?;
            if card < last {
                return Err(ManifestError::OutOfOrder { line: lineno, card });
            }
            last = card;
            let args: Vec<&str> = match line.get(1..) {
                Some("") => Vec::new(),
                Some(rest) => {
                    let rest = rest
                        .strip_prefix(' ')
                        .ok_or(bad("card letter not followed by a space"))?;
                    let args: Vec<&str> = rest.split(' ').collect();
                    if args.iter().any(|a| a.is_empty()) {
                        return Err(bad("empty argument or extra whitespace"));
                    }
                    args
                }
                None => return Err(bad("card letter is not ascii")),
            };
            match card {
                'B' => {
                    if m.baseline.is_some() || args.len() != 1 {
                        return Err(bad("B card must appear once with one hash"));
                    }
                    m.baseline = Some(hash_arg(args[0], lineno)?);
                }
                'C' => {
                    if seen_c || args.len() != 1 {
                        return Err(bad("C card must appear once with one argument"));
                    }
                    seen_c = true;
                    m.comment = defossilize(args[0]);
                }
                'D' => {
                    if seen_d || args.len() != 1 || time::parse_date(args[0]).is_none() {
                        return Err(bad("D card must appear once with a valid date"));
                    }
                    seen_d = true;
                    m.date = args[0].to_owned();
                }
                'F' => {
                    if args.is_empty() || args.len() > 4 {
                        return Err(bad("F card takes 1 to 4 arguments"));
                    }
                    let name = defossilize(args[0]);
                    check_file_name(&name).map_err(|_| bad("invalid file name"))?;
                    if m.files
                        .last()
                        .is_some_and(|f| f.name.as_bytes() >= name.as_bytes())
                    {
                        return Err(bad("F cards not strictly sorted by name"));
                    }
                    let hash = args.get(1).map(|h| hash_arg(h, lineno)).transpose()?;
                    let perm = match args.get(2).copied() {
                        None | Some("w") => Perm::Regular,
                        Some("x") => Perm::Executable,
                        Some("l") => Perm::Symlink,
                        Some(_) => return Err(bad("unknown F card permission")),
                    };
                    let oldname = args.get(3).map(|o| defossilize(o));
                    if let Some(o) = &oldname {
                        check_file_name(o).map_err(|_| bad("invalid old file name"))?;
                    }
                    m.files.push(FileCard {
                        name,
                        hash,
                        perm,
                        oldname,
                    });
                }
                'N' => {
                    if m.mimetype.is_some() || args.len() != 1 {
                        return Err(bad("N card must appear once with one argument"));
                    }
                    m.mimetype = Some(defossilize(args[0]));
                }
                'P' => {
                    if seen_p {
                        return Err(bad("P card must appear once"));
                    }
                    seen_p = true;
                    for a in &args {
                        m.parents.push(hash_arg(a, lineno)?);
                    }
                }
                'Q' => {
                    let ok = matches!(args.len(), 1 | 2)
                        && (args[0].starts_with('+') || args[0].starts_with('-'))
                        && ArtifactHash::parse(&args[0][1..]).is_ok()
                        && args.get(1).map_or(true, |b| ArtifactHash::parse(b).is_ok());
                    if !ok {
                        return Err(bad("malformed Q card"));
                    }
                    m.cherrypicks.push(line[2..].to_owned());
                }
                'R' => {
                    let ok = args.len() == 1
                        && args[0].len() == 32
                        && args[0].bytes().all(|b| b.is_ascii_hexdigit());
                    if m.repo_cksum.is_some() || !ok {
                        return Err(bad("R card must appear once with an md5"));
                    }
                    m.repo_cksum = Some(args[0].to_owned());
                }
                'T' => {
                    if !matches!(args.len(), 2 | 3) || args[1] != "*" {
                        return Err(bad("check-in T card must be `T <tag> * [value]`"));
                    }
                    let (kind, raw) = match args[0].split_at(1) {
                        ("*", r) => (TagKind::Propagating, r),
                        ("+", r) => (TagKind::Singleton, r),
                        ("-", r) => (TagKind::Cancel, r),
                        _ => return Err(bad("tag name lacks a + * or - prefix")),
                    };
                    if raw.is_empty() || raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad("tag name is empty or all hex"));
                    }
                    if let Some(prev) = m.tags.last() {
                        let prev_full = format!("{}{}", prev.kind.prefix(), fossilize(&prev.name));
                        if prev_full.as_str() > args[0] {
                            return Err(bad("T cards not sorted"));
                        }
                    }
                    m.tags.push(TagCard {
                        kind,
                        name: defossilize(raw),
                        value: args.get(2).map(|v| defossilize(v)),
                    });
                }
                'U' => {
                    if seen_u || args.len() > 1 {
                        return Err(bad("U card must appear once with at most one argument"));
                    }
                    seen_u = true;
                    m.user = args.first().map(|u| defossilize(u)).unwrap_or_default();
                }
                other => {
                    return Err(ManifestError::UnexpectedCard {
                        line: lineno,
                        card: other,
                    })
                }
            }
        }
        if !seen_d {
            return Err(ManifestError::MissingCard { card: 'D' });
        }
        Ok(m)
    }

    /// Writes the manifest in Fossil's exact card format and order, with the
    /// Z card. F cards are sorted by name and T cards by their encoded text.
    pub fn to_bytes(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut t = String::with_capacity(256 + self.files.len() * 100);
        if let Some(b) = &self.baseline {
            let _ = writeln!(t, "B {b}");
        }
        let comment = if self.comment.is_empty() {
            "(no comment)"
        } else {
            &self.comment
        };
        let _ = writeln!(t, "C {}", fossilize(comment));
        let _ = writeln!(t, "D {}", self.date);
        let mut files: Vec<&FileCard> = self.files.iter().collect();
        files.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for f in files {
            t.push_str("F ");
            t.push_str(&fossilize(&f.name));
            if let Some(h) = &f.hash {
                t.push(' ');
                t.push_str(h.as_str());
                match (f.perm, &f.oldname) {
                    (Perm::Executable, _) => t.push_str(" x"),
                    (Perm::Symlink, _) => t.push_str(" l"),
                    (Perm::Regular, Some(_)) => t.push_str(" w"),
                    (Perm::Regular, None) => {}
                }
                if let Some(o) = &f.oldname {
                    t.push(' ');
                    t.push_str(&fossilize(o));
                }
            }
            t.push('\n');
        }
        if let Some(n) = &self.mimetype {
            let _ = writeln!(t, "N {}", fossilize(n));
        }
        if !self.parents.is_empty() {
            t.push('P');
            for p in &self.parents {
                t.push(' ');
                t.push_str(p.as_str());
            }
            t.push('\n');
        }
        for q in &self.cherrypicks {
            let _ = writeln!(t, "Q {q}");
        }
        if let Some(r) = &self.repo_cksum {
            let _ = writeln!(t, "R {r}");
        }
        let mut tags: Vec<String> = self
            .tags
            .iter()
            .map(|tag| {
                let mut s = format!("{}{} *", tag.kind.prefix(), fossilize(&tag.name));
                if let Some(v) = &tag.value {
                    s.push(' ');
                    s.push_str(&fossilize(v));
                }
                s
            })
            .collect();
        tags.sort();
        for tag in tags {
            let _ = writeln!(t, "T {tag}");
        }
        if self.user.is_empty() {
            t.push_str("U\n");
        } else {
            let _ = writeln!(t, "U {}", fossilize(&self.user));
        }
        finish(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INITIAL: &str = "C initial\\sempty\\scheck-in\nD 2026-11-27T04:31:53.311\nR d41d8cd98f00b204e9800998ecf8427e\nT *branch * trunk\nT *sym-trunk *\nU admin\nZ df1fdbcd115363eee79f2aa84ffe78ac\n";

    #[test]
    fn parses_and_rewrites_fossils_initial_checkin() {
        let m = Manifest::parse(INITIAL.as_bytes()).expect("fossil's own manifest parses");
        assert_eq!(m.comment, "initial empty check-in");
        assert_eq!(m.user, "admin");
        assert_eq!(m.tags.len(), 2);
        assert_eq!(m.tags[0].value.as_deref(), Some("trunk"));
        assert_eq!(m.to_bytes(), INITIAL.as_bytes());
        assert!(matches!(
            parse_artifact(INITIAL.as_bytes()),
            Artifact::Checkin(_)
        ));
    }

    #[test]
    fn rejects_a_bad_z_card() {
        let bad = INITIAL.replace("df1fdbcd", "df1fdbce");
        assert!(matches!(
            Manifest::parse(bad.as_bytes()),
            Err(ManifestError::BadZ { .. })
        ));
        assert_eq!(parse_artifact(bad.as_bytes()), Artifact::Other);
    }

    #[test]
    fn rejects_out_of_order_cards() {
        let text = "D 2026-11-27T04:31:53.311\nC x\n";
        let bytes = finish(text.to_owned());
        assert!(matches!(
            Manifest::parse(&bytes),
            Err(ManifestError::OutOfOrder { line: 2, card: 'C' })
        ));
    }

    #[test]
    fn clusters_round_trip() {
        let hs = vec![ArtifactHash::sha3_of(b"b"), ArtifactHash::sha3_of(b"a")];
        let bytes = build_cluster(&hs);
        let Artifact::Cluster(got) = parse_artifact(&bytes) else {
            panic!("not a cluster")
        };
        let mut want = hs.clone();
        want.sort();
        assert_eq!(got, want);
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-z ]{1,6}", 1..4).prop_map(|segs| segs.join("/"))
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::parse(&bytes);
            let _ = parse_artifact(&bytes);
        }

        #[test]
        fn build_then_parse_is_identity(
            comment in "[ -~\n\t\\\\]{1,40}",
            user in "[a-z \\\\]{1,10}",
            names in proptest::collection::btree_set(name_strategy(), 0..8),
            delta in any::<bool>(),
            ms in 0i64..4_000_000_000_000,
        ) {
            let files = names.iter().enumerate().map(|(i, n)| FileCard {
                name: n.clone(),
                hash: if delta && i % 3 == 0 { None } else { Some(ArtifactHash::sha3_of(n.as_bytes())) },
                perm: if i % 4 == 1 { Perm::Executable } else { Perm::Regular },
                oldname: None,
            }).collect();
            let m = Manifest {
                baseline: delta.then(|| ArtifactHash::sha3_of(b"base")),
                comment,
                date: time::format_date(ms),
                files,
                parents: vec![ArtifactHash::sha1_of(b"p")],
                repo_cksum: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                user,
                ..Manifest::default()
            };
            prop_assume!(m.files.iter().all(|f| check_file_name(&f.name).is_ok()));
            let bytes = m.to_bytes();
            let back = Manifest::parse(&bytes).expect("own output parses");
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.to_bytes(), bytes);
        }
    }
}
