//! The tip broadcast's message: a [`Tip`] as one line of JSON, then the
//! bundle's bytes; W3C trace context rides in NATS headers
//! ([`trace_headers`]). Publisher and subscriber (`tips.rs`) share this one
//! definition.

use async_nats::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use super::error::CoordError;
use super::names::{TRACEPARENT_HEADER, TRACESTATE_HEADER};
use crate::telemetry::W3c;

/// A trunk tip as the hub announces it (the JSON payload of a broadcast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tip {
    /// The check-in's artifact hash.
    pub hash: String,
    /// The trunk position (`Repository::trunk_position`): 1 for the first
    /// check-in after the root, and so on.
    pub seq: u64,
    /// The previous tip's hash, if any.
    pub parent: Option<String>,
    /// Opaque bytes riding with the tip: the hub puts the check-in's
    /// artifacts here (an xfer card stream) so a leaf one step behind can
    /// catch up without a request. Empty when there is nothing to carry.
    #[serde(skip)]
    pub bundle: bytes::Bytes,
    /// Which part of a split bundle this message carries (0-based): a
    /// batch whose bundle exceeds the server's largest message goes as
    /// several messages, one tip each, every part a whole card stream.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub part: u32,
    /// How many parts the batch's bundle was split into (1 when whole).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub parts: u32,
    /// Whether the bundle carries the batch's files as well as its
    /// manifests (`hub --broadcast-files`): what a full leaf catching up
    /// from the stream needs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub files: bool,
}

impl Default for Tip {
    fn default() -> Tip {
        Tip {
            hash: String::new(),
            seq: 0,
            parent: None,
            bundle: bytes::Bytes::new(),
            part: 0,
            parts: 1,
            files: false,
        }
    }
}

impl Tip {
    /// Whether this message is the last part of its batch.
    pub fn is_last_part(&self) -> bool {
        self.part + 1 >= self.parts
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn one() -> u32 {
    1
}

impl Tip {
    /// The message payload: the tip as one line of JSON, then, if there is
    /// a bundle, a newline and the bundle's bytes.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut payload = serde_json::to_vec(self).expect("a tip always serializes to json");
        if !self.bundle.is_empty() {
            payload.push(b'\n');
            payload.extend_from_slice(&self.bundle);
        }
        payload
    }

    /// Reads a payload written by [`Tip::to_payload`]. Compact JSON never
    /// holds a raw newline, so the first one ends the JSON part.
    pub fn from_payload(payload: &bytes::Bytes) -> Result<Tip, serde_json::Error> {
        let end = payload.iter().position(|&b| b == b'\n');
        let json = &payload[..end.unwrap_or(payload.len())];
        let mut tip: Tip = serde_json::from_slice(json)?;
        if let Some(end) = end {
            tip.bundle = payload.slice(end + 1..);
        }
        Ok(tip)
    }
}

/// The NATS headers that carry `trace` (its W3C `traceparent` and
/// `tracestate`); a value with a line break is refused.
pub(super) fn trace_headers(trace: &W3c, op: &str) -> Result<HeaderMap, CoordError> {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (TRACEPARENT_HEADER, &trace.traceparent),
        (TRACESTATE_HEADER, &trace.tracestate),
    ] {
        if let Some(value) = value {
            if value.contains(['\r', '\n']) {
                return Err(CoordError::InvalidHeader {
                    op: op.to_string(),
                    name,
                });
            }
            headers.insert(name, HeaderValue::from(value.as_str()));
        }
    }
    Ok(headers)
}

/// The trace context a message's headers carry.
pub(super) fn trace_of_headers(headers: Option<&HeaderMap>) -> W3c {
    let get = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    W3c {
        traceparent: get(TRACEPARENT_HEADER),
        tracestate: get(TRACESTATE_HEADER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_headers_round_trip() {
        let trace = W3c {
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
        };
        let headers = trace_headers(&trace, "t").unwrap();
        assert_eq!(trace_of_headers(Some(&headers)), trace);
        assert_eq!(trace_of_headers(None), W3c::default());
    }

    #[test]
    fn header_values_with_newlines_are_refused() {
        let trace = W3c {
            traceparent: Some("a\r\nb".into()),
            tracestate: None,
        };
        assert!(matches!(
            trace_headers(&trace, "t"),
            Err(CoordError::InvalidHeader {
                name: "traceparent",
                ..
            })
        ));
    }

    #[test]
    fn tip_json_shape() {
        let tip = Tip {
            hash: "ab".into(),
            seq: 2,
            parent: None,
            ..Tip::default()
        };
        assert_eq!(
            serde_json::to_string(&tip).unwrap(),
            r#"{"hash":"ab","seq":2,"parent":null}"#
        );
        assert_eq!(Tip::from_payload(&tip.to_payload().into()).unwrap(), tip);
    }

    #[test]
    fn bundles_ride_after_the_json_line() {
        let tip = Tip {
            hash: "ab".into(),
            seq: 3,
            parent: Some("cd".into()),
            bundle: bytes::Bytes::from_static(b"file x 3\na\nb"),
            ..Tip::default()
        };
        let payload = tip.to_payload();
        assert!(payload.starts_with(br#"{"hash":"ab","seq":3,"parent":"cd"}"#));
        assert_eq!(Tip::from_payload(&payload.into()).unwrap(), tip);
        assert!(Tip::from_payload(&bytes::Bytes::from_static(b"{\"hash\"\n")).is_err());
    }

    #[test]
    fn parts_of_a_split_bundle_name_themselves() {
        let tip = Tip {
            hash: "ab".into(),
            seq: 3,
            part: 1,
            parts: 2,
            files: true,
            bundle: bytes::Bytes::from_static(b"x"),
            ..Tip::default()
        };
        let payload = tip.to_payload();
        assert!(payload.starts_with(
            br#"{"hash":"ab","seq":3,"parent":null,"part":1,"parts":2,"files":true}"#
        ));
        let read = Tip::from_payload(&payload.into()).unwrap();
        assert_eq!(read, tip);
        assert!(read.is_last_part());
        assert!(!Tip { part: 0, ..read }.is_last_part());
    }
}
