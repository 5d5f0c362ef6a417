//! Fossil's string escaping for card arguments ("fossilize", src/encode.c).
//!
//! Space, backslash and the control characters that would break a card are
//! written as two-byte escapes; decoding maps `\X` back, and an unknown `\X`
//! to plain `X`, as Fossil does.

/// Escapes `s` for use as one card argument.
pub fn fossilize(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' => out.push_str("\\s"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`fossilize`]. Never fails: an unknown escape `\X` decodes to `X`
/// and a lone trailing backslash is kept.
pub fn defossilize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('v') => out.push('\u{b}'),
            Some('f') => out.push('\u{c}'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_fossils_observed_escaping() {
        let comment = "a real\ncommit with \\ and tab\tx";
        assert_eq!(
            fossilize(comment),
            "a\\sreal\\ncommit\\swith\\s\\\\\\sand\\stab\\tx"
        );
    }

    proptest! {
        #[test]
        fn round_trips(s in any::<String>()) {
            let enc = fossilize(&s);
            prop_assert!(!enc.contains(' ') && !enc.contains('\n'));
            prop_assert_eq!(defossilize(&enc), s);
        }
    }
}
