//! Cards to bytes: each [`Card`] in the wire form Fossil's reader expects,
//! payloads included, and whole messages from lists of cards.

use std::io::Write;

use super::types::Card;
use crate::repo::encode::fossilize;

impl Card {
    /// Appends this card's wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfer::card::{parse, CloneFrom};
    use proptest::prelude::*;

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
    }
}
