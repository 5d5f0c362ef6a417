//! An error and its sources as one sentence: `outer: inner: root`, the way
//! every binary prints a fatal error once and every JSON `error` line
//! carries it.

/// `error`'s message followed by each of its sources', joined by `: `.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
