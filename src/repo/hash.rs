//! Artifact names (SHA1 or SHA3-256 lowercase hex) and blob row ids.

use std::fmt;

use sha1::Digest;

use super::error::RepoError;

/// A validated artifact name: 40 (SHA1) or 64 (SHA3-256) lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactHash(String);

impl ArtifactHash {
    /// Validates `text` as a full artifact name.
    pub fn parse(text: &str) -> Result<Self, RepoError> {
        let ok = matches!(text.len(), 40 | 64)
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(RepoError::InvalidHash {
                text: text.chars().take(80).collect(),
            })
        }
    }

    /// The SHA3-256 name of `content` (Fossil's default policy).
    pub fn sha3_of(content: &[u8]) -> Self {
        Self(hex::encode(sha3::Sha3_256::digest(content)))
    }

    /// The SHA1 name of `content`.
    pub fn sha1_of(content: &[u8]) -> Self {
        Self(hex::encode(sha1::Sha1::digest(content)))
    }

    /// Whether `content` hashes to this name, with the algorithm its length implies.
    pub fn matches(&self, content: &[u8]) -> bool {
        self.same_kind_of(content) == *self
    }

    /// The name `content` would have under this name's algorithm.
    pub fn same_kind_of(&self, content: &[u8]) -> Self {
        if self.0.len() == 40 {
            Self::sha1_of(content)
        } else {
            Self::sha3_of(content)
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row id of the `blob` table, local to one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rid(pub i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_length_and_case() {
        assert!(ArtifactHash::parse(&"a".repeat(40)).is_ok());
        assert!(ArtifactHash::parse(&"0".repeat(64)).is_ok());
        assert!(ArtifactHash::parse(&"A".repeat(40)).is_err());
        assert!(ArtifactHash::parse(&"a".repeat(41)).is_err());
        assert!(ArtifactHash::parse("g").is_err());
    }

    #[test]
    fn matches_picks_the_algorithm_by_length() {
        let data = b"hello";
        assert!(ArtifactHash::sha1_of(data).matches(data));
        assert!(ArtifactHash::sha3_of(data).matches(data));
        assert!(!ArtifactHash::sha3_of(data).matches(b"hellO"));
        assert_eq!(
            ArtifactHash::sha1_of(b"").as_str(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }
}
