//! The byte stream under a TLS IO.

use std::io;

/// Where the TLS bytes go: a byte stream that never blocks.
pub trait Transport {
    /// Start connecting to `host:port`; must not wait for the connection.
    fn open(&mut self, host: &str, port: u16) -> io::Result<()>;
    /// `Ok(true)` once connected, `Ok(false)` while still connecting.
    fn poll_open(&mut self) -> io::Result<bool>;
    /// Give an underlying IO its turn (its own `dowork`); called once per
    /// [`TlsIo::dowork`](crate::io::TlsIo::dowork).
    fn pump(&mut self) {}
    /// Read received bytes: `Ok(0)` when the peer closed, `WouldBlock` when nothing is there.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write bytes: how many were taken, or `WouldBlock`.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Close the connection (no callbacks); the transport may be opened again.
    fn close(&mut self);
}
