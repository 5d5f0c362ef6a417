//! Writing check-in manifests: [`Manifest::to_bytes`] produces Fossil's exact
//! card text, so an artifact written here hashes as Fossil's own would.

use std::fmt::Write;

use super::text::finish;
use super::types::{FileCard, Manifest, Perm};
use crate::repo::encode::fossilize;

impl Manifest {
    /// Writes the manifest in Fossil's exact card format and order, with the
    /// Z card. F cards are sorted by name and T cards by their encoded text.
    pub fn to_bytes(&self) -> Vec<u8> {
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
        self.write_files(&mut t);
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
        self.write_tags(&mut t);
        if self.user.is_empty() {
            t.push_str("U\n");
        } else {
            let _ = writeln!(t, "U {}", fossilize(&self.user));
        }
        finish(t)
    }

    /// The F cards, sorted by name.
    fn write_files(&self, t: &mut String) {
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
    }

    /// The T cards, sorted by their encoded text.
    fn write_tags(&self, t: &mut String) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::hash::ArtifactHash;
    use crate::repo::manifest::check_file_name;
    use crate::repo::time;
    use proptest::prelude::*;

    fn name_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-z ]{1,6}", 1..4).prop_map(|segs| segs.join("/"))
    }

    proptest! {
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
