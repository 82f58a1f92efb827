//! A blocking facade for programs without an async runtime: the same client on a private
//! current-thread tokio runtime.

use serde_json::Value;

use crate::{Assignment, Attestation, DeviceRegistrationResult, Error, Options, Registration, Transport};

/// [`crate::ProvisioningClient`] for synchronous code.
#[derive(Debug)]
pub struct ProvisioningClient {
    inner: crate::ProvisioningClient,
    runtime: tokio::runtime::Runtime,
}

impl ProvisioningClient {
    /// The low-level form of [`crate::ProvisioningClient::new`] (usually
    /// [`crate::ClientBuilder::build_blocking`] instead). Fails only when the runtime cannot start.
    pub fn new(
        endpoint: &str,
        id_scope: &str,
        transport: Transport,
        roots: rustls::RootCertStore,
        options: Options,
    ) -> Result<Self, Error> {
        Self::from_client(crate::ProvisioningClient::new(
            endpoint, id_scope, transport, roots, options,
        ))
    }

    /// The blocking facade of `client` (see also [`crate::ClientBuilder::build_blocking`]).
    pub fn from_client(client: crate::ProvisioningClient) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the tokio runtime: {e}")))?;
        Ok(ProvisioningClient { inner: client, runtime })
    }

    /// See [`crate::ProvisioningClient::register`].
    pub fn register(&self, attestation: &Attestation, payload: Option<Value>) -> Result<Assignment, Error> {
        self.runtime.block_on(self.inner.register(attestation, payload))
    }

    /// See [`crate::ProvisioningClient::register_as`].
    pub fn register_as(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        payload: Option<Value>,
    ) -> Result<Assignment, Error> {
        self.runtime
            .block_on(self.inner.register_as(attestation, registration_id, payload))
    }

    /// See [`crate::ProvisioningClient::register_with_csr`].
    pub fn register_with_csr(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        payload: Option<Value>,
        csr: &[u8],
    ) -> Result<Assignment, Error> {
        self.runtime
            .block_on(self.inner.register_with_csr(attestation, registration_id, payload, csr))
    }

    /// See [`crate::ProvisioningClient::register_with`].
    pub fn register_with(&self, attestation: &Attestation, request: &Registration) -> Result<Assignment, Error> {
        self.runtime.block_on(self.inner.register_with(attestation, request))
    }

    /// See [`crate::ProvisioningClient::registration_status`].
    pub fn registration_status(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
    ) -> Result<DeviceRegistrationResult, Error> {
        self.runtime
            .block_on(self.inner.registration_status(attestation, registration_id))
    }

    /// [`crate::renew_certificate`] on this client's runtime (the DPS endpoint is not used: `endpoint` is
    /// the hub's).
    #[allow(clippy::too_many_arguments)]
    pub fn renew_certificate(
        &self,
        hub: &str,
        endpoint: &str,
        device_id: &str,
        identity: std::sync::Arc<dyn hsm_core::X509Identity>,
        roots: rustls::RootCertStore,
        csr: &[u8],
        options: &crate::RenewalOptions,
    ) -> Result<Vec<Vec<u8>>, Error> {
        self.runtime.block_on(crate::renew_certificate(
            hub, endpoint, device_id, identity, roots, csr, options,
        ))
    }
}
