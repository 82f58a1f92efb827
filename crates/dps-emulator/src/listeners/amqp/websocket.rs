//! AMQP over WebSockets on the HTTPS port: the `AMQPWSB10` entry of the WebSocket `SESSIONS`
//! (`listeners/websocket.rs`), as DPS serves it (`GET /$iothub/websocket`, the C SDK's
//! `prov_transport_amqp_ws_client.c`, the Node SDK's `AmqpWs`). fe2o3-amqp's session is async, so it cannot run
//! over the sync byte stream the MQTT entry runs over: this entry takes the HTTPS connection's TLS session over
//! (rustls `ServerConnection` and socket), runs the WebSocket handshake (async-tungstenite's, replaying the
//! upgrade request) and the AMQP connection of `connection.rs` on a current-thread runtime over the binary
//! messages.

use std::fmt;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, timeout_at};
use ws_stream::WsBytes;

use crate::listeners::TlsStream;
use crate::listeners::limits::SessionLimits;
use crate::request::Client;
use crate::services::RequestHandler;
use ws_stream::Prefixed;

/// The subprotocol of AMQP over WebSockets.
pub(crate) const SUBPROTOCOL: &str = "AMQPWSB10";
/// Largest WebSocket message accepted (an AMQP frame is bounded separately).
const MAX_MESSAGE: usize = 128 * 1024;

/// Serve AMQP over WebSockets on an HTTPS connection whose upgrade request (`head`, with any bytes after it)
/// was read; the handshake and the AMQP open within the request deadline.
pub(crate) fn serve(
    tls: TlsStream,
    head: Vec<u8>,
    handler: &Arc<RequestHandler>,
    client: Client,
    limits: &SessionLimits<'_>,
) {
    let request_timeout = limits.request_timeout;
    let (conn, sock) = tls.into_parts();
    let tcp = sock.stream;
    let Some(runtime) = super::runtime() else {
        return;
    };
    let result: Result<(), String> = runtime.block_on(async move {
        let deadline = Instant::now() + request_timeout;
        tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::from_std(tcp).map_err(|e| e.to_string())?;
        let stream = Prefixed::new(head, AsyncTls { conn, tcp });
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let ws = timeout_at(
            deadline,
            async_tungstenite::tokio::accept_hdr_async_with_config(stream, check, Some(config)),
        )
        .await
        .map_err(|_| "the WebSocket handshake did not complete within the request deadline".to_string())?
        .map_err(|e| format!("the WebSocket handshake: {e}"))?;
        let bytes = WsBytes::new(ws);
        super::connection::serve(bytes, handler, client, request_timeout, deadline, limits.slot)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => tracing::debug!("AMQP over WebSockets connection closed"),
        Err(e) => tracing::info!(error = %e, "AMQP over WebSockets connection ended"),
    }
}

/// The DPS path (404 otherwise); select `AMQPWSB10` as the client spelled it (offered: the caller chose this
/// entry by it).
// The signature is tungstenite's `Callback`.
#[allow(clippy::result_large_err)]
fn check(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() != crate::listeners::WEBSOCKET_PATH {
        let mut r = ErrorResponse::new(Some(format!(
            "no WebSocket endpoint at {}: AMQP over WebSockets is at {}",
            request.uri().path(),
            crate::listeners::WEBSOCKET_PATH
        )));
        *r.status_mut() = async_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
        return Err(r);
    }
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.eq_ignore_ascii_case(SUBPROTOCOL))
        .and_then(|p| async_tungstenite::tungstenite::http::HeaderValue::from_str(p).ok());
    if let Some(offered) = offered {
        response.headers_mut().insert("sec-websocket-protocol", offered);
    }
    Ok(response)
}

/// The server side of a TLS session already established by the sync HTTPS code, over a tokio socket.
struct AsyncTls {
    conn: ServerConnection,
    tcp: tokio::net::TcpStream,
}

impl fmt::Debug for AsyncTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTls").finish_non_exhaustive()
    }
}

/// The socket's non-blocking reads and writes, for rustls' `read_tls` and `write_tls`.
struct TryIo<'a>(&'a tokio::net::TcpStream);

impl Read for TryIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for TryIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncTls {
    /// Write the TLS records rustls holds.
    fn poll_flush_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut TryIo(&self.tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(self.tcp.poll_write_ready(cx))?,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for AsyncTls {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match this.conn.reader().read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.poll_flush_tls(cx)?.is_pending() {
                return Poll::Pending;
            }
            match this.conn.read_tls(&mut TryIo(&this.tcp)) {
                Ok(_) => {
                    this.conn
                        .process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(this.tcp.poll_read_ready(cx))?,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for AsyncTls {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = this.conn.writer().write(buf)?;
        if this.poll_flush_tls(cx)?.is_pending() && n == 0 {
            return Poll::Pending;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.conn.writer().flush()?;
        this.poll_flush_tls(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.conn.send_close_notify();
        ready!(this.poll_flush_tls(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}
