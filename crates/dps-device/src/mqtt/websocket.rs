//! MQTT over WebSockets: the same MQTT session carried by rumqttc's `Transport::Wss` (async-tungstenite
//! over tokio-rustls with the same rustls `ClientConfig`, so the client identity is still the
//! `tlsio-bridge` one) to `wss://{host}:{port}{path}` with the transport's subprotocol (`mqtt`); and the
//! WebSocket errors read into ours.

use std::sync::Arc;

use rumqttc::MqttOptions;

use super::connection::Failure;
use crate::Transport;
use crate::error::sanitize;

/// The rumqttc options of a WebSocket connection to `host:port` for `t` (its scheme and path).
pub(super) fn options(
    t: Transport,
    client_id: &str,
    host: &str,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
) -> MqttOptions {
    let host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_string(),
    };
    let url = format!("{}://{host}:{port}{}", t.scheme(), t.path().unwrap_or("/"));
    let mut options = MqttOptions::new(client_id, url, port);
    options.set_transport(rumqttc::Transport::wss_with_config(rumqttc::TlsConfiguration::Rustls(
        tls,
    )));
    options
}

/// A failed WebSocket connection: a refused upgrade names the path and the HTTP status.
pub(super) fn failure(e: &tungstenite::Error, t: Transport) -> Failure {
    use tungstenite::Error as Ws;
    match e {
        Ws::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Failure::Transport(sanitize(&format!(
                "the server refused the WebSocket upgrade to {}: HTTP {} {body}",
                t.path().unwrap_or("/"),
                response.status().as_u16()
            )))
        }
        Ws::Tls(tls) => Failure::Tls(sanitize(&tls.to_string())),
        Ws::Io(io) => super::connection::io_failure(io),
        other => Failure::Transport(sanitize(&format!("WebSocket: {other}"))),
    }
}
