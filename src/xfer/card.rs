//! The card codec of Fossil's sync protocol (www/sync.wiki, src/xfer.c): one
//! message is a list of newline-terminated cards, some followed by a raw
//! payload. This file turns bytes into [`Card`]s and back, with no I/O and no
//! repository; HTTP framing is in `frame.rs`, meaning is in `server.rs` and
//! `client.rs`.
//!
//! Parsing follows Fossil's reader: blank lines are skipped, a line starting
//! `#` is a comment (kept, because the client's trailing random comment is
//! part of the login nonce), tokens are split on ASCII whitespace, and a card
//! Fossil would not recognise (wrong name or wrong arguments) is kept as
//! [`Card::Unknown`] so the server can answer `error bad\scommand`. Only a
//! payload card whose header is unreadable, or whose payload is cut short or
//! over the [`Limits`], is an error: after it the stream cannot be resynced.

use super::error::CodecError;
use crate::repo::encode::{defossilize, fossilize};

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

    /// Appends this card's wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let mut line = |s: std::fmt::Arguments| {
            let _ = out.write_fmt(s);
        };
        match self {
            Card::Login {
                user,
                nonce,
                signature,
            } => line(format_args!(
                "login {} {nonce} {signature}\n",
                fossilize(user)
            )),
            Card::Push {
                server_code,
                project_code,
            } => line(format_args!("push {server_code} {project_code}\n")),
            Card::Pull {
                server_code,
                project_code,
            } => line(format_args!("pull {server_code} {project_code}\n")),
            Card::Clone(None) => line(format_args!("clone\n")),
            Card::Clone(Some(from)) => {
                line(format_args!("clone {} {}\n", from.version, from.seqno))
            }
            Card::CloneSeqno(n) => line(format_args!("clone_seqno {n}\n")),
            Card::Igot {
                hash,
                private: false,
            } => line(format_args!("igot {hash}\n")),
            Card::Igot {
                hash,
                private: true,
            } => line(format_args!("igot {hash} 1\n")),
            Card::Gimme(hash) => line(format_args!("gimme {hash}\n")),
            Card::File {
                hash,
                delta_source,
                payload,
            } => {
                match delta_source {
                    Some(src) => line(format_args!("file {hash} {src} {}\n", payload.len())),
                    None => line(format_args!("file {hash} {}\n", payload.len())),
                }
                out.extend_from_slice(payload);
            }
            Card::Cfile {
                hash,
                delta_source,
                full_size,
                payload,
            } => {
                match delta_source {
                    Some(src) => line(format_args!(
                        "cfile {hash} {src} {full_size} {}\n",
                        payload.len()
                    )),
                    None => line(format_args!("cfile {hash} {full_size} {}\n", payload.len())),
                }
                out.extend_from_slice(payload);
                // Fossil's sender ends a cfile with a newline (sync.wiki).
                if payload.last() != Some(&b'\n') {
                    out.push(b'\n');
                }
            }
            Card::Cookie(text) => line(format_args!("cookie {text}\n")),
            Card::Pragma { name, args } => {
                line(format_args!("pragma {name}"));
                for arg in args {
                    line(format_args!(" {arg}"));
                }
                line(format_args!("\n"));
            }
            Card::Message(text) => line(format_args!("message {}\n", fossilize(text))),
            Card::Error(text) => line(format_args!("error {}\n", fossilize(text))),
            Card::Reqconfig(name) => line(format_args!("reqconfig {name}\n")),
            Card::Config { name, payload } => {
                line(format_args!("config {name} {}\n", payload.len()));
                out.extend_from_slice(payload);
                out.push(b'\n');
            }
            Card::Comment(text) => line(format_args!("#{text}\n")),
            Card::Private => line(format_args!("private\n")),
            Card::Unknown(raw) => {
                out.extend_from_slice(raw);
                out.push(b'\n');
            }
        }
    }
}

/// Encodes cards into one message.
pub fn encode(cards: &[Card]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cards.len() * 48);
    for card in cards {
        card.write_to(&mut out);
    }
    out
}

/// A parsed card and the byte range it took in the message (its line, its
/// payload and any newline after the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    /// The card.
    pub card: Card,
    /// Offset of the card's first byte.
    pub start: usize,
    /// Offset just past the card.
    pub end: usize,
}

/// Parses a message with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Vec<Card>, CodecError> {
    parse_with(input, &Limits::default())
}

/// Parses a message under `limits`.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Vec<Card>, CodecError> {
    Ok(parse_spanned(input, limits)?
        .into_iter()
        .map(|s| s.card)
        .collect())
}

/// Parses a message under `limits`, keeping each card's byte range (the
/// server needs the end of the `login` card to check its nonce).
pub fn parse_spanned(input: &[u8], limits: &Limits) -> Result<Vec<Spanned>, CodecError> {
    let mut cards = Vec::new();
    let mut pos = 0;
    let mut total: u64 = 0;
    while pos < input.len() {
        let start = pos;
        let (line, next) = match input[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (&input[pos..pos + i], pos + i + 1),
            // Fossil's reader takes a last line without its newline.
            None => (&input[pos..], input.len()),
        };
        pos = next;
        if line.first() == Some(&b'#') {
            let text = String::from_utf8_lossy(&line[1..]).into_owned();
            cards.push(Spanned {
                card: Card::Comment(text),
                start,
                end: pos,
            });
            continue;
        }
        let tokens: Vec<&[u8]> = line
            .split(|&b| is_space(b))
            .filter(|t| !t.is_empty())
            .collect();
        let Some(&name) = tokens.first() else {
            continue;
        };
        let card = match name {
            b"file" | b"cfile" | b"config" => {
                let (card, after) =
                    parse_payload_card(input, start, line, &tokens, pos, limits, &mut total)?;
                pos = after;
                card
            }
            _ => parse_line_card(&tokens).unwrap_or_else(|| Card::Unknown(line.to_vec())),
        };
        cards.push(Spanned {
            card,
            start,
            end: pos,
        });
    }
    Ok(cards)
}

/// Fossil's whitespace (fossil_isspace), which includes vertical tab.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn text(token: &[u8]) -> String {
    String::from_utf8_lossy(token).into_owned()
}

/// A full artifact name: 40 or 64 hex digits, returned in lowercase.
fn hash(token: &[u8]) -> Option<String> {
    if (token.len() == 40 || token.len() == 64) && token.iter().all(u8::is_ascii_hexdigit) {
        Some(text(token).to_ascii_lowercase())
    } else {
        None
    }
}

/// A decimal integer as Fossil's blob_is_int accepts it (digits only).
fn int(token: &[u8]) -> Option<u64> {
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// A card without payload, or `None` when Fossil would call it a bad command.
fn parse_line_card(tokens: &[&[u8]]) -> Option<Card> {
    let card = match tokens {
        [b"login", user, nonce, sig] => Card::Login {
            user: defossilize(&text(user)),
            nonce: text(nonce),
            signature: text(sig),
        },
        [b"push", sc, pc] => Card::Push {
            server_code: text(sc),
            project_code: hash(pc)?,
        },
        [b"pull", sc, pc] => Card::Pull {
            server_code: text(sc),
            project_code: hash(pc)?,
        },
        [b"clone", version, seqno] => match (int(version), int(seqno)) {
            (Some(v), Some(seqno)) => Card::Clone(Some(CloneFrom {
                version: u32::try_from(v).ok()?,
                seqno,
            })),
            // Fossil serves these as a legacy clone.
            _ => Card::Clone(None),
        },
        [b"clone"] | [b"clone", _] => Card::Clone(None),
        [b"clone_seqno", n] => Card::CloneSeqno(int(n)?),
        [b"igot", h] => Card::Igot {
            hash: hash(h)?,
            private: false,
        },
        [b"igot", h, flag] => Card::Igot {
            hash: hash(h)?,
            private: *flag == b"1",
        },
        [b"gimme", h] => Card::Gimme(hash(h)?),
        [b"cookie", value] => Card::Cookie(text(value)),
        [b"pragma", name, args @ ..] => Card::Pragma {
            name: text(name),
            args: args.iter().map(|a| text(a)).collect(),
        },
        [b"message"] => Card::Message(String::new()),
        [b"message", msg] => Card::Message(defossilize(&text(msg))),
        [b"error"] => Card::Error(String::new()),
        [b"error", msg] => Card::Error(defossilize(&text(msg))),
        [b"reqconfig", name] => Card::Reqconfig(text(name)),
        [b"private"] => Card::Private,
        _ => return None,
    };
    Some(card)
}

/// A `file`, `cfile` or `config` card: reads the header, checks the declared
/// sizes against the limits and the input, and takes the payload. Returns the
/// card and the offset after it.
fn parse_payload_card(
    input: &[u8],
    start: usize,
    line: &[u8],
    tokens: &[&[u8]],
    payload_at: usize,
    limits: &Limits,
    total: &mut u64,
) -> Result<(Card, usize), CodecError> {
    let card_name: &'static str = match tokens[0] {
        b"file" => "file",
        b"cfile" => "cfile",
        _ => "config",
    };
    let malformed = || CodecError::MalformedPayloadCard {
        at: start,
        card: card_name,
        line: String::from_utf8_lossy(line).into_owned(),
    };
    let too_large = |declared: u64| CodecError::PayloadTooLarge {
        at: start,
        card: card_name,
        declared,
        limit: limits.max_payload,
    };
    // Header fields, then the payload size, which is always last.
    enum Head {
        File(String, Option<String>),
        Cfile(String, Option<String>, u64),
        Config(String),
    }
    let (head, size_token) = match (card_name, tokens) {
        ("file", [_, h, size]) => (Head::File(hash(h).ok_or_else(malformed)?, None), *size),
        ("file", [_, h, src, size]) => (
            Head::File(
                hash(h).ok_or_else(malformed)?,
                Some(hash(src).ok_or_else(malformed)?),
            ),
            *size,
        ),
        ("cfile", [_, h, usize, csize]) => (
            Head::Cfile(
                hash(h).ok_or_else(malformed)?,
                None,
                int(usize).ok_or_else(malformed)?,
            ),
            *csize,
        ),
        ("cfile", [_, h, src, usize, csize]) => (
            Head::Cfile(
                hash(h).ok_or_else(malformed)?,
                Some(hash(src).ok_or_else(malformed)?),
                int(usize).ok_or_else(malformed)?,
            ),
            *csize,
        ),
        ("config", [_, name, size]) => (Head::Config(text(name)), *size),
        _ => return Err(malformed()),
    };
    let size = int(size_token).ok_or_else(malformed)?;
    if size > limits.max_payload {
        return Err(too_large(size));
    }
    if let Head::Cfile(_, _, full) = &head {
        if *full > limits.max_payload {
            return Err(too_large(*full));
        }
    }
    *total = total.saturating_add(size);
    if *total > limits.max_total {
        return Err(CodecError::TotalTooLarge {
            at: start,
            total: *total,
            limit: limits.max_total,
        });
    }
    let remaining = input.len() - payload_at;
    // `size` is at most `remaining` (a usize) past this check.
    if size > remaining as u64 {
        return Err(CodecError::Truncated {
            at: payload_at,
            what: "payload shorter than its declared size",
        });
    }
    let end = payload_at + size as usize;
    let payload = input[payload_at..end].to_vec();
    let mut after = end;
    let card = match head {
        Head::File(hash, delta_source) => Card::File {
            hash,
            delta_source,
            payload,
        },
        Head::Cfile(hash, delta_source, full_size) => Card::Cfile {
            hash,
            delta_source,
            full_size,
            payload,
        },
        Head::Config(name) => {
            // The sender always appends one newline after a config payload.
            if input.get(after) == Some(&b'\n') {
                after += 1;
            }
            Card::Config { name, payload }
        }
    };
    Ok((card, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H40: &str = "0123456789abcdef0123456789abcdef01234567";
    const H64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_observed_push_transcript() {
        let body = format!(
            "login alice {H40} {H40}\npragma client-version 22100 20230226 192424\n\
             push {H40} {H40}\nfile {H64} 5\nhellofile {H64} {H40} 3\nabcigot {H64}\n\
             # 526C6E3B81333E5822C92637036E8F21FC857556\n"
        );
        let cards = parse(body.as_bytes()).unwrap();
        assert_eq!(cards.len(), 7);
        assert_eq!(
            cards[3],
            Card::File {
                hash: H64.into(),
                delta_source: None,
                payload: b"hello".to_vec()
            }
        );
        assert_eq!(
            cards[4],
            Card::File {
                hash: H64.into(),
                delta_source: Some(H40.into()),
                payload: b"abc".to_vec()
            }
        );
        assert_eq!(
            cards[6],
            Card::Comment(" 526C6E3B81333E5822C92637036E8F21FC857556".into())
        );
    }

    #[test]
    fn cfile_and_config_trailing_newlines_are_consumed() {
        let body = format!("cfile {H64} 10 2\nxy\n\nconfig /config 3\nabc\nclone_seqno 0\n");
        let cards = parse(body.as_bytes()).unwrap();
        assert_eq!(cards.len(), 3);
        assert_eq!(cards[2], Card::CloneSeqno(0));
    }

    #[test]
    fn bad_commands_are_kept_raw() {
        let cards = parse(b"frobnicate 1 2\nigot nothex\n\n   \n").unwrap();
        assert_eq!(
            cards,
            vec![
                Card::Unknown(b"frobnicate 1 2".to_vec()),
                Card::Unknown(b"igot nothex".to_vec())
            ]
        );
    }

    #[test]
    fn huge_declared_sizes_fail_before_allocation() {
        let body = format!("file {H64} 4294967296\nx");
        match parse(body.as_bytes()) {
            Err(CodecError::PayloadTooLarge {
                declared, at: 0, ..
            }) => {
                assert_eq!(declared, 4294967296)
            }
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        let limits = Limits {
            max_payload: 10,
            max_total: 12,
        };
        let body = format!("file {H64} 8\n12345678file {H64} 8\n12345678");
        assert!(matches!(
            parse_with(body.as_bytes(), &limits),
            Err(CodecError::TotalTooLarge { total: 16, .. })
        ));
    }

    #[test]
    fn truncated_payload_and_malformed_headers_are_errors() {
        let body = format!("pull {H40} {H40}\nfile {H64} 10\nshort");
        match parse(body.as_bytes()) {
            Err(CodecError::Truncated { at, .. }) => assert_eq!(at, body.find("short").unwrap()),
            other => panic!("expected Truncated, got {other:?}"),
        }
        for bad in [
            "file nothex 3\nabc",
            "file {H64} -3\n",
            "cfile {H64} 3\nabc",
            "config x\n",
        ] {
            let bad = bad.replace("{H64}", H64);
            assert!(
                matches!(
                    parse(bad.as_bytes()),
                    Err(CodecError::MalformedPayloadCard { at: 0, .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn spans_cover_the_login_line() {
        let body = format!("login u {H40} {H40}\npragma x\n# r\n");
        let spans = parse_spanned(body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(spans[0].end, body.find("pragma").unwrap());
    }

    fn token() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9/_.:-]{1,16}"
    }

    fn hex(len: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..16, len)
            .prop_map(|v| v.iter().map(|d| format!("{d:x}")).collect())
    }

    fn any_hash() -> impl Strategy<Value = String> {
        prop_oneof![hex(40), hex(64)]
    }

    fn any_card() -> impl Strategy<Value = Card> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            (".+", any_hash(), any_hash()).prop_map(|(user, nonce, signature)| Card::Login {
                user,
                nonce,
                signature
            }),
            (token(), hex(40)).prop_map(|(server_code, project_code)| Card::Push {
                server_code,
                project_code
            }),
            (token(), hex(40)).prop_map(|(server_code, project_code)| Card::Pull {
                server_code,
                project_code
            }),
            Just(Card::Clone(None)),
            (any::<u32>(), any::<u64>())
                .prop_map(|(version, seqno)| Card::Clone(Some(CloneFrom { version, seqno }))),
            any::<u64>().prop_map(Card::CloneSeqno),
            (any_hash(), any::<bool>()).prop_map(|(hash, private)| Card::Igot { hash, private }),
            any_hash().prop_map(Card::Gimme),
            (any_hash(), proptest::option::of(any_hash()), bytes.clone()).prop_map(
                |(hash, delta_source, payload)| Card::File {
                    hash,
                    delta_source,
                    payload
                }
            ),
            (
                any_hash(),
                proptest::option::of(any_hash()),
                0u64..(1 << 26),
                bytes.clone()
            )
                .prop_map(|(hash, delta_source, full, payload)| Card::Cfile {
                    hash,
                    delta_source,
                    full_size: full,
                    payload
                }),
            token().prop_map(Card::Cookie),
            (token(), proptest::collection::vec(token(), 0..4))
                .prop_map(|(name, args)| Card::Pragma { name, args }),
            any::<String>().prop_map(Card::Message),
            any::<String>().prop_map(Card::Error),
            token().prop_map(Card::Reqconfig),
            (token(), bytes).prop_map(|(name, payload)| Card::Config { name, payload }),
            "[^\n]*".prop_map(Card::Comment),
            Just(Card::Private),
            "zz[a-z ]{0,20}".prop_map(|s| Card::Unknown(s.into_bytes())),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(cards in proptest::collection::vec(any_card(), 0..12)) {
            let bytes = encode(&cards);
            prop_assert_eq!(parse(&bytes).unwrap(), cards);
        }

        #[test]
        fn parse_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&input);
        }

        #[test]
        fn parse_never_panics_on_card_like_text(
            lines in proptest::collection::vec(
                "(file|cfile|config|igot|gimme|login|clone|pragma)( [0-9a-f]{0,64}| [0-9]{1,12}){0,5}\n?[a-z\n]{0,8}",
                0..8
            )
        ) {
            let _ = parse(lines.concat().as_bytes());
        }
    }
}
