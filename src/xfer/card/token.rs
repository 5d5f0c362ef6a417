//! Tokens as Fossil's reader takes them: split on its whitespace, with
//! artifact names, decimal integers and free text read out of them.

/// Fossil's whitespace (fossil_isspace), which includes vertical tab.
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A token as text, invalid UTF-8 replaced.
pub(super) fn text(token: &[u8]) -> String {
    String::from_utf8_lossy(token).into_owned()
}

/// A full artifact name: 40 or 64 hex digits, returned in lowercase.
pub(super) fn hash(token: &[u8]) -> Option<String> {
    if (token.len() == 40 || token.len() == 64) && token.iter().all(u8::is_ascii_hexdigit) {
        Some(text(token).to_ascii_lowercase())
    } else {
        None
    }
}

/// A decimal integer as Fossil's blob_is_int accepts it (digits only).
pub(super) fn int(token: &[u8]) -> Option<u64> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}
