//! [`ProvisioningClient`] itself (endpoint, id scope, transport, trust roots, options) and what both
//! its public calls (`client.rs`) and the exchanges of a registration (`flow.rs`) derive from it: the
//! registration id an attestation implies, the SAS tokens a symmetric key or a TPM signs, the wait
//! before a poll or a retry.

use std::sync::Arc;
use std::time::Duration;

use hsm_core::SymmetricIdentity;
use hsm_core::sas::Audience;

use crate::{Attestation, DEFAULT_RETRY, Error, Options, SharedTpm, Transport, blocking_task, with_tpm};

/// A DPS client for one endpoint and id scope.
#[derive(Debug)]
pub struct ProvisioningClient {
    pub(crate) endpoint: String,
    pub(crate) id_scope: String,
    pub(crate) transport: Transport,
    pub(crate) roots: rustls::RootCertStore,
    pub(crate) options: Options,
}

impl ProvisioningClient {
    /// The low-level form: every piece given, no default. [`ProvisioningClient::builder`] is the usual
    /// way (it starts from the global endpoint, HTTPS, the Mozilla roots and [`Options::default`],
    /// and ends here). `endpoint` is `host[:port]` (the port defaults to the transport's); `roots`
    /// verify the service.
    pub fn new(
        endpoint: &str,
        id_scope: &str,
        transport: Transport,
        roots: rustls::RootCertStore,
        options: Options,
    ) -> Self {
        ProvisioningClient {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            id_scope: id_scope.to_string(),
            transport,
            roots,
            options,
        }
    }

    /// The options the client was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The wait before the next poll or retry: Retry-After within the floor and ceiling.
    pub(crate) fn retry(&self, retry_after: Option<u64>) -> Duration {
        let wanted = retry_after.map_or(DEFAULT_RETRY, Duration::from_secs);
        wanted.min(self.options.retry_ceiling).max(self.options.retry_floor)
    }

    /// The registration id the attestation implies (x509: the leaf CN; symmetric key: the identity's
    /// id; TPM: derived from the endorsement key).
    pub(crate) async fn registration_id(&self, attestation: &Attestation) -> Result<String, Error> {
        match attestation {
            Attestation::X509(x) => {
                let x = x.clone();
                blocking_task(move || x.common_name().map_err(Error::from)).await
            }
            Attestation::SymmetricKey(s) => {
                let s = s.clone();
                blocking_task(move || s.registration_id().map_err(Error::from)).await
            }
            Attestation::Tpm(tpm) => {
                let ek = with_tpm(tpm, |t| t.endorsement_key()).await?;
                Ok(hsm_tpm::registration_id(&ek))
            }
        }
    }

    fn sas_expiry(&self) -> u64 {
        self.options
            .sas_expiry
            .unwrap_or_else(|| hsm_core::sas::expiry_in(self.options.sas_ttl))
    }

    fn audience(&self, registration_id: &str) -> Audience {
        Audience::Dps {
            id_scope: self.id_scope.clone(),
            registration_id: registration_id.to_string(),
        }
    }

    /// A SAS token signed with the symmetric key's HMAC (the key itself is never read).
    pub(crate) async fn sas_token(
        &self,
        registration_id: &str,
        identity: Arc<dyn SymmetricIdentity>,
    ) -> Result<String, Error> {
        let (aud, expiry) = (self.audience(registration_id), self.sas_expiry());
        let to_sign = aud.string_to_sign(expiry);
        let mac = blocking_task(move || identity.hmac_sha256(to_sign.as_bytes()).map_err(Error::from)).await?;
        Ok(aud.token(&mac, expiry))
    }

    /// A SAS token signed inside the TPM with its (activated) identity key.
    pub(crate) async fn tpm_token(&self, registration_id: &str, tpm: &SharedTpm) -> Result<String, Error> {
        let (aud, expiry) = (self.audience(registration_id), self.sas_expiry());
        let to_sign = aud.string_to_sign(expiry);
        let mac = with_tpm(tpm, move |t| t.sign_with_identity(to_sign.as_bytes())).await?;
        Ok(aud.token(&mac, expiry))
    }
}
