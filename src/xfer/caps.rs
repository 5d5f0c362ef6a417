//! Fossil user capabilities as the sync server needs them (reference 5.3):
//! `g` clone, `o` read, `i` write (implies read), `s`/`a` everything.

/// A session's capability letters, the union of nobody's and the logged-in
/// user's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps(String);

impl Caps {
    /// Capabilities from a `user.cap` string.
    pub fn new(letters: &str) -> Caps {
        Caps(letters.to_string())
    }

    /// Adds another user's letters.
    pub fn add(&mut self, letters: &str) {
        self.0.push_str(letters);
    }

    fn has(&self, c: char) -> bool {
        self.0.contains(c) || self.0.contains('s') || self.0.contains('a')
    }

    /// May clone (`g`).
    pub fn may_clone(&self) -> bool {
        self.has('g')
    }

    /// May pull (`o`, or `i` which implies it).
    pub fn may_read(&self) -> bool {
        self.has('o') || self.has('i')
    }

    /// May push (`i`).
    pub fn may_write(&self) -> bool {
        self.has('i')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_grant_what_fossil_grants() {
        let c = Caps::new("go");
        assert!(c.may_clone() && c.may_read() && !c.may_write());
        let c = Caps::new("i");
        assert!(!c.may_clone() && c.may_read() && c.may_write());
        let c = Caps::new("s");
        assert!(c.may_clone() && c.may_read() && c.may_write());
        assert!(!Caps::new("hmnc").may_read());
    }
}
