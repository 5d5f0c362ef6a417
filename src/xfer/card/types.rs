//! The values of the codec: the [`Card`]s of a sync message, the `clone`
//! card's arguments, and the size [`Limits`] a parse runs under.

/// Size bounds applied while parsing, so a card declaring 4 GB is refused
/// before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload one card may declare (also bounds a `cfile`'s full size).
    pub max_payload: u64,
    /// Largest total of all payloads in one message, and largest inflated body.
    pub max_total: u64,
}

impl Default for Limits {
    /// 64 MiB per artifact and 512 MiB per message: far above what herd's
    /// agents write, far below what would hurt the hub.
    fn default() -> Self {
        Limits {
            max_payload: 64 << 20,
            max_total: 512 << 20,
        }
    }
}

/// The `clone` card's arguments for protocol version 2 and later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneFrom {
    /// Protocol version: 3 asks for `cfile` cards, 2 for `file` cards; below
    /// 2 the server treats the request as a legacy clone.
    pub version: u32,
    /// The first blob rid to send (1 on the first round).
    pub seqno: u64,
}

/// One card of a sync message. Hashes are validated lowercase hex of 40
/// (SHA1) or 64 (SHA3-256) characters; free text is decoded from Fossil's
/// escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Card {
    /// `login USER NONCE SIG`: see `login.rs`.
    Login {
        /// The login name.
        user: String,
        /// SHA1 hex of every byte after this card's line.
        nonce: String,
        /// SHA1 hex of the nonce followed by the user's secret.
        signature: String,
    },
    /// `push SERVERCODE PROJECTCODE`: the sender wants to push (client) or,
    /// during a clone, tells the new repository its codes (server).
    Push {
        /// The sender's server code (ignored by servers).
        server_code: String,
        /// The project code, 40 hex.
        project_code: String,
    },
    /// `pull SERVERCODE PROJECTCODE`: the client wants to pull.
    Pull {
        /// The sender's server code (ignored by servers).
        server_code: String,
        /// The project code, 40 hex.
        project_code: String,
    },
    /// `clone` (legacy) or `clone VERSION SEQNO`.
    Clone(Option<CloneFrom>),
    /// `clone_seqno N`: the next rid to ask for, 0 when the clone is complete.
    CloneSeqno(u64),
    /// `igot HASH [1]`: the sender holds the artifact (`1`: it is private).
    Igot {
        /// The artifact.
        hash: String,
        /// The private flag.
        private: bool,
    },
    /// `gimme HASH`: send me this artifact.
    Gimme(String),
    /// `file HASH [SRC] SIZE` + SIZE raw bytes: the full artifact, or a delta
    /// against SRC.
    File {
        /// The artifact.
        hash: String,
        /// The delta source, when the payload is a delta.
        delta_source: Option<String>,
        /// The artifact or delta bytes.
        payload: Vec<u8>,
    },
    /// `cfile HASH [SRC] USIZE CSIZE` + CSIZE bytes: a blob as stored
    /// (4-byte length + zlib), of the artifact or of a delta against SRC.
    Cfile {
        /// The artifact.
        hash: String,
        /// The delta source, when the stored blob is a delta.
        delta_source: Option<String>,
        /// The full artifact's size (also for a delta).
        full_size: u64,
        /// The stored blob bytes.
        payload: Vec<u8>,
    },
    /// `cookie TEXT`: echoed back by clients, ignored by 2.21 servers.
    Cookie(String),
    /// `pragma NAME ARGS...`: extensions; unknown ones are ignored by Fossil,
    /// which is what carries herd's fast path.
    Pragma {
        /// The pragma's name.
        name: String,
        /// Its arguments, one token each.
        args: Vec<String>,
    },
    /// `message TEXT`: shown to the user.
    Message(String),
    /// `error TEXT`: the session failed.
    Error(String),
    /// `reqconfig NAME`: ask for a configuration group such as `/project`.
    Reqconfig(String),
    /// `config NAME SIZE` + SIZE bytes + `\n`.
    Config {
        /// The group name.
        name: String,
        /// The SQL-quoted row.
        payload: Vec<u8>,
    },
    /// A `#` line; the text after the `#`, without the newline.
    Comment(String),
    /// `private`: the next file is private.
    Private,
    /// A line Fossil would not recognise, without its newline.
    Unknown(Vec<u8>),
}

impl Card {
    /// A `# text` comment card.
    pub fn comment(text: &str) -> Card {
        Card::Comment(format!(" {text}"))
    }

    /// A `pragma` card from string slices.
    pub fn pragma(name: &str, args: &[&str]) -> Card {
        Card::Pragma {
            name: name.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }
}
