//! The end of an AMQP connection as the C SDK ends it (uAMQP's `connection_close`: the `close` frame
//! written, then the transport closed at once, without waiting for the server's `close`), without
//! fe2o3's close.
//!
//! fe2o3's connection task, once asked to close, polls a channel it has itself closed until the
//! server's `close` arrives: it spins, a whole CPU for the server's round trip (the AMQP client CPU
//! then grew with the server's load: BENCHMARKS.md, "AMQP x509"). So the connection's stream is
//! [`Shared`]: the connection task reads and writes through one handle; at the close the client cuts
//! that handle (its reads and writes fail, and the task stops on the failed read without writing),
//! then writes the `close` frame through its own handle with fe2o3's frame encoder, and shuts the
//! stream down (TLS `close_notify`).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use fe2o3_amqp::frames::amqp::{Frame, FrameBody};
use fe2o3_amqp::transport::Transport;
use fe2o3_amqp::types::performatives::Close;
use futures_util::SinkExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream fe2o3 can run a connection over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

struct State {
    stream: Box<dyn Io>,
    /// The connection task's handle was cut: its reads and writes fail.
    cut: bool,
    /// The connection task's pending read, woken by the cut.
    reader: Option<Waker>,
}

/// One handle on the connection's stream: the connection task's (which [`Shared::cut`] ends) or the
/// client's.
pub(crate) struct Shared {
    state: Arc<Mutex<State>>,
    engine: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").field("engine", &self.engine).finish()
    }
}

impl Shared {
    /// The connection task's handle and the client's, on `stream`.
    pub(crate) fn new(stream: impl Io + 'static) -> (Shared, Shared) {
        let state = Arc::new(Mutex::new(State {
            stream: Box::new(stream),
            cut: false,
            reader: None,
        }));
        (
            Shared {
                state: state.clone(),
                engine: true,
            },
            Shared { state, engine: false },
        )
    }

    /// Cut the connection task's handle: its pending read is woken and fails, as every read and
    /// write after it.
    pub(crate) fn cut(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.cut = true;
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
        }
    }

    /// Write the `close` frame (no error) on channel 0 and shut the stream down; `max_frame_size` is the
    /// connection's.
    pub(crate) async fn close(self, max_frame_size: usize) -> Result<(), fe2o3_amqp::transport::Error> {
        let mut transport = Transport::<_, Frame>::bind(self, max_frame_size, None);
        transport
            .send(Frame::new(0u16, FrameBody::Close(Close { error: None })))
            .await?;
        transport.close().await
    }

    /// The stream, unless this is the connection task's handle and it was cut.
    fn stream(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("the AMQP stream's lock is poisoned"))?;
        if self.engine && state.cut {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client closed the AMQP connection",
            ));
        }
        Ok(state)
    }
}

impl AsyncRead for Shared {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let engine = self.engine;
        let mut state = self.stream()?;
        let polled = Pin::new(&mut state.stream).poll_read(cx, buf);
        if engine && polled.is_pending() {
            match &state.reader {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => state.reader = Some(cx.waker().clone()),
            }
        }
        polled
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream()?.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream()?.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.stream.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream()?.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream()?.stream).poll_shutdown(cx)
    }
}
