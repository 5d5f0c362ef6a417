//! Cluster artifacts: sorted `M <hash>` cards then `Z`, naming artifacts a
//! repository holds so a sync can announce many at once. Crosslinking a
//! cluster is in `crosslink/cluster.rs`.

use super::text::{checked_lines, finish, hash_arg};
use crate::repo::error::ManifestError;
use crate::repo::hash::ArtifactHash;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::manifest::{parse_artifact, Artifact};

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
}
