//! The one interface the registration flow (`flow.rs`) drives, whatever the transport: open a
//! connection, send a request of the device API ([`Call`]) and read its answer ([`Reply`]), close.
//! Each transport's connect module (`https.rs`, `mqtt/`, `amqp/`) implements [`Connection`];
//! `Session::open` (`dispatch.rs`) is the only place that matches on the transports to pick the module.

use std::sync::Arc;

use dps_wire::device::DeviceRegistration;
use tokio::time::Instant;

use crate::{Error, Proxy, Reply, Transport};

/// A request of the device API.
#[derive(Clone, Copy)]
pub(crate) enum Call<'a> {
    /// Register (`iotdps-register`), with the registration body.
    Register(&'a DeviceRegistration),
    /// The status of an operation (`iotdps-get-operationstatus`), by operation id.
    Operation(&'a str),
    /// The device registration status lookup (HTTPS only: [`Transport::supports_status_lookup`]).
    Status(&'a DeviceRegistration),
}

/// What every connect module is given to open its connection.
pub(crate) struct Connect<'a> {
    pub(crate) transport: Transport,
    /// `host[:port]`; the port defaults to [`Transport::default_port`].
    pub(crate) endpoint: &'a str,
    pub(crate) id_scope: &'a str,
    pub(crate) registration_id: &'a str,
    /// TLS with the device's client identity (x509) or none.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// The SAS token, for a transport that authenticates when it connects.
    pub(crate) password: Option<&'a str>,
    pub(crate) user_agent: &'a str,
    pub(crate) api_version: &'a str,
    /// Checked against [`Transport::supports_proxy`] before this is built.
    pub(crate) proxy: Option<&'a Proxy>,
    /// TPM attestation where it happens at connect (AMQP's SASL `TPM`); `None` elsewhere.
    pub(crate) tpm: Option<crate::amqp::TpmSasl<'a>>,
}

/// One connection of a transport, as the flow drives it.
pub(crate) trait Connection {
    /// Send `call` and read its answer. `auth` is the `Authorization` of a transport that
    /// authenticates each request (one that authenticates at connect ignores it); the answer must come
    /// before `deadline`.
    async fn call(&mut self, call: Call<'_>, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error>;

    /// End the connection politely (what the protocol says on leaving), within `deadline`.
    async fn close(self, deadline: Instant) -> Result<(), Error>;
}
