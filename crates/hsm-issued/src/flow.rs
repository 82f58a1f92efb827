//! The issuance and renewal flows on top of [`Store`] and `dps-device` (feature `dps`):
//!
//! - [`register`]: a DPS registration carrying a CSR of a new key (onboarding with x509,
//!   symmetric key or TPM, or re-registration with the current issued identity);
//! - [`renew_via_hub`]: IoT Hub `$iothub/credentials`, authenticated with the current identity.
//!
//! Each flow makes a new key, sends its CSR, checks the returned chain (`verify_issued_chain`
//! and the store's own checks) and installs it; nothing changes the current identity until the
//! new chain is verified and stored. A request that authenticated with the current issued
//! identity proves that identity works: the flow confirms it ([`Store::confirm`], which
//! deletes the retired one) before installing the new one, so an identity is only ever
//! deleted after its successor was used successfully. A failure (service unreachable, refused,
//! bad chain) leaves the current identity as it was and the request pending.

use std::sync::Arc;

use dps_device::{Assignment, Attestation, Error, ProvisioningClient, RenewalOptions};
use rustls_pki_types::CertificateDer;

use crate::{Generation, IssuedX509, Store};

/// What a flow produced: the generation now current, and the assignment (DPS flows).
#[derive(Debug)]
pub struct Issued {
    /// The generation now current.
    pub generation: Generation,
    /// The assignment DPS answered with (`None` for a renewal through the hub).
    pub assignment: Option<Assignment>,
}

fn chain_der(chain: &[Vec<u8>]) -> Vec<CertificateDer<'static>> {
    chain.iter().map(|c| CertificateDer::from(c.clone())).collect()
}

/// The current issued identity as an attestation (re-registration, hub renewal).
pub(crate) fn current_identity(store: &Store) -> Result<Arc<IssuedX509>, Error> {
    let identity = Arc::new(IssuedX509::new(store.clone()));
    store.current()?;
    Ok(identity)
}

/// Register with DPS sending the CSR of a new key, and install the issued chain. With
/// `attestation` `None` the current issued identity authenticates (re-registration).
pub async fn register(
    store: &Store,
    client: &ProvisioningClient,
    attestation: Option<&Attestation>,
    payload: Option<serde_json::Value>,
) -> Result<Issued, Error> {
    let own = match attestation {
        Some(_) => None,
        None => Some(Attestation::X509(current_identity(store)?)),
    };
    let attestation = attestation
        .or(own.as_ref())
        .ok_or_else(|| Error::Internal("no attestation".into()))?;
    let csr = store.begin()?;
    let registration_id = store.registration_id().to_string();
    let assignment = client
        .register_with_csr(attestation, Some(&registration_id), payload, &csr)
        .await?;
    let chain = assignment
        .issued_certificate_chain
        .clone()
        .ok_or_else(|| Error::Internal("register_with_csr returned no chain".into()))?;
    dps_device::verify_issued_chain(&chain, &csr, &registration_id)?;
    if own.is_some() {
        store.confirm()?;
    }
    let generation = store.install(&chain_der(&chain))?;
    Ok(Issued {
        generation,
        assignment: Some(assignment),
    })
}

/// Renew over IoT Hub `$iothub/credentials` with the current identity: `hub` is the assigned
/// hub, `endpoint` where to connect (`host[:port]`), `device_id` the hub's device id.
pub async fn renew_via_hub(
    store: &Store,
    hub: &str,
    endpoint: &str,
    device_id: &str,
    roots: rustls::RootCertStore,
    options: &RenewalOptions,
) -> Result<Issued, Error> {
    let identity = current_identity(store)?;
    let csr = store.begin()?;
    let chain = dps_device::renew_certificate(hub, endpoint, device_id, identity, roots, &csr, options).await?;
    dps_device::verify_issued_chain(&chain, &csr, store.registration_id())?;
    store.confirm()?;
    let generation = store.install(&chain_der(&chain))?;
    Ok(Issued {
        generation,
        assignment: None,
    })
}

/// Run a flow on a private current-thread runtime (for programs without one, like hsmctl).
pub fn block_on<T>(f: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the tokio runtime: {e}")))?
        .block_on(f)
}
