//! The socket as hyper sees it: reads stop where the current head or body
//! ends, and arrivals and flushes move the connection's clock.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::clock::{Conn, Phase};

/// The socket as hyper sees it: reads end where the current head or body
/// ends, and arrivals and flushes move the connection's clock.
pub(super) struct Framed<'a> {
    pub(super) stream: &'a mut TcpStream,
    pub(super) conn: Arc<Conn>,
}

impl AsyncRead for Framed<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = match this.conn.bound() {
            Some(left) => usize::try_from(left).unwrap_or(usize::MAX),
            None => {
                // Look first, then take only the head.
                let before = out.filled().len();
                ready!(this.stream.poll_peek(cx, out))?;
                let n = this.conn.head_bytes(&out.filled()[before..]);
                out.set_filled(before);
                n
            }
        };
        let n = n.min(out.remaining());
        if n == 0 {
            return Poll::Ready(Ok(())); // end of stream
        }
        let mut part = ReadBuf::new(out.initialize_unfilled_to(n));
        ready!(Pin::new(&mut *this.stream).poll_read(cx, &mut part))?;
        let taken = part.filled().len();
        this.conn.consumed(part.filled());
        out.advance(taken);
        if taken > 0 {
            this.conn.arrived();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Framed<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut *this.stream).poll_flush(cx))?;
        if let Phase::Replying { .. } = this.conn.phase() {
            // hyper flushes once a reply is written whole.
            let mut first = [0u8; 1];
            let mut peek = ReadBuf::new(&mut first);
            let waiting = this.conn.reads_head()
                && matches!(this.stream.poll_peek(cx, &mut peek), Poll::Ready(Ok(1)));
            this.conn.flushed(waiting);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().stream).poll_shutdown(cx)
    }
}
