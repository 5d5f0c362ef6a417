//! The text rules every structural artifact shares: the closing Z card (its
//! MD5 written and checked), hash arguments, and file names as Fossil accepts
//! them. Used by the manifest and cluster readers and writers alike.

use md5::{Digest, Md5};

use crate::repo::error::ManifestError;
use crate::repo::hash::ArtifactHash;

/// Cheap pre-check: every structural artifact ends with `\nZ <32 hex>\n`.
pub(super) fn looks_structural(bytes: &[u8]) -> bool {
    let n = bytes.len();
    n >= 36
        && bytes[n - 1] == b'\n'
        && bytes[n - 35..].starts_with(b"Z ")
        && (n == 35 || bytes[n - 36] == b'\n')
}

/// Appends the Z card.
pub(super) fn finish(mut text: String) -> Vec<u8> {
    let sum = hex::encode(Md5::digest(text.as_bytes()));
    text.push_str("Z ");
    text.push_str(&sum);
    text.push('\n');
    text.into_bytes()
}

/// Checks text, final newline and the Z card; returns the card lines before Z.
pub(super) fn checked_lines(bytes: &[u8]) -> Result<Vec<&str>, ManifestError> {
    lines_before_z(bytes, true)
}

/// As [`checked_lines`]; the Z card's MD5 is compared only when
/// `verify_z` (a caller that has just checked the artifact's SHA3 name
/// against its content knows the text is the one named, whose Z card was
/// checked where it was made).
pub(super) fn lines_before_z(bytes: &[u8], verify_z: bool) -> Result<Vec<&str>, ManifestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
    let body = text
        .strip_suffix('\n')
        .ok_or(ManifestError::NoFinalNewline)?;
    let (before, zline) = match body.rfind('\n') {
        Some(i) => (&text[..=i], &body[i + 1..]),
        None => ("", body),
    };
    let declared = zline.strip_prefix("Z ").ok_or(ManifestError::MissingZ)?;
    if !verify_z {
        return Ok(before.lines().collect());
    }
    let computed = hex::encode(Md5::digest(before.as_bytes()));
    if declared != computed {
        return Err(ManifestError::BadZ {
            declared: declared.chars().take(40).collect(),
            computed,
        });
    }
    Ok(before.lines().collect())
}

/// A card argument that must be an artifact name, on line `line`.
pub(super) fn hash_arg(s: &str, line: usize) -> Result<ArtifactHash, ManifestError> {
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
