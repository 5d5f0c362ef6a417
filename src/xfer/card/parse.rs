//! Bytes to cards: the message is read line by line as Fossil's reader
//! does, comments kept, blank lines skipped, and each line card matched on
//! its tokens; payload cards are handed to `payload.rs`.

use super::payload::parse_payload_card;
use super::token::{hash, int, is_space, text};
use super::types::{Card, CloneFrom, Limits};
use crate::repo::encode::defossilize;
use crate::xfer::error::CodecError;

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A SHA1-length name, for the codec's tests.
    pub(in crate::xfer::card) const H40: &str = "0123456789abcdef0123456789abcdef01234567";
    /// A SHA3-length name, for the codec's tests.
    pub(in crate::xfer::card) const H64: &str =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
    fn spans_cover_the_login_line() {
        let body = format!("login u {H40} {H40}\npragma x\n# r\n");
        let spans = parse_spanned(body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(spans[0].end, body.find("pragma").unwrap());
    }

    proptest! {
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
