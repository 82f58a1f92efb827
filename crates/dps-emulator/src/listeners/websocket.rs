//! WebSockets on the HTTPS port, as DPS serves them: a `GET /$iothub/websocket` with `Upgrade: websocket` and
//! a subprotocol of [`SESSIONS`] (`mqtt`, `AMQPWSB10`). A sync session (MQTT) is handed to tungstenite's server
//! handshake here, then runs over the binary messages (a packet may span messages, a message may hold several
//! packets); an async one (AMQP, fe2o3-amqp) takes the TLS connection over with the upgrade request and does
//! both itself (`amqp/websocket.rs`). Authentication is the same as over the protocol's own port: the client
//! chain from the TLS layer, the credentials the session carries.

use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::listeners::limits::SessionLimits;
use crate::listeners::{ByteStream, TlsStream, WEBSOCKET_PATH as PATH, amqp, mqtt};
use crate::request::{Client, Transport};
use crate::services::RequestHandler;

/// How a protocol's session runs over a WebSocket.
#[derive(Clone, Copy)]
enum Session {
    /// A sync session over the byte stream of the binary messages, after the handshake here (MQTT).
    Bytes(fn(&mut dyn ByteStream, &RequestHandler, Client, &SessionLimits<'_>) -> io::Result<()>),
    /// An async session that takes the TLS connection over with the upgrade request (the bytes read so far)
    /// and runs the handshake itself (AMQP).
    TakesOver(fn(TlsStream, Vec<u8>, &Arc<RequestHandler>, Client, &SessionLimits<'_>)),
}

/// The protocols served over WebSockets, by subprotocol (matched in any case: the C SDK offers `MQTT`): a new
/// one is one line here.
const SESSIONS: &[(&str, Transport, Session)] = &[
    ("mqtt", Transport::MqttWs, Session::Bytes(mqtt::run_session)),
    (
        amqp::websocket::SUBPROTOCOL,
        Transport::AmqpWs,
        Session::TakesOver(amqp::websocket::serve),
    ),
];

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

/// Check the upgrade request: the DPS path (404 otherwise) and a subprotocol of [`SESSIONS`], in any case
/// (400 otherwise), which the answer selects as the client spelled it; `chosen` gets its index.
// The signature is tungstenite's `Callback`.
#[allow(clippy::result_large_err)]
fn check(request: &Request, mut response: Response, chosen: &mut Option<usize>) -> Result<Response, ErrorResponse> {
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
                "no WebSocket endpoint at {}: MQTT and AMQP over WebSockets are at {PATH}",
                request.uri().path()
            ),
        ));
    }
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| {
            let index = SESSIONS.iter().position(|(name, ..)| p.eq_ignore_ascii_case(name))?;
            Some((index, tungstenite::http::HeaderValue::from_str(p).ok()?))
        });
    let Some((index, offered)) = offered else {
        let names: Vec<String> = SESSIONS.iter().map(|(name, ..)| format!("{name:?}")).collect();
        return Err(refuse(
            400,
            format!("the WebSocket subprotocol {} is required", names.join(" or ")),
        ));
    };
    response.headers_mut().insert("sec-websocket-protocol", offered);
    *chosen = Some(index);
    Ok(response)
}

/// The first entry of [`SESSIONS`] whose subprotocol the upgrade request's `headers` offer.
fn offered(headers: &[(String, String)]) -> Option<(Transport, Session)> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(','))
        .find_map(|p| {
            SESSIONS
                .iter()
                .find(|(name, ..)| p.trim().eq_ignore_ascii_case(name))
                .map(|&(_, transport, session)| (transport, session))
        })
}

/// Serve the WebSocket of an HTTPS connection whose upgrade request (with `headers`; `head` and any bytes
/// after it were already read) asks for one: the session of the subprotocol it offers. Returns when the
/// session ends, the connection closed.
pub(crate) fn serve(
    mut tls: TlsStream,
    headers: &[(String, String)],
    head: Vec<u8>,
    handler: &Arc<RequestHandler>,
    chain: Option<Arc<[CertificateDer<'static>]>>,
    limits: &SessionLimits<'_>,
) {
    if let Some((transport, Session::TakesOver(session))) = offered(headers) {
        return session(tls, head, handler, Client { transport, chain }, limits);
    }
    serve_bytes(&mut tls, head, handler, chain, limits);
    tls.sock.set_deadline(Some(Instant::now() + Duration::from_secs(1)));
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.conn.complete_io(&mut tls.sock);
}

/// Run the WebSocket handshake on `stream` (the upgrade request `head` and any bytes after it were already
/// read), then the sync session of the chosen subprotocol over it (a subprotocol without one is refused).
fn serve_bytes<S: Read + Write>(
    stream: &mut S,
    head: Vec<u8>,
    handler: &RequestHandler,
    chain: Option<Arc<[CertificateDer<'static>]>>,
    limits: &SessionLimits<'_>,
) {
    let replay = Replay {
        read_first: Cursor::new(head),
        inner: stream,
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut chosen = None;
    // The signature is tungstenite's `Callback`.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| check(request, response, &mut chosen);
    let ws = match tungstenite::accept_hdr_with_config(replay, callback, Some(config)) {
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
    if let Some(&(name, transport, Session::Bytes(session))) = chosen.and_then(|i| SESSIONS.get(i)) {
        let client = Client { transport, chain };
        if let Err(e) = session(&mut bytes, handler, client, limits) {
            tracing::debug!(error = %e, subprotocol = name, "session over WebSockets ended");
        }
    }
    let _ = bytes.ws.close(None);
    let _ = bytes.ws.flush();
}
