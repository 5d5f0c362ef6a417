//! Names shared by every process of one trial: the trial scope, the bucket,
//! stream and subject names built from it, the NATS header names that carry
//! W3C trace context, and the encoding of file paths into hold keys. The hub
//! and every leaf build these names here, so they always spell them the same.

use super::error::CoordError;

/// Header carrying the W3C `traceparent` on a tip broadcast.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Header carrying the W3C `tracestate` on a tip broadcast.
pub const TRACESTATE_HEADER: &str = "tracestate";
/// Prefix of every bucket and stream name this project creates.
pub const NAME_PREFIX: &str = "herd";

/// A trial's name prefix, restricted to `[A-Za-z0-9_-]` so that it is valid
/// inside bucket names, stream names and single subject tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    /// Sanitizes `raw`: every character outside `[A-Za-z0-9_-]` becomes `_`.
    /// An empty scope is rejected, since it would make names of two trials
    /// collide with the unscoped prefix.
    pub fn new(raw: &str) -> Result<Scope, CoordError> {
        if raw.is_empty() {
            return Err(CoordError::InvalidScope {
                scope: raw.to_string(),
            });
        }
        let clean = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Scope(clean))
    }

    /// The scope of the trial whose hub has `project_code`: its first 16
    /// characters. Hub and leaves both derive it this way, so they meet on
    /// the same buckets and stream without being told a name.
    pub fn for_project(project_code: &str) -> Result<Scope, CoordError> {
        let prefix: String = project_code.chars().take(16).collect();
        Scope::new(&prefix)
    }

    /// The sanitized scope.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key-value bucket holding task records: `herd_<scope>_tasks`.
    pub fn tasks_bucket(&self) -> String {
        format!("{NAME_PREFIX}_{}_tasks", self.0)
    }

    /// The key-value bucket holding file holds: `herd_<scope>_holds`.
    pub fn holds_bucket(&self) -> String {
        format!("{NAME_PREFIX}_{}_holds", self.0)
    }

    /// The stream carrying trunk tip broadcasts: `herd_<scope>_tips`.
    pub fn tips_stream(&self) -> String {
        format!("{NAME_PREFIX}_{}_tips", self.0)
    }

    /// The subject the hub publishes each new trunk tip on: `herd.<scope>.tip`.
    pub fn tip_subject(&self) -> String {
        format!("{NAME_PREFIX}.{}.tip", self.0)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `key` is usable as a key-value key. The server maps a key to a
/// subject, so besides the allowed characters `[-/_=.a-zA-Z0-9]` a key must
/// not start or end with `.` nor contain `..` (an empty subject token).
pub fn is_valid_kv_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'=' | b'.'))
}

/// The hold key of a normalized relative file path. Bytes in
/// `[A-Za-z0-9/_-]` are kept so keys stay readable in `nats kv ls`; every
/// other byte (including `.` and `=`) becomes `=XX` in upper-case hex. The
/// mapping is injective because `=` itself is always escaped, and the result
/// never contains `.`, so it never forms an empty subject token.
pub fn hold_key(path: &str) -> String {
    let mut key = String::with_capacity(path.len() + 8);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-') {
            key.push(char::from(b));
        } else {
            key.push('=');
            key.push_str(&format!("{b:02X}"));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_sanitized_and_names_follow_it() {
        let scope = Scope::new("t1.a b*").unwrap();
        assert_eq!(scope.as_str(), "t1_a_b_");
        assert_eq!(scope.tasks_bucket(), "herd_t1_a_b__tasks");
        assert_eq!(scope.holds_bucket(), "herd_t1_a_b__holds");
        assert_eq!(scope.tips_stream(), "herd_t1_a_b__tips");
        assert_eq!(scope.tip_subject(), "herd.t1_a_b_.tip");
    }

    #[test]
    fn empty_scope_is_rejected() {
        assert!(matches!(
            Scope::new(""),
            Err(CoordError::InvalidScope { .. })
        ));
    }

    #[test]
    fn hold_keys_are_valid_and_distinct() {
        let paths = [
            "slot-3/task-1/file-0.txt",
            "slot-3/task-1/file-0=2Etxt",
            "a..b",
            "ünï cödé.rs",
            "x=y",
        ];
        let keys: Vec<String> = paths.iter().map(|p| hold_key(p)).collect();
        for key in &keys {
            assert!(is_valid_kv_key(key), "invalid key {key}");
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        assert_eq!(keys[0], "slot-3/task-1/file-0=2Etxt");
    }

    #[test]
    fn kv_key_validity() {
        assert!(is_valid_kv_key("t-0123abcd"));
        assert!(is_valid_kv_key("a.b/c=d"));
        assert!(!is_valid_kv_key(""));
        assert!(!is_valid_kv_key(".a"));
        assert!(!is_valid_kv_key("a."));
        assert!(!is_valid_kv_key("a..b"));
        assert!(!is_valid_kv_key("a b"));
        assert!(!is_valid_kv_key("a*"));
    }
}
