//! HTTP body framing of sync messages (reference section 5.1): which content
//! types Fossil speaks, and the `application/x-fossil` body, a 4-byte
//! big-endian uncompressed length followed by a zlib stream. No sockets here.

use std::io::Read;

use flate2::read::ZlibDecoder;

use super::card::Limits;
use super::error::CodecError;

/// The content types of Fossil's sync protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `application/x-fossil`: length prefix + zlib.
    Fossil,
    /// `application/x-fossil-debug`: plain cards (`--httptrace`).
    Debug,
    /// `application/x-fossil-uncompressed`: plain cards (clone replies).
    Uncompressed,
}

impl ContentType {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Fossil => "application/x-fossil",
            ContentType::Debug => "application/x-fossil-debug",
            ContentType::Uncompressed => "application/x-fossil-uncompressed",
        }
    }

    /// Parses a header value. Like `fossil server`, the match is exact
    /// (no `; charset`), apart from ASCII case and surrounding blanks.
    pub fn parse(value: &str) -> Result<ContentType, CodecError> {
        let v = value.trim();
        [
            ContentType::Fossil,
            ContentType::Debug,
            ContentType::Uncompressed,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(v))
        .ok_or_else(|| CodecError::ContentType(value.to_string()))
    }

    /// Whether bodies of this type are compressed.
    pub fn is_compressed(self) -> bool {
        self == ContentType::Fossil
    }
}

impl std::fmt::Display for ContentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decodes an HTTP body into card text. A compressed body must inflate to
/// exactly the size its prefix declares, which must be within
/// `limits.max_total`; the prefix is never trusted for allocation beyond that.
pub fn decode_body(
    content_type: ContentType,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, CodecError> {
    if !content_type.is_compressed() {
        if body.len() as u64 > limits.max_total {
            return Err(CodecError::FrameTooLarge {
                declared: body.len() as u64,
                limit: limits.max_total,
            });
        }
        return Ok(body.to_vec());
    }
    let Some((prefix, stream)) = body.split_first_chunk::<4>() else {
        return Err(CodecError::ShortFrame { len: body.len() });
    };
    let declared = u64::from(u32::from_be_bytes(*prefix));
    if declared > limits.max_total {
        return Err(CodecError::FrameTooLarge {
            declared,
            limit: limits.max_total,
        });
    }
    // Read one byte past the declared size to notice a lying prefix; the
    // initial capacity is bounded by the compressed size, not the prefix.
    let mut out = Vec::with_capacity((declared as usize).min(stream.len().saturating_mul(4)));
    ZlibDecoder::new(stream)
        .take(declared + 1)
        .read_to_end(&mut out)
        .map_err(CodecError::Inflate)?;
    if out.len() as u64 != declared {
        return Err(CodecError::FrameLength {
            declared,
            actual: out.len() as u64,
        });
    }
    Ok(out)
}

/// Encodes card text as an HTTP body of `content_type`.
pub fn encode_body(content_type: ContentType, cards: &[u8]) -> Vec<u8> {
    if !content_type.is_compressed() {
        return cards.to_vec();
    }
    compress(cards)
}

/// Fossil's stored-blob form (also the x-fossil body): 4-byte big-endian
/// length, then a zlib stream. Lengths past 4 GiB cannot be framed; callers
/// bound message sizes far below that.
pub fn compress(data: &[u8]) -> Vec<u8> {
    // The same framing as a stored blob.
    crate::repo::compress(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_types_match_exactly() {
        assert_eq!(
            ContentType::parse("application/x-fossil").unwrap(),
            ContentType::Fossil
        );
        assert_eq!(
            ContentType::parse("Application/X-Fossil-Uncompressed").unwrap(),
            ContentType::Uncompressed
        );
        assert!(ContentType::parse("application/x-fossil; charset=utf-8").is_err());
        assert!(ContentType::parse("text/html").is_err());
    }

    #[test]
    fn lying_prefixes_and_bad_zlib_are_errors() {
        let limits = Limits::default();
        let mut body = encode_body(ContentType::Fossil, b"pull a b\n");
        assert_eq!(
            decode_body(ContentType::Fossil, &body, &limits).unwrap(),
            b"pull a b\n"
        );
        body[3] += 1;
        assert!(matches!(
            decode_body(ContentType::Fossil, &body, &limits),
            Err(CodecError::FrameLength { .. })
        ));
        body[3] -= 2;
        assert!(matches!(
            decode_body(ContentType::Fossil, &body, &limits),
            Err(CodecError::FrameLength { .. })
        ));
        assert!(matches!(
            decode_body(ContentType::Fossil, &[0, 0, 0, 4, 1, 2, 3], &limits),
            Err(CodecError::Inflate(_))
        ));
        assert!(matches!(
            decode_body(ContentType::Fossil, &[0, 0], &limits),
            Err(CodecError::ShortFrame { len: 2 })
        ));
        assert!(matches!(
            decode_body(
                ContentType::Fossil,
                &[0xff, 0xff, 0xff, 0xff, 0x78, 0x9c],
                &limits
            ),
            Err(CodecError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let limits = Limits {
            max_payload: 1 << 20,
            max_total: 1 << 20,
        };
        let mut body = compress(&vec![0u8; 8 << 20]);
        // Claim a size within the limit; the stream is much longer.
        body[..4].copy_from_slice(&(1u32 << 20).to_be_bytes());
        assert!(matches!(
            decode_body(ContentType::Fossil, &body, &limits),
            Err(CodecError::FrameLength { actual, .. }) if actual == (1 << 20) + 1
        ));
    }

    proptest! {
        #[test]
        fn frames_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for t in [ContentType::Fossil, ContentType::Debug, ContentType::Uncompressed] {
                let body = encode_body(t, &data);
                prop_assert_eq!(decode_body(t, &body, &Limits::default()).unwrap(), data.clone());
            }
        }

        #[test]
        fn decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_body(ContentType::Fossil, &body, &Limits::default());
        }
    }
}
