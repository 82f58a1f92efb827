//! What the AMQP tests share: a TLS stream to the emulator's AMQP listener and the runtime they run on.

use std::sync::Arc;

use dps_emulator::Emulator;
use rustls_pki_types::ServerName;

use super::client_builder;

/// A client's TLS stream, the stream fe2o3 opens its connection over.
pub type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS stream to the AMQP listener of `emu`, trusting its CA and naming `server_name`.
pub async fn tls(emu: &Emulator, server_name: &str) -> Tls {
    let config = client_builder(&emu.server_ca_pem(), super::Tls::Any).with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(emu.amqp_endpoint()).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(server_name.to_string()).unwrap(), tcp)
        .await
        .unwrap()
}

/// The single-threaded runtime each AMQP test runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
