//! MQTT over WebSockets: the same MQTT session carried by rumqttc's `Transport::Wss` (async-tungstenite
//! over tokio-rustls with the same rustls `ClientConfig`, so the client identity is still the
//! `tlsio-bridge` one) to `wss://{host}:{port}{path}` with the transport's subprotocol (`mqtt`). Its
//! errors are read into ours with the connection's (`connection.rs`).

use std::sync::Arc;

use rumqttc::MqttOptions;

use crate::Transport;

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
