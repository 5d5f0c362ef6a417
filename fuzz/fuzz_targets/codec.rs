//! Fuzz target: HTTP body decoding and card parsing must never panic, and
//! whatever parses must re-encode to something that parses to the same cards.
#![no_main]

use herd::xfer::{decode_body, encode, parse_with, ContentType, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_payload: 1 << 20,
        max_total: 4 << 20,
    };
    if let Ok(text) = decode_body(ContentType::Fossil, data, &limits) {
        let _ = parse_with(&text, &limits);
    }
    if let Ok(cards) = parse_with(data, &limits) {
        let again = parse_with(&encode(&cards), &limits).expect("re-encoded cards parse");
        assert_eq!(again.len(), cards.len());
    }
});
