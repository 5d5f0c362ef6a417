//! Fuzz target: the manifest and cluster parsers must never panic, and a
//! manifest that parses must write back to bytes that parse to the same
//! manifest (the writer is exact, so a round trip is lossless).
#![no_main]

use herd::repo::manifest::{parse_cluster, Manifest};
use herd::repo::parse_artifact;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_artifact(data);
    let _ = parse_cluster(data);
    if let Ok(manifest) = Manifest::parse(data) {
        let again = Manifest::parse(&manifest.to_bytes()).expect("a written manifest parses");
        assert_eq!(again, manifest);
    }
});
