//! The streams under AMQP: TCP, directly or through an HTTP CONNECT proxy (AMQP over WebSockets only:
//! [`Transport::supports_proxy`]), and for AMQP over WebSockets the upgrade to
//! `wss://{host}:{port}{path}` with its subprotocol ([`Transport::path`], [`Transport::websocket`]: the
//! C SDK's `prov_transport_amqp_ws_client.c`, the Node SDK's `AmqpWs`), whose binary messages then carry
//! the AMQP connection's bytes.

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use ws_stream::WsBytes;

use crate::error::sanitize;
use crate::{Error, MAX_BODY, Proxy, Transport};

pub(super) fn transport_error(t: Transport, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::transport_from(t, sanitize(&format!("{what}: {e}")), e)
}

/// An I/O error of the connection: a TLS error when rustls is what failed under it.
pub(super) fn io_error(t: Transport, what: &str, io: std::io::Error) -> Error {
    match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => Error::tls_from(t, sanitize(&tls.to_string()), io),
        None => transport_error(t, what, io),
    }
}

/// TCP to `host:port`, or through `proxy` (checked against [`Transport::supports_proxy`] before).
pub(super) async fn tcp(
    t: Transport,
    host: &str,
    port: u16,
    proxy: Option<&Proxy>,
) -> Result<tokio::net::TcpStream, Error> {
    let Some(p) = proxy else {
        return tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| io_error(t, &format!("connecting to {host}:{port}"), e));
    };
    let mut tcp = tokio::net::TcpStream::connect((p.host.as_str(), p.port))
        .await
        .map_err(|e| io_error(t, &format!("connecting to the proxy {}:{}", p.host, p.port), e))?;
    let tunnel = match &p.credentials {
        Some((user, password)) => {
            async_http_proxy::http_connect_tokio_with_basic_auth(&mut tcp, host, port, user, password).await
        }
        None => async_http_proxy::http_connect_tokio(&mut tcp, host, port).await,
    };
    match tunnel {
        Ok(()) => Ok(tcp),
        Err(e @ async_http_proxy::HttpError::HttpCode200(401 | 407)) => Err(Error::transport_from(
            t,
            "the proxy refused the CONNECT: proxy authentication required (missing or wrong proxy credentials)",
            e,
        )),
        Err(e) => Err(transport_error(t, "the proxy did not open a tunnel", e)),
    }
}

/// The WebSocket upgrade to `t.path()` with `subprotocol` over an established TLS stream; the byte
/// stream of its binary messages.
pub(super) async fn upgrade<S>(
    t: Transport,
    host: &str,
    port: u16,
    subprotocol: &'static str,
    tls: S,
) -> Result<WsBytes<impl WsMessages>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let path = t.path().unwrap_or("/");
    let shown_host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_string(),
    };
    let mut request = format!("{}://{shown_host}:{port}{path}", t.scheme())
        .into_client_request()
        .map_err(|e| transport_error(t, "the WebSocket request", e))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        async_tungstenite::tungstenite::http::HeaderValue::from_static(subprotocol),
    );
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_BODY + 1024);
    config.max_frame_size = Some(MAX_BODY + 1024);
    let (ws, response) = async_tungstenite::tokio::client_async_with_config(request, tls, Some(config))
        .await
        .map_err(|e| match e {
            async_tungstenite::tungstenite::Error::Http(r) => Error::transport(
                t,
                format!(
                    "the server refused the WebSocket upgrade to {path}: HTTP {}",
                    r.status().as_u16()
                ),
            ),
            async_tungstenite::tungstenite::Error::Io(io) => io_error(t, "the WebSocket upgrade", io),
            other => transport_error(t, "the WebSocket upgrade", other),
        })?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !chosen.eq_ignore_ascii_case(subprotocol) {
        return Err(Error::Protocol {
            transport: t,
            message: sanitize(&format!(
                "the server chose the subprotocol {chosen:?}, not {subprotocol}"
            )),
        });
    }
    Ok(WsBytes::new(ws))
}
/// What the byte stream needs of a WebSocket: its messages in and out.
pub(super) trait WsMessages:
    Stream<Item = Result<Message, async_tungstenite::tungstenite::Error>>
    + Sink<Message, Error = async_tungstenite::tungstenite::Error>
    + Unpin
    + Send
    + 'static
{
}

impl<T> WsMessages for T where
    T: Stream<Item = Result<Message, async_tungstenite::tungstenite::Error>>
        + Sink<Message, Error = async_tungstenite::tungstenite::Error>
        + Unpin
        + Send
        + 'static
{
}
