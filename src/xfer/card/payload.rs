//! Payload cards (`file`, `cfile`, `config`): the header read, the declared
//! sizes checked against the [`Limits`] before anything is allocated, then
//! the payload taken from the message.

use super::token::{hash, int, text};
use super::types::{Card, Limits};
use crate::xfer::error::CodecError;

/// A payload card's header fields; the payload size, always the last
/// token, is read beside them.
enum Head {
    File(String, Option<String>),
    Cfile(String, Option<String>, u64),
    Config(String),
}

/// A `file`, `cfile` or `config` card: reads the header, checks the declared
/// sizes against the limits and the input, and takes the payload. Returns the
/// card and the offset after it.
pub(super) fn parse_payload_card(
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
    let (head, size) =
        read_head(card_name, tokens).ok_or_else(|| CodecError::MalformedPayloadCard {
            at: start,
            card: card_name,
            line: String::from_utf8_lossy(line).into_owned(),
        })?;
    check_sizes(&head, size, limits, total, start, card_name)?;
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
    Ok(head.into_card(payload, input, end))
}

/// The header fields and declared payload size of card `card_name`;
/// `None` when Fossil would not read the header.
fn read_head(card_name: &str, tokens: &[&[u8]]) -> Option<(Head, u64)> {
    let (head, size_token) = match (card_name, tokens) {
        ("file", [_, h, size]) => (Head::File(hash(h)?, None), *size),
        ("file", [_, h, src, size]) => (Head::File(hash(h)?, Some(hash(src)?)), *size),
        ("cfile", [_, h, usize, csize]) => (Head::Cfile(hash(h)?, None, int(usize)?), *csize),
        ("cfile", [_, h, src, usize, csize]) => {
            (Head::Cfile(hash(h)?, Some(hash(src)?), int(usize)?), *csize)
        }
        ("config", [_, name, size]) => (Head::Config(text(name)), *size),
        _ => return None,
    };
    Some((head, int(size_token)?))
}

/// Refuses a payload (or a `cfile`'s full artifact) over the per-card
/// limit, and a message whose payloads, `total` so far, pass the total.
fn check_sizes(
    head: &Head,
    size: u64,
    limits: &Limits,
    total: &mut u64,
    at: usize,
    card: &'static str,
) -> Result<(), CodecError> {
    let too_large = |declared: u64| CodecError::PayloadTooLarge {
        at,
        card,
        declared,
        limit: limits.max_payload,
    };
    if size > limits.max_payload {
        return Err(too_large(size));
    }
    if let Head::Cfile(_, _, full) = head {
        if *full > limits.max_payload {
            return Err(too_large(*full));
        }
    }
    *total = total.saturating_add(size);
    if *total > limits.max_total {
        return Err(CodecError::TotalTooLarge {
            at,
            total: *total,
            limit: limits.max_total,
        });
    }
    Ok(())
}

impl Head {
    /// The card with its `payload`, which ends at offset `end` of `input`,
    /// and the offset after the card.
    fn into_card(self, payload: Vec<u8>, input: &[u8], end: usize) -> (Card, usize) {
        let mut after = end;
        let card = match self {
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
        (card, after)
    }
}

#[cfg(test)]
mod tests {
    use crate::xfer::card::parse::tests::{H40, H64};
    use crate::xfer::card::{parse, parse_with, Card, Limits};
    use crate::xfer::error::CodecError;

    #[test]
    fn cfile_and_config_trailing_newlines_are_consumed() {
        let body = format!("cfile {H64} 10 2\nxy\n\nconfig /config 3\nabc\nclone_seqno 0\n");
        let cards = parse(body.as_bytes()).unwrap();
        assert_eq!(cards.len(), 3);
        assert_eq!(cards[2], Card::CloneSeqno(0));
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
}
