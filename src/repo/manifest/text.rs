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
