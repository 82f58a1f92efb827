//! The end of an AMQP connection as the C SDK ends it (uAMQP's `connection_close`: the `close` frame
//! written, then the transport closed at once, without waiting for the server's `close`).
//!
//! fe2o3's connection task, once asked to close, polls a channel it has itself closed until the
//! server's `close` arrives: it spins, a whole CPU for the server's round trip (the AMQP client CPU
//! then grew with the server's load: BENCHMARKS.md, "AMQP x509"). So the connection's stream is
//! [`Shared`]: the connection task reads and writes through one handle, which tells when it has
//! written the `close` frame; then the client cuts that handle (its reads and writes fail, and the task
//! stops on the failed read without writing more) and shuts the stream down through its own handle
//! (TLS `close_notify`, flushing what the task wrote).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;

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
    /// The connection task wrote a `close` frame.
    closed: Arc<Notify>,
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
        let closed = Arc::new(Notify::new());
        (
            Shared {
                state: state.clone(),
                engine: true,
                closed: closed.clone(),
            },
            Shared {
                state,
                engine: false,
                closed,
            },
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

    /// Wait until the connection task has written its `close` frame.
    pub(crate) async fn close_written(&self) {
        self.closed.notified().await;
    }

    /// Shut the stream down (TLS `close_notify`, after what the connection task wrote).
    pub(crate) async fn shutdown(mut self) -> io::Result<()> {
        AsyncWriteExt::shutdown(&mut self).await
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
        let polled = Pin::new(&mut self.stream()?.stream).poll_write(cx, buf);
        if self.engine && is_close(buf) && matches!(polled, Poll::Ready(Ok(n)) if n == buf.len()) {
            self.closed.notify_one();
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream()?.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream()?.stream).poll_shutdown(cx)
    }
}

/// A write of a whole AMQP `close` frame as fe2o3 writes its frames (one write a frame): the 8-byte
/// header (size, data offset 2, type 0: AMQP) and the `close` performative's descriptor
/// (`0x00 0x53 0x18`, AMQP 1.0 2.7.9), the frame's size being the write's.
fn is_close(buf: &[u8]) -> bool {
    buf.len() >= 11
        && buf[..4] == u32::try_from(buf.len()).unwrap_or(0).to_be_bytes()
        && buf[4..6] == [2, 0]
        && buf[8..11] == [0x00, 0x53, 0x18]
}
