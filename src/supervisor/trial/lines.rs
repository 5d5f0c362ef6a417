//! Reading a leaf-agent's output: its stdout as bounded, typed lines for
//! the control loop ([`SlotEvent`]), its stderr into its log (and the
//! terminal with `-v`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitStatus;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::supervisor::sampler::{exit_ticks, Ticks};
use crate::wire::LeafLine;

/// Longest line herd takes from a leaf; a longer one is malformed and its
/// bytes are skipped, not kept.
const MAX_LINE: usize = 1 << 20;
/// How much of a malformed line a report quotes.
const QUOTE_CHARS: usize = 200;

/// What a slot task tells the control loop.
#[derive(Debug)]
pub(super) enum SlotEvent {
    /// A well-formed line.
    Line(u32, LeafLine),
    /// A line that is not one of [`LeafLine`]'s kinds.
    Malformed(u32, String),
    /// The child exited (stdout already at end of file), with its final
    /// CPU ticks when they could be read before it was reaped.
    Exited(u32, std::io::Result<ExitStatus>, Option<Ticks>),
}

pub(super) async fn watch_slot(slot: u32, mut child: Child, tx: mpsc::UnboundedSender<SlotEvent>) {
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        let event = match next_line(&mut out, &mut line).await {
            Ok(Some(Line::Whole)) => {
                let text = String::from_utf8_lossy(&line);
                if text.trim().is_empty() {
                    continue;
                }
                match LeafLine::parse(&text) {
                    Ok(parsed) => SlotEvent::Line(slot, parsed),
                    Err(_) => SlotEvent::Malformed(slot, quote(&text)),
                }
            }
            Ok(Some(Line::TooLong { start })) => SlotEvent::Malformed(
                slot,
                format!(
                    "line over {MAX_LINE} bytes, starting {}",
                    quote(&String::from_utf8_lossy(&start))
                ),
            ),
            Ok(None) => break,
            Err(e) => {
                // The pipe broke: report it and wait for the exit.
                let _ = tx.send(SlotEvent::Malformed(
                    slot,
                    format!("unreadable output: {e}"),
                ));
                break;
            }
        };
        let _ = tx.send(event);
    }
    // Nobody reads stdout any more: a leaf still writing gets EPIPE rather
    // than blocking on a full pipe while herd waits for it.
    drop(out);
    // Its CPU total is read between its exit and the reaping, which
    // takes it away.
    let ticks = match pid {
        Some(pid) => exit_ticks(pid).await,
        None => None,
    };
    let status = child.wait().await;
    let _ = tx.send(SlotEvent::Exited(slot, status, ticks));
}

/// The first [`QUOTE_CHARS`] characters of a line, escaped, for a report.
fn quote(text: &str) -> String {
    let head: String = text.chars().take(QUOTE_CHARS).collect();
    format!("{head:?}")
}

/// What [`next_line`] read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (without its newline) is in the buffer.
    Whole,
    /// A line over [`MAX_LINE`] bytes, skipped to its end; its first bytes.
    TooLong { start: Vec<u8> },
}

/// Reads one line into `line` (cleared first), never holding more than
/// [`MAX_LINE`] bytes of it; `None` at end of file. A last line without a
/// newline still counts.
async fn next_line(
    input: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Line>> {
    line.clear();
    let mut too_long = false;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Some(Line::TooLong {
                    start: std::mem::take(line),
                }),
                (false, true) => None,
                (false, false) => Some(Line::Whole),
            });
        }
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if !too_long {
            let room = MAX_LINE - line.len();
            if part.len() > room {
                too_long = true;
                line.truncate(QUOTE_CHARS);
            } else {
                line.extend_from_slice(part);
            }
        }
        input.consume(used);
        if done {
            return Ok(Some(if too_long {
                Line::TooLong {
                    start: std::mem::take(line),
                }
            } else {
                Line::Whole
            }));
        }
    }
}

pub(super) async fn tee_stderr(slot: u32, stderr: impl AsyncRead + Unpin, log: PathBuf) {
    let mut file = std::fs::File::create(&log).ok();
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        crate::say!("[slot {slot}] {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `input`: `Ok(bytes)` whole, `Err(first bytes)` too long.
    async fn lines_of(input: &[u8]) -> Vec<Result<Vec<u8>, Vec<u8>>> {
        let mut reader = BufReader::with_capacity(64, input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        while let Some(l) = next_line(&mut reader, &mut line).await.unwrap() {
            out.push(match l {
                Line::Whole => Ok(line.clone()),
                Line::TooLong { start } => Err(start),
            });
        }
        out
    }

    #[tokio::test]
    async fn lines_are_bounded_and_need_not_be_utf8() {
        let mut input = b"one\n\xff\xfe binary\n".to_vec();
        input.extend(std::iter::repeat(b'x').take(MAX_LINE + 10));
        input.extend_from_slice(b"\nlast");
        let got = lines_of(&input).await;
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok(b"one".to_vec()));
        assert_eq!(got[1], Ok(b"\xff\xfe binary".to_vec()));
        assert_eq!(got[2], Err(vec![b'x'; QUOTE_CHARS]));
        assert_eq!(got[3], Ok(b"last".to_vec()));
    }

    #[tokio::test]
    async fn a_long_last_line_without_newline_is_flagged() {
        let got = lines_of(&vec![b'y'; MAX_LINE + 1]).await;
        assert_eq!(got, vec![Err(vec![b'y'; QUOTE_CHARS])]);
    }
}
