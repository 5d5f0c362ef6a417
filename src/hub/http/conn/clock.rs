//! A connection's clock and framing state: which phase of its request
//! cycle it is in (idle, head, body, serving, replying), the deadline that
//! phase runs under, and which bytes hyper may read next.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::super::server::Ctx;

/// Where a connection is in its request cycle, which decides its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the next request since `since`: closed at the idle
    /// timeout, or to make room in a full table.
    Idle { since: Instant },
    /// A head is arriving; the request must be in by `deadline`.
    Head { deadline: Instant },
    /// hyper has the head and the body is being read (under the same
    /// deadline, kept by the reading).
    Body,
    /// The request is read whole and being served: no clock.
    Serving,
    /// The reply is with hyper and must be written by `deadline`.
    Replying { deadline: Instant },
}

/// Which bytes hyper may read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment {
    /// A head, up to its blank line; `newlines` is how far into one the
    /// bytes so far end (a terminator may straddle reads).
    Head { newlines: u8 },
    /// A body with `left` bytes to go.
    Body { left: u64 },
    /// Between a head and its dispatch, or after a refusal: no bound.
    Unframed,
}

/// Where a head's blank line is in `bytes`, scanning on from `newlines`:
/// `Ok(end)` just past it, or `Err(newlines)` at the end of `bytes`. Bare
/// LF line ends count, as they do for hyper's parser.
pub(super) fn head_end(mut newlines: u8, bytes: &[u8]) -> Result<usize, u8> {
    for (i, &b) in bytes.iter().enumerate() {
        newlines = match (newlines, b) {
            (1 | 2, b'\n') => return Ok(i + 1),
            (_, b'\n') => 1,
            (1, b'\r') => 2,
            _ => 0,
        };
    }
    Err(newlines)
}

pub(super) struct State {
    phase: Phase,
    segment: Segment,
    /// A request was refused while it was read: the close lingers.
    refused: bool,
}

/// One connection's clock and framing, shared by its task, its socket
/// wrapper and its requests.
pub(super) struct Conn {
    id: u64,
    pub(super) evict: Arc<Notify>,
    pub(super) ctx: Arc<Ctx>,
    state: Mutex<State>,
    /// Told whenever the phase changes, so the task re-arms its clock.
    pub(super) changed: Notify,
}

impl Conn {
    pub(super) fn new(id: u64, evict: Arc<Notify>, ctx: &Arc<Ctx>) -> Conn {
        ctx.set_idle(id, &evict);
        Conn {
            id,
            evict,
            ctx: Arc::clone(ctx),
            state: Mutex::new(State {
                phase: Phase::Idle {
                    since: Instant::now(),
                },
                segment: Segment::Head { newlines: 0 },
                refused: false,
            }),
            changed: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn phase(&self) -> Phase {
        self.lock().phase
    }

    pub(super) fn enter(&self, state: &mut State, phase: Phase) {
        match (state.phase, phase) {
            (Phase::Idle { .. }, Phase::Idle { .. }) => {}
            (Phase::Idle { .. }, _) => self.ctx.set_busy(self.id),
            (_, Phase::Idle { .. }) => self.ctx.set_idle(self.id, &self.evict),
            _ => {}
        }
        state.phase = phase;
        self.changed.notify_one();
    }

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.ctx.limits.read_timeout
    }

    /// Bytes came off the socket: an idle connection's next request began.
    pub(super) fn arrived(&self) {
        let mut state = self.lock();
        if let Phase::Idle { .. } = state.phase {
            let deadline = self.deadline();
            self.enter(&mut state, Phase::Head { deadline });
        }
    }

    /// hyper has a request's head and calls the service: the body, of
    /// `length` bytes (`None`: not framed by a length), is next. Returns
    /// the request's deadline.
    pub(super) fn dispatched(&self, length: Option<u64>) -> Instant {
        let mut state = self.lock();
        let deadline = match state.phase {
            Phase::Head { deadline } => deadline,
            // A pipelined head read with the previous request.
            _ => self.deadline(),
        };
        state.segment = match length {
            Some(0) => Segment::Head { newlines: 0 },
            Some(left) => Segment::Body { left },
            None => Segment::Unframed,
        };
        self.enter(&mut state, Phase::Body);
        deadline
    }

    pub(super) fn serving(&self) {
        let mut state = self.lock();
        self.enter(&mut state, Phase::Serving);
    }

    pub(super) fn replying(&self, refused: bool) {
        let mut state = self.lock();
        state.refused |= refused;
        let deadline = self.deadline();
        self.enter(&mut state, Phase::Replying { deadline });
    }

    /// Whether the client may still be sending when hyper closes: a
    /// request was refused half read, or hyper refused a head itself.
    pub(super) fn lingers(&self) -> bool {
        let state = self.lock();
        state.refused || matches!(state.phase, Phase::Head { .. })
    }

    /// hyper has written all it had; after a reply, the connection waits
    /// for its next request, unless its first bytes are already here.
    pub(super) fn flushed(&self, next_waiting: bool) {
        let mut state = self.lock();
        if let Phase::Replying { .. } = state.phase {
            let next = if next_waiting {
                Phase::Head {
                    deadline: self.deadline(),
                }
            } else {
                Phase::Idle {
                    since: Instant::now(),
                }
            };
            self.enter(&mut state, next);
        }
    }

    /// Most bytes hyper may read now, before looking at them: `None` while
    /// a head is read (it ends at its blank line).
    pub(super) fn bound(&self) -> Option<u64> {
        match self.lock().segment {
            Segment::Head { .. } => None,
            Segment::Body { left } => Some(left),
            Segment::Unframed => Some(u64::MAX),
        }
    }

    /// How many of `ready`, the next bytes of a head in the socket, hyper
    /// may have: up to its blank line.
    pub(super) fn head_bytes(&self, ready: &[u8]) -> usize {
        match self.lock().segment {
            Segment::Head { newlines } => head_end(newlines, ready).unwrap_or(ready.len()),
            _ => ready.len(),
        }
    }

    /// hyper took `bytes` off the socket.
    pub(super) fn consumed(&self, bytes: &[u8]) {
        let mut state = self.lock();
        state.segment = match state.segment {
            Segment::Head { newlines } => match head_end(newlines, bytes) {
                Ok(_) => Segment::Unframed,
                Err(newlines) => Segment::Head { newlines },
            },
            Segment::Body { left } => match left.saturating_sub(bytes.len() as u64) {
                0 => Segment::Head { newlines: 0 },
                left => Segment::Body { left },
            },
            Segment::Unframed => Segment::Unframed,
        };
    }

    pub(super) fn reads_head(&self) -> bool {
        matches!(self.lock().segment, Segment::Head { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::head_end;

    #[test]
    pub(super) fn head_end_finds_crlf_and_bare_lf_blank_lines_across_reads() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        assert_eq!(head_end(0, req), Ok(req.len() - 4));
        assert_eq!(head_end(0, b"GET / HTTP/1.0\n\nrest"), Ok(16));
        assert_eq!(head_end(0, b"GET / HTTP/1.1\r\nHost: x\r\n"), Err(1));
        // A terminator split across two reads is still found.
        let Err(newlines) = head_end(0, b"GET / HTTP/1.1\r\n\r") else {
            panic!("no end yet");
        };
        assert_eq!(head_end(newlines, b"\nbody"), Ok(1));
        assert_eq!(head_end(0, b"a\r\rb\n"), Err(1));
    }
}
