//! TLS records out: everything rustls has to send, moved into the IO's outgoing queue.

use std::collections::VecDeque;
use std::io::{self, Write};

use hsm_core::Result;
use rustls::ClientConnection;

use super::errors::tls_error;

/// Move everything rustls has to send into `out`.
pub(super) fn drain_tls(conn: &mut ClientConnection, out: &mut VecDeque<u8>, total: &mut u64) -> Result<()> {
    while conn.wants_write() {
        let mut sink = Sink(out, 0);
        conn.write_tls(&mut sink)
            .map_err(|e| tls_error("producing TLS records", e.to_string()))?;
        *total += sink.1;
    }
    Ok(())
}

struct Sink<'a>(&'a mut VecDeque<u8>, u64);

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
