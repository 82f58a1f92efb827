#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs)]

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::Message;

/// tungstenite's error (the WebSocket's).
type WsError = tungstenite::Error;

/// The byte stream carried by the binary messages of the WebSocket `W`.
pub struct WsBytes<W> {
    ws: W,
    /// The message being read, from `at` on.
    pending: Vec<u8>,
    at: usize,
}

impl<W> WsBytes<W> {
    /// The byte stream over `ws` (after its handshake).
    pub fn new(ws: W) -> Self {
        WsBytes {
            ws,
            pending: Vec::new(),
            at: 0,
        }
    }
}

impl<W> fmt::Debug for WsBytes<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsBytes")
            .field("pending", &(self.pending.len() - self.at))
            .finish_non_exhaustive()
    }
}

/// A WebSocket error as an I/O error (the I/O error itself when it is one).
fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(io) => io,
        e => io::Error::other(e),
    }
}

impl<W> AsyncRead for WsBytes<W>
where
    W: Stream<Item = Result<Message, WsError>> + Unpin,
{
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.at < this.pending.len() {
                let n = buf.remaining().min(this.pending.len() - this.at);
                buf.put_slice(&this.pending[this.at..this.at + n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => {
                    this.pending = data.to_vec();
                    this.at = 0;
                }
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message where the byte stream travels in binary ones",
                    )));
                }
                // Pings are answered by tungstenite on the next write or flush.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl<W> AsyncWrite for WsBytes<W>
where
    W: Sink<Message, Error = WsError> + Unpin,
{
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
        Pin::new(&mut self.ws)
            .start_send(Message::binary(buf.to_vec()))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(io_error)
    }
}

mod prefixed;
pub use prefixed::Prefixed;
