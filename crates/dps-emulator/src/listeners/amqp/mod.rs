//! The AMQP 1.0 adapter: the DPS device API over AMQP on its own TLS port of 127.0.0.1 (DPS: 5671) and
//! (through `websocket.rs`, the `AMQPWSB10` entry of the WebSocket `SESSIONS`) over WebSockets on the
//! HTTPS port, with fe2o3-amqp's acceptor for the protocol and our rustls `ServerConfig` (the HTTPS one)
//! for TLS.
//!
//! As the C SDK (`prov_transport_amqp_common.c`) and the Node SDK (`azure-iot-provisioning-device-amqp`)
//! speak it: after TLS, SASL PLAIN with authcid `{idScope}/registrations/{registrationId}` and the SAS token
//! as password (symmetric keys), or no SASL at all (or ANONYMOUS) with a TLS client certificate (x509); one
//! session; a sender and a receiver link on `amqps://{host}/{idScope}/registrations/{registrationId}` with
//! the link property `com.microsoft:api-version`.
//!
//! Authentication is a [`crate::request::SESSION`] request on `/{idScope}/registrations/{registrationId}`
//! to the one request handler, as an MQTT CONNECT is: at SASL PLAIN with the token as `Authorization`
//! (refused: SASL outcome `auth`), else when the first link attaches with the client chain (refused: the
//! link detached with `amqp:unauthorized-access`). Requests are messages with the application properties
//! `iotdps-operation-type` (`iotdps-register`, `iotdps-get-operationstatus`) and `iotdps-operation-id`,
//! the body the JSON of HTTPS; each becomes the request HTTPS would carry (`PUT .../register`,
//! `GET .../operations/{id}`), and its answer comes back on the receiver link with the request's
//! `correlation-id` (else its `message-id`), the JSON body as a data section, and the application
//! properties `iotdps-status` and `retry-after` (seconds) when HTTPS would send `Retry-After`.
//!
//! Each connection has a thread of its own within the shared connection bound (`limits.rs`), running a
//! current-thread tokio runtime; TLS, SASL, open, begin and both attaches must complete within the request
//! deadline, and so must each next request. A peer's `close` ends the connection at once, whatever a link
//! was waiting for (`ended::unless_closed`): its links and session end with it, nothing is detached.

mod connection;
mod ended;
mod hub;
mod hub_auth;
mod hub_messages;
mod login;
mod sasl;
mod sasl_tpm;
pub(crate) mod websocket;

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::time::{Instant, timeout_at};

use crate::listeners::Names;
use crate::listeners::limits::Slot;
use crate::request::{Client, Transport};
use crate::services::RequestHandler;
use ended::{Ended, io};

pub(crate) const NAMES: Names = Names {
    thread: "dps-emulator-amqp",
    connections: "dps-emulator-amqp",
    binding: "binding the AMQP listener on",
    address: "reading the address of the AMQP listener on",
    spawning: "starting the AMQP listener thread for",
};

/// A current-thread runtime for one connection's thread.
pub(super) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a runtime for an AMQP connection");
            None
        }
    }
}

/// Serve one TCP connection of the AMQP listener on a current-thread runtime of its own.
pub(crate) fn serve(
    stream: TcpStream,
    tls: Arc<ServerConfig>,
    handler: &Arc<RequestHandler>,
    request_timeout: Duration,
    slot: &Slot,
) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let Some(runtime) = runtime() else {
        return;
    };
    let result = runtime.block_on(async move {
        let deadline = Instant::now() + request_timeout;
        stream
            .set_nonblocking(true)
            .map_err(io("making the socket non-blocking"))?;
        let stream = tokio::net::TcpStream::from_std(stream).map_err(io("registering the socket"))?;
        let tls = timeout_at(deadline, tokio_rustls::TlsAcceptor::from(tls).accept(stream))
            .await
            .map_err(|_| Ended::Deadline("the TLS handshake"))?
            .map_err(io("the TLS handshake"))?;
        let client = Client {
            transport: Transport::Amqp,
            chain: tls.get_ref().1.peer_certificates().map(Arc::from),
        };
        connection::serve(tls, handler, client, request_timeout, deadline, slot).await
    });
    match result {
        Ok(()) => tracing::debug!(?peer, "AMQP connection closed"),
        Err(e) => tracing::info!(?peer, error = %e, "AMQP connection ended"),
    }
}
