//! Artifact names (SHA1 or SHA3-256 lowercase hex) and blob row ids.

use std::fmt;

use sha1::Digest;

use super::error::RepoError;

/// A validated artifact name: 40 (SHA1) or 64 (SHA3-256) lowercase hex digits.
///
/// Kept inline (the hex text and its length, no heap): a hub holds one per
/// file of the tree in each file list it keeps, and copies them with every
/// view of a manifest, so a `String` here was a third of a large list's
/// memory and an allocation per copy. Ordered as the text is: the unused
/// tail of a SHA1 name is zeros, which sort before any digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactHash {
    hex: [u8; 64],
    len: u8,
}

impl ArtifactHash {
    /// Validates `text` as a full artifact name.
    pub fn parse(text: &str) -> Result<Self, RepoError> {
        let ok = matches!(text.len(), 40 | 64)
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self::from_ascii_hex(text.as_bytes()))
        } else {
            Err(RepoError::InvalidHash {
                text: text.chars().take(80).collect(),
            })
        }
    }

    /// The SHA3-256 name of `content` (Fossil's default policy).
    pub fn sha3_of(content: &[u8]) -> Self {
        Self::of_digest(&sha3::Sha3_256::digest(content))
    }

    /// The SHA1 name of `content`.
    pub fn sha1_of(content: &[u8]) -> Self {
        Self::of_digest(&sha1::Sha1::digest(content))
    }

    /// Whether `content` hashes to this name, with the algorithm its length implies.
    pub fn matches(&self, content: &[u8]) -> bool {
        self.same_kind_of(content) == *self
    }

    /// The name `content` would have under this name's algorithm.
    pub fn same_kind_of(&self, content: &[u8]) -> Self {
        if self.len == 40 {
            Self::sha1_of(content)
        } else {
            Self::sha3_of(content)
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored (`parse` checks them,
        // `of_digest` writes them), so this never fails.
        std::str::from_utf8(&self.hex[..usize::from(self.len)]).unwrap_or_default()
    }

    /// From text already known to be 40 or 64 lowercase hex digits.
    fn from_ascii_hex(text: &[u8]) -> Self {
        let mut hex = [0u8; 64];
        hex[..text.len()].copy_from_slice(text);
        Self {
            hex,
            len: text.len() as u8,
        }
    }

    /// The name of a 20- or 32-byte digest.
    fn of_digest(digest: &[u8]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (i, b) in digest.iter().take(32).enumerate() {
            hex[2 * i] = DIGITS[usize::from(b >> 4)];
            hex[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        Self {
            hex,
            len: (2 * digest.len().min(32)) as u8,
        }
    }
}

impl fmt::Display for ArtifactHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ArtifactHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArtifactHash").field(&self.as_str()).finish()
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
