//! What a [`TlsIo`](super::TlsIo) reports and where it is: the SDK's open and send results, the
//! events its callbacks are made from, and the IO's phase.

/// `IO_OPEN_RESULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenResult {
    /// Connected and the TLS handshake finished.
    Ok,
    /// The connection or the handshake failed (the IO's last error says why).
    Error,
    /// Closed by the caller before the open finished.
    Cancelled,
}

/// `IO_SEND_RESULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    /// Every byte was written to the socket.
    Ok,
    /// `IO_SEND_ERROR` (not produced by this IO: see `Cancelled`).
    Error,
    /// The IO was closed, or its connection failed, before the bytes were written.
    Cancelled,
}

/// One callback to make. `S` is what the caller attached to a send (its callback and context).
#[derive(Debug, PartialEq, Eq)]
pub enum Event<S> {
    /// `on_io_open_complete` with its result.
    OpenComplete(OpenResult),
    /// `on_bytes_received` with decrypted application data.
    BytesReceived(Vec<u8>),
    /// `on_send_complete` for the send that carried `S`.
    SendComplete(S, SendResult),
    /// `on_io_error`: an open connection failed.
    Error,
    /// `on_io_close_complete`.
    CloseComplete,
}

/// Where a [`TlsIo`](super::TlsIo) is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created or closed: `open` may be called.
    NotOpen,
    /// Waiting for the TCP connection.
    Connecting,
    /// Connected, the TLS handshake under way.
    Handshaking,
    /// The handshake finished: application data flows.
    Open,
    /// Failed after having been open: waiting for `close`.
    Error,
}
