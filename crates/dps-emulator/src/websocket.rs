//! MQTT over WebSockets on the HTTPS port, as DPS serves it: a `GET /$iothub/websocket` with
//! `Upgrade: websocket` and the `mqtt` subprotocol is handed to tungstenite's server handshake, then the MQTT
//! session of `mqtt.rs` runs over the binary messages (a packet may span messages, a message may hold
//! several packets). Authentication is the same as over MQTT/TLS: the client chain from the TLS layer, the
//! SAS token from the CONNECT password.

use std::io::{self, Cursor, Read, Write};

use rustls_pki_types::CertificateDer;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::service::Service;

/// The path DPS serves MQTT over WebSockets on.
pub(crate) const PATH: &str = "/$iothub/websocket";
const SUBPROTOCOL: &str = "mqtt";
/// Largest WebSocket message accepted (an MQTT packet is bounded separately).
const MAX_MESSAGE: usize = 128 * 1024;

/// Bytes already read from the connection (the upgrade request), then the connection itself.
struct Replay<S> {
    read_first: Cursor<Vec<u8>>,
    inner: S,
}

impl<S: Read> Read for Replay<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.read_first.position() as usize) < self.read_first.get_ref().len() {
            return self.read_first.read(buf);
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Replay<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The byte stream carried by a WebSocket's binary messages.
struct Bytes<S: Read + Write> {
    ws: WebSocket<S>,
    pending: Cursor<Vec<u8>>,
}

impl<S: Read + Write> Read for Bytes<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.position() as usize >= self.pending.get_ref().len() {
            match self.ws.read() {
                Ok(Message::Binary(data)) => self.pending = Cursor::new(data.to_vec()),
                Ok(Message::Close(_)) => return Ok(0),
                Ok(Message::Text(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message: MQTT travels in binary messages",
                    ));
                }
                // Pings are answered by tungstenite.
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Ok(0),
                Err(tungstenite::Error::Io(e)) => return Err(e),
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        self.pending.read(buf)
    }
}

impl<S: Read + Write> Write for Bytes<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ws.send(Message::binary(buf.to_vec())).map_err(|e| match e {
            tungstenite::Error::Io(e) => e,
            e => io::Error::other(e.to_string()),
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ws.flush().map_err(|e| match e {
            tungstenite::Error::Io(e) => e,
            e => io::Error::other(e.to_string()),
        })
    }
}

/// Check the upgrade request: the DPS path (404 otherwise) and the `mqtt` subprotocol, in any case (400
/// otherwise), which the answer selects.
// The signature is tungstenite's `Callback`.
#[allow(clippy::result_large_err)]
fn check(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let refuse = |status: u16, message: String| {
        tracing::info!(path = %request.uri().path(), %message, "WebSocket upgrade refused");
        let length = tungstenite::http::HeaderValue::from(message.len());
        let mut r = ErrorResponse::new(Some(message));
        r.headers_mut().insert("content-length", length);
        r.headers_mut()
            .insert("connection", tungstenite::http::HeaderValue::from_static("close"));
        *r.status_mut() =
            tungstenite::http::StatusCode::from_u16(status).unwrap_or(tungstenite::http::StatusCode::BAD_REQUEST);
        r
    };
    if request.uri().path() != PATH {
        return Err(refuse(
            404,
            format!(
                "no WebSocket endpoint at {}: MQTT over WebSockets is at {PATH}",
                request.uri().path()
            ),
        ));
    }
    // The C SDK offers "MQTT", rumqttc "mqtt": the answer echoes the token as the client spelled it.
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.eq_ignore_ascii_case(SUBPROTOCOL))
        .and_then(|p| tungstenite::http::HeaderValue::from_str(p).ok());
    let Some(offered) = offered else {
        return Err(refuse(
            400,
            format!("the WebSocket subprotocol {SUBPROTOCOL:?} is required"),
        ));
    };
    response.headers_mut().insert("sec-websocket-protocol", offered);
    Ok(response)
}

/// Run the WebSocket handshake on `stream` (the upgrade request `head` and any bytes after it were already
/// read), then an MQTT session over it. Returns when the session ends; the caller closes the connection.
pub(crate) fn serve<S: Read + Write>(
    stream: &mut S,
    head: Vec<u8>,
    service: &Service,
    peer_chain: Option<&[CertificateDer<'static>]>,
    limits: &crate::mqtt::Limits<'_>,
) {
    let replay = Replay {
        read_first: Cursor::new(head),
        inner: stream,
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = match tungstenite::accept_hdr_with_config(replay, check, Some(config)) {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(error = %e, "WebSocket handshake failed");
            return;
        }
    };
    let mut bytes = Bytes {
        ws,
        pending: Cursor::new(Vec::new()),
    };
    if let Err(e) = crate::mqtt::run(&mut bytes, service, peer_chain, limits) {
        tracing::debug!(error = %e, "MQTT over WebSockets ended");
    }
    let _ = bytes.ws.close(None);
    let _ = bytes.ws.flush();
}
