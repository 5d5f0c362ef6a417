//! Reading check-in manifests (section 3 of fileformat.wiki): the frame is
//! checked once (Z card, card order), then each card goes to its own step,
//! which checks its arguments and how often it may appear.

use super::cluster::parse_cluster;
use super::text::{check_file_name, hash_arg, lines_before_z, looks_structural};
use super::types::{Artifact, FileCard, Manifest, Perm, TagCard, TagKind};
use crate::repo::encode::{defossilize, fossilize};
use crate::repo::error::ManifestError;
use crate::repo::hash::ArtifactHash;
use crate::repo::time;

/// Classifies `bytes` without ever failing: malformed structural artifacts are `Other`,
/// as Fossil treats them.
pub fn parse_artifact(bytes: &[u8]) -> Artifact {
    classify(bytes, true)
}

/// [`parse_artifact`] for content whose SHA3 name was just checked against
/// it (received and stored): a check-in's Z card is not hashed again, since
/// the text is the one its name stands for, checked where it was made.
/// What stays Fossil's rule: a Z card must be there.
pub fn parse_named_artifact(bytes: &[u8]) -> Artifact {
    classify(bytes, false)
}

fn classify(bytes: &[u8], verify_z: bool) -> Artifact {
    if !looks_structural(bytes) {
        return Artifact::Other;
    }
    if bytes.starts_with(b"M ") {
        return parse_cluster(bytes).map_or(Artifact::Other, Artifact::Cluster);
    }
    Manifest::parse_lines(bytes, verify_z)
        .map_or(Artifact::Other, |m| Artifact::Checkin(Box::new(m)))
}

impl Manifest {
    /// Parses a check-in manifest strictly (section 3 of the reference).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        Manifest::parse_lines(bytes, true)
    }

    fn parse_lines(bytes: &[u8], verify_z: bool) -> Result<Manifest, ManifestError> {
        if bytes.starts_with(b"-----BEGIN PGP") {
            return Err(ManifestError::BadCard {
                line: 1,
                what: "pgp-signed manifests are not supported",
            });
        }
        let mut parser = Parser::new();
        for (i, line) in lines_before_z(bytes, verify_z)?.iter().enumerate() {
            parser.card(i + 1, line)?;
        }
        parser.into_manifest()
    }
}

/// One card line: its number (from 1), its text and its arguments.
struct CardLine<'a> {
    no: usize,
    text: &'a str,
    args: Vec<&'a str>,
}

impl CardLine<'_> {
    fn bad(&self, what: &'static str) -> ManifestError {
        ManifestError::BadCard {
            line: self.no,
            what,
        }
    }
}

/// The arguments after a card letter: one space after the letter, single
/// spaces between arguments; `Err` names what is wrong.
fn card_args(text: &str) -> Result<Vec<&str>, &'static str> {
    match text.get(1..) {
        Some("") => Ok(Vec::new()),
        Some(rest) => {
            let rest = rest
                .strip_prefix(' ')
                .ok_or("card letter not followed by a space")?;
            let args: Vec<&str> = rest.split(' ').collect();
            if args.iter().any(|a| a.is_empty()) {
                return Err("empty argument or extra whitespace");
            }
            Ok(args)
        }
        None => Err("card letter is not ascii"),
    }
}

/// The manifest read so far, and what the order rules need to remember.
struct Parser {
    m: Manifest,
    seen_c: bool,
    seen_d: bool,
    seen_u: bool,
    seen_p: bool,
    /// The previous card's letter: letters never decrease.
    last: char,
}

impl Parser {
    fn new() -> Parser {
        Parser {
            m: Manifest::default(),
            seen_c: false,
            seen_d: false,
            seen_u: false,
            seen_p: false,
            last: 'A',
        }
    }

    /// Reads card line number `no`: checks the letter's order, splits the
    /// arguments and hands them to the card's step.
    fn card(&mut self, no: usize, text: &str) -> Result<(), ManifestError> {
        let bad = |what| ManifestError::BadCard { line: no, what };
        let card = text.chars().next().ok_or(bad("empty line"))?;
        if card < self.last {
            return Err(ManifestError::OutOfOrder { line: no, card });
        }
        self.last = card;
        let line = CardLine {
            no,
            text,
            args: card_args(text).map_err(bad)?,
        };
        match card {
            'B' => self.baseline(&line),
            'C' => self.comment(&line),
            'D' => self.date(&line),
            'F' => self.file(&line),
            'N' => self.mimetype(&line),
            'P' => self.parents(&line),
            'Q' => self.cherrypick(&line),
            'R' => self.repo_cksum(&line),
            'T' => self.tag(&line),
            'U' => self.user(&line),
            other => Err(ManifestError::UnexpectedCard {
                line: no,
                card: other,
            }),
        }
    }

    /// The manifest once every card is read: a D card is required.
    fn into_manifest(self) -> Result<Manifest, ManifestError> {
        if !self.seen_d {
            return Err(ManifestError::MissingCard { card: 'D' });
        }
        Ok(self.m)
    }

    fn baseline(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        if self.m.baseline.is_some() || l.args.len() != 1 {
            return Err(l.bad("B card must appear once with one hash"));
        }
        self.m.baseline = Some(hash_arg(l.args[0], l.no)?);
        Ok(())
    }

    fn comment(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        if self.seen_c || l.args.len() != 1 {
            return Err(l.bad("C card must appear once with one argument"));
        }
        self.seen_c = true;
        self.m.comment = defossilize(l.args[0]);
        Ok(())
    }

    fn date(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        if self.seen_d || l.args.len() != 1 || time::parse_date(l.args[0]).is_none() {
            return Err(l.bad("D card must appear once with a valid date"));
        }
        self.seen_d = true;
        self.m.date = l.args[0].to_owned();
        Ok(())
    }

    /// `F NAME [HASH [PERM [OLDNAME]]]`, strictly sorted by name.
    fn file(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        let args = &l.args;
        if args.is_empty() || args.len() > 4 {
            return Err(l.bad("F card takes 1 to 4 arguments"));
        }
        let name = defossilize(args[0]);
        check_file_name(&name).map_err(|_| l.bad("invalid file name"))?;
        if self
            .m
            .files
            .last()
            .is_some_and(|f| f.name.as_bytes() >= name.as_bytes())
        {
            return Err(l.bad("F cards not strictly sorted by name"));
        }
        let hash = args.get(1).map(|h| hash_arg(h, l.no)).transpose()?;
        let perm = match args.get(2).copied() {
            None | Some("w") => Perm::Regular,
            Some("x") => Perm::Executable,
            Some("l") => Perm::Symlink,
            Some(_) => return Err(l.bad("unknown F card permission")),
        };
        let oldname = args.get(3).map(|o| defossilize(o));
        if let Some(o) = &oldname {
            check_file_name(o).map_err(|_| l.bad("invalid old file name"))?;
        }
        self.m.files.push(FileCard {
            name,
            hash,
            perm,
            oldname,
        });
        Ok(())
    }

    fn mimetype(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        if self.m.mimetype.is_some() || l.args.len() != 1 {
            return Err(l.bad("N card must appear once with one argument"));
        }
        self.m.mimetype = Some(defossilize(l.args[0]));
        Ok(())
    }

    fn parents(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        if self.seen_p {
            return Err(l.bad("P card must appear once"));
        }
        self.seen_p = true;
        for a in &l.args {
            self.m.parents.push(hash_arg(a, l.no)?);
        }
        Ok(())
    }

    /// `Q (+|-)HASH [HASH]`, kept verbatim.
    fn cherrypick(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        let args = &l.args;
        let ok = matches!(args.len(), 1 | 2)
            && (args[0].starts_with('+') || args[0].starts_with('-'))
            && ArtifactHash::parse(&args[0][1..]).is_ok()
            && args.get(1).map_or(true, |b| ArtifactHash::parse(b).is_ok());
        if !ok {
            return Err(l.bad("malformed Q card"));
        }
        self.m.cherrypicks.push(l.text[2..].to_owned());
        Ok(())
    }

    fn repo_cksum(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        let args = &l.args;
        let ok = args.len() == 1
            && args[0].len() == 32
            && args[0].bytes().all(|b| b.is_ascii_hexdigit());
        if self.m.repo_cksum.is_some() || !ok {
            return Err(l.bad("R card must appear once with an md5"));
        }
        self.m.repo_cksum = Some(args[0].to_owned());
        Ok(())
    }

    /// `T (*|+|-)NAME * [VALUE]`, sorted by the encoded `(*|+|-)NAME`.
    fn tag(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        let args = &l.args;
        if !matches!(args.len(), 2 | 3) || args[1] != "*" {
            return Err(l.bad("check-in T card must be `T <tag> * [value]`"));
        }
        let (kind, raw) = match args[0].split_at(1) {
            ("*", r) => (TagKind::Propagating, r),
            ("+", r) => (TagKind::Singleton, r),
            ("-", r) => (TagKind::Cancel, r),
            _ => return Err(l.bad("tag name lacks a + * or - prefix")),
        };
        if raw.is_empty() || raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(l.bad("tag name is empty or all hex"));
        }
        if let Some(prev) = self.m.tags.last() {
            let prev_full = format!("{}{}", prev.kind.prefix(), fossilize(&prev.name));
            if prev_full.as_str() > args[0] {
                return Err(l.bad("T cards not sorted"));
            }
        }
        self.m.tags.push(TagCard {
            kind,
            name: defossilize(raw),
            value: args.get(2).map(|v| defossilize(v)),
        });
        Ok(())
    }

    fn user(&mut self, l: &CardLine<'_>) -> Result<(), ManifestError> {
        if self.seen_u || l.args.len() > 1 {
            return Err(l.bad("U card must appear once with at most one argument"));
        }
        self.seen_u = true;
        self.m.user = l.args.first().map(|u| defossilize(u)).unwrap_or_default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::manifest::text::finish;
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
        // Content already checked against its SHA3 name is not hashed again,
        // but a Z card must still be there.
        assert!(matches!(
            parse_named_artifact(bad.as_bytes()),
            Artifact::Checkin(_)
        ));
        let no_z = INITIAL.replace("Z df1fdbcd115363eee79f2aa84ffe78ac\n", "");
        assert_eq!(parse_named_artifact(no_z.as_bytes()), Artifact::Other);
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

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::parse(&bytes);
            let _ = parse_artifact(&bytes);
        }
    }
}
