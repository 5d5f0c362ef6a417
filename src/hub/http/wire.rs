//! HTTP/1.x as the hub speaks it, on bytes only: finding the end of a
//! request head, parsing it (with `httparse`), and writing a reply's status
//! line and headers. No I/O, so it is tested and bounded alone; the
//! listener does the reading and writing.
//!
//! The hub takes only what Fossil's client, the leaf-agent's client and
//! operators' tools send: `Content-Length` bodies (a chunked body is refused
//! with 411), HTTP/1.0 and 1.1 keep-alive rules, `Expect: 100-continue`.

/// Largest request head (request line and headers), in bytes.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most headers one request may carry.
const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The method, as sent (`GET`, `POST`).
    pub(crate) method: String,
    /// The target without its query string.
    pub(crate) path: String,
    /// The minor HTTP version: 0 or 1.
    pub(crate) minor: u8,
    /// Headers in order, names as sent.
    pub(crate) headers: Vec<(String, String)>,
}

/// Why a request head is unusable; every one closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// Not HTTP/1.x.
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// More than [`MAX_HEAD`] bytes without the blank line, or too many
    /// headers.
    #[error("request head over {MAX_HEAD} bytes or {MAX_HEADERS} headers")]
    TooLarge,
    /// A header value is not UTF-8.
    #[error("header {0} is not utf-8")]
    NotUtf8(String),
    /// `Content-Length` is not a number, or two of them disagree.
    #[error("bad content-length {0:?}")]
    BadLength(String),
    /// A `Transfer-Encoding` other than identity: the hub needs the length.
    #[error("transfer-encoding {0:?} is not supported; send content-length")]
    Chunked(String),
}

/// Where the head that `buf` starts with ends (the index just past its
/// blank line), looking only at bytes from `from` on (minus the three a
/// terminator may straddle), so a head trickling in byte by byte is scanned
/// once, not once per byte.
pub(crate) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let tail = buf.get(start..)?;
    tail.windows(2).enumerate().find_map(|(i, w)| match w {
        b"\n\n" => Some(start + i + 2),
        [b'\n', b'\r'] if tail.get(i + 2) == Some(&b'\n') => Some(start + i + 3),
        _ => None,
    })
}

/// Parses a complete head (the bytes up to [`head_end`]).
pub(crate) fn parse_head(bytes: &[u8]) -> Result<Head, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        // The caller found the blank line, so a partial parse is a lie.
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed(httparse::Error::Token)),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e)),
    }
    let method = request.method.unwrap_or_default().to_string();
    let target = request.path.unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let minor = request.version.unwrap_or(0);
    let headers = request
        .headers
        .iter()
        .map(|h| {
            std::str::from_utf8(h.value)
                .map(|v| (h.name.to_string(), v.trim().to_string()))
                .map_err(|_| HeadError::NotUtf8(h.name.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Head {
        method,
        path,
        minor,
        headers,
    })
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's length: `Content-Length`, 0 when absent. Conflicting
    /// lengths and transfer codings are refused, so the hub and a proxy in
    /// front of it can never disagree on where a request ends.
    pub(crate) fn content_length(&self) -> Result<u64, HeadError> {
        if let Some(te) = self.header("Transfer-Encoding") {
            if !te.eq_ignore_ascii_case("identity") {
                return Err(HeadError::Chunked(te.to_string()));
            }
        }
        let mut length = None;
        for (_, value) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        {
            let n: u64 = value
                .parse()
                .map_err(|_| HeadError::BadLength(value.clone()))?;
            if length.is_some_and(|m| m != n) {
                return Err(HeadError::BadLength(value.clone()));
            }
            length = Some(n);
        }
        Ok(length.unwrap_or(0))
    }

    /// Whether the client wants the connection kept after the reply:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub(crate) fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.header("Connection")
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if self.minor >= 1 {
            !has("close")
        } else {
            has("keep-alive")
        }
    }

    /// Whether the client waits for `100 Continue` before sending its body.
    pub(crate) fn expects_continue(&self) -> bool {
        self.minor >= 1
            && self
                .header("Expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// The interim reply to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A reply's status line and headers. Every reply carries Content-Type and
/// Content-Length, as Fossil's client requires, and says whether the
/// connection stays open.
pub(crate) fn reply_head(
    status: u16,
    content_type: &str,
    body_len: usize,
    keep_alive: bool,
) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\nConnection: {connection}\r\n\r\n",
        reason(status)
    )
    .into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_finds_crlf_and_bare_lf_blank_lines() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        assert_eq!(head_end(req, 0), Some(req.len() - 4));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nrest", 0), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        // A terminator split across two reads is still found.
        let buf = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(head_end(buf, buf.len() - 1), Some(buf.len()));
    }

    #[test]
    fn parses_a_fossil_request_head() {
        let head = parse_head(
            b"POST /sub/dir?x=1 HTTP/1.0\r\nHost: h\r\nContent-Type: application/x-fossil\r\nContent-Length: 97\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/sub/dir");
        assert_eq!(head.minor, 0);
        assert_eq!(head.header("content-type"), Some("application/x-fossil"));
        assert_eq!(head.content_length(), Ok(97));
        assert!(!head.keep_alive());
        assert!(!head.expects_continue());
    }

    #[test]
    fn refuses_garbage_chunked_and_conflicting_lengths() {
        assert!(matches!(
            parse_head(b"NOT HTTP AT ALL\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let chunked = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(matches!(
            chunked.content_length(),
            Err(HeadError::Chunked(_))
        ));
        let two = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
            .unwrap();
        assert!(matches!(two.content_length(), Err(HeadError::BadLength(_))));
        let neg = parse_head(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").unwrap();
        assert!(matches!(neg.content_length(), Err(HeadError::BadLength(_))));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many), Err(HeadError::TooLarge));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        let h = |text: &[u8]| parse_head(text).unwrap();
        assert!(h(b"GET / HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!h(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(h(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(h(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expects_continue());
    }

    #[test]
    fn reply_head_names_length_and_connection() {
        let head = String::from_utf8(reply_head(413, "text/plain", 12, false)).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
            "{head}"
        );
        assert!(head.contains("Content-Length: 12\r\n"));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
    }
}
