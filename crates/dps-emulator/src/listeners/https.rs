//! The HTTPS listener: each connection's TLS handshake, then its HTTP/1.1 requests (kept alive unless the
//! client says otherwise) handed to the request handler; each request (the TLS handshake included for the
//! first) must arrive whole within the request timeout. A `GET /$iothub/websocket` with `Upgrade: websocket`
//! turns the connection over to `websocket.rs`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

use crate::listeners::http_codec::{self, ReadError};
use crate::listeners::limits::{SessionLimits, Slot};
use crate::listeners::{Names, websocket};
use crate::request::{Client, Transport, error};
use crate::services::RequestHandler;

pub(crate) const NAMES: Names = Names {
    thread: "dps-emulator-listener",
    connections: "dps-emulator-conn",
    binding: "binding",
    address: "reading the address of",
    spawning: "starting the listener thread for",
};

/// Serve one connection.
pub(crate) fn serve(
    stream: TcpStream,
    tls_config: Arc<ServerConfig>,
    handler: &Arc<RequestHandler>,
    request_timeout: Duration,
    slot: &Slot,
) {
    let peer = stream.peer_addr().ok();
    let Some((mut tls, chain)) = crate::listeners::accept_tls(stream, tls_config, request_timeout) else {
        return;
    };
    let client = Client {
        transport: Transport::Https,
        chain: chain.clone(),
    };
    let mut buf = Vec::new();
    loop {
        match http_codec::read_request(&mut tls, &mut buf) {
            Ok(None) => break,
            Ok(Some(mut request)) => {
                slot.idle(false);
                tls.sock.set_deadline(None);
                if let Some(mut head) = request.upgrade_head.take() {
                    // A WebSocket: the connection is the session's until it ends.
                    head.append(&mut buf);
                    let limits = SessionLimits {
                        deadline: tls.sock.deadline.clone(),
                        request_timeout,
                        slot,
                    };
                    return websocket::serve(tls, &request.headers, head, handler, chain, &limits);
                }
                let keep_alive = request.keep_alive;
                let response = handler.handle(&request.into_request(client.clone()));
                if let Err(e) = http_codec::write_response(&mut tls, &response, keep_alive) {
                    tracing::debug!(?peer, error = %e, "writing a response failed");
                    return;
                }
                if !keep_alive {
                    break;
                }
                tls.sock.set_deadline(Some(Instant::now() + request_timeout));
                slot.idle(true);
            }
            Err(ReadError::Malformed { status, message }) => {
                let _ = http_codec::write_response(&mut tls, &error(status, u32::from(status) * 1000, message), false);
                break;
            }
            Err(ReadError::Io(e)) => {
                tracing::debug!(?peer, error = %e, "connection ended");
                return;
            }
        }
    }
    tls.sock.set_deadline(Some(Instant::now() + Duration::from_secs(1)));
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.conn.complete_io(&mut tls.sock);
}
