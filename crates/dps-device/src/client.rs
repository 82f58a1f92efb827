//! The client: its public calls (register, register with a CSR, registration status lookup) and
//! what they check before any connection. The exchanges themselves are in `flow.rs`.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dps_wire::device::{DeviceRegistration, DeviceRegistrationResult, TpmAttestation};
use serde_json::Value;
use tokio::time::Instant;

use crate::dispatch::Session;
use crate::error::protocol;
use crate::flow;
use crate::session::Connect;
use crate::{
    Assignment, Attestation, Error, ProvisioningClient, Proxy, Registration, Transport, blocking_task, issuance,
    with_tpm,
};

impl ProvisioningClient {
    /// Register with the registration id the attestation implies (x509: the leaf CN; symmetric key: the
    /// identity's id; TPM: derived from the endorsement key) and wait for the assignment.
    pub async fn register(&self, attestation: &Attestation, payload: Option<Value>) -> Result<Assignment, Error> {
        let request = Registration {
            payload,
            ..Registration::default()
        };
        self.register_with(attestation, &request).await
    }

    /// Like [`ProvisioningClient::register`], with an explicit registration id.
    pub async fn register_as(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        payload: Option<Value>,
    ) -> Result<Assignment, Error> {
        let request = Registration {
            registration_id: registration_id.map(str::to_string),
            payload,
            csr: None,
        };
        self.register_with(attestation, &request).await
    }

    /// Register and ask DPS for an operational certificate: `csr` is a DER PKCS#10 request (ECDSA P-384,
    /// the only key DPS issues to; CN = the registration id) sent as the body's `csr`; the assignment
    /// carries the `issuedCertificateChain` (an assignment without one is an error). The chain is not
    /// checked here: call [`crate::verify_issued_chain`] before storing or using it.
    pub async fn register_with_csr(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        payload: Option<Value>,
        csr: &[u8],
    ) -> Result<Assignment, Error> {
        let request = Registration {
            registration_id: registration_id.map(str::to_string),
            payload,
            csr: Some(csr.to_vec()),
        };
        self.register_with(attestation, &request).await
    }

    /// Register with everything `request` says and wait for the assignment. With a CSR the
    /// api-version is [`crate::ApiVersion::DEVICE_CSR`] unless the options set one, the CSR must be
    /// ECDSA P-384 (checked before anything is sent), and the assignment must carry an
    /// `issuedCertificateChain`.
    pub async fn register_with(&self, attestation: &Attestation, request: &Registration) -> Result<Assignment, Error> {
        let api_version = self.options.api_version_for(request.csr.is_some())?;
        if let Some(csr) = &request.csr {
            issuance::check_csr(csr)?;
        }
        if let Some(p) = &request.payload {
            if !p.is_object() {
                return Err(Error::InvalidRequest("the payload must be a JSON object".into()));
            }
        }
        self.check_transport(attestation)?;
        let proxy = self.proxy()?;
        let body = DeviceRegistration {
            registration_id: None,
            tpm: None,
            csr: request.csr.as_ref().map(|c| B64.encode(c)),
            payload: request.payload.clone(),
            extra: serde_json::Map::new(),
        };
        let wanted_chain = request.csr.is_some();
        let registration_id = request.registration_id.as_deref();
        let assignment = self
            .deadline(async |deadline, progress| {
                let (mut session, body, token) = self
                    .open(attestation, registration_id, body, &api_version, proxy.as_ref())
                    .await?;
                let assignment =
                    flow::register(self, &mut session, attestation, body, token, deadline, progress).await?;
                flow::close(self.transport, session, deadline).await;
                Ok(assignment)
            })
            .await?;
        if wanted_chain && assignment.issued_certificate_chain.is_none() {
            return Err(protocol(
                self.transport,
                "the service assigned the device without an issuedCertificateChain for the CSR",
            ));
        }
        Ok(assignment)
    }

    /// The registration state DPS holds for this device (`POST /{idScope}/registrations/{id}`, the
    /// device registration status lookup), without registering. HTTPS only (DPS has no MQTT topic for
    /// it); a TPM needs its identity key activated by an earlier registration.
    pub async fn registration_status(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
    ) -> Result<DeviceRegistrationResult, Error> {
        if !self.transport.supports_status_lookup() {
            return Err(Error::InvalidRequest(format!(
                "the registration status lookup is an HTTPS call: DPS has none over {}",
                self.transport
            )));
        }
        let api_version = self.options.api_version_for(false)?;
        let proxy = self.proxy()?;
        self.deadline(async |deadline, progress| {
            let (mut session, body, token) = self
                .open(
                    attestation,
                    registration_id,
                    DeviceRegistration::default(),
                    &api_version,
                    proxy.as_ref(),
                )
                .await?;
            let token = match (attestation, token) {
                (Attestation::Tpm(tpm), None) => {
                    let id = body.registration_id.clone().unwrap_or_default();
                    Some(self.tpm_token(&id, tpm).await?)
                }
                (_, token) => token,
            };
            let state = flow::status_lookup(self, &mut session, &body, token.as_deref(), deadline, progress).await?;
            flow::close(self.transport, session, deadline).await;
            Ok(state)
        })
        .await
    }

    fn check_transport(&self, attestation: &Attestation) -> Result<(), Error> {
        if let (Attestation::Tpm(_), false) = (attestation, self.transport.supports_tpm()) {
            let over = Transport::ALL
                .into_iter()
                .filter(|t| t.supports_tpm())
                .map(Transport::title);
            return Err(Error::InvalidRequest(format!(
                "TPM attestation is not supported over {}: this client takes it over {} only",
                self.transport,
                over.collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(())
    }

    /// Runs `f` within the overall timeout; a timeout says what the last answer was.
    async fn deadline<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: AsyncFnOnce(Instant, &Mutex<String>) -> Result<T, Error>,
    {
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        // What the last answer said, for the timeout message when a request is cut short.
        let progress = Mutex::new(String::new());
        match tokio::time::timeout_at(deadline, f(deadline, &progress)).await {
            Ok(result) => result,
            Err(_) => {
                let last = progress.lock().map(|p| p.clone()).unwrap_or_default();
                Err(Error::Timeout {
                    after: started.elapsed(),
                    detail: match last.is_empty() {
                        true => format!("the service did not answer over {} in time", self.transport),
                        false => format!("{last}; the next answer did not come in time"),
                    },
                })
            }
        }
    }

    /// The registration id, the TLS configuration, the SAS token of a symmetric key, and the
    /// connection: the body gets its `registrationId` (and a TPM's keys).
    async fn open(
        &self,
        attestation: &Attestation,
        registration_id: Option<&str>,
        mut body: DeviceRegistration,
        api_version: &crate::ApiVersion,
        proxy: Option<&Proxy>,
    ) -> Result<(Session, DeviceRegistration, Option<String>), Error> {
        let registration_id = match registration_id {
            Some(r) => r.to_string(),
            None => self.registration_id(attestation).await?,
        };
        if registration_id.is_empty() || registration_id.chars().any(char::is_control) {
            return Err(Error::InvalidRequest(format!(
                "registration id {registration_id:?} is empty or has control characters"
            )));
        }
        body.registration_id = Some(registration_id.clone());
        let mut tpm_keys = None;
        if let Attestation::Tpm(tpm) = attestation {
            let ek = with_tpm(tpm, |t| t.endorsement_key()).await?;
            let srk = with_tpm(tpm, |t| t.storage_root_key()).await?;
            body.tpm = Some(TpmAttestation {
                endorsement_key: B64.encode(&ek),
                storage_root_key: Some(B64.encode(&srk)),
                extra: serde_json::Map::new(),
            });
            tpm_keys = Some((tpm, ek, srk));
        }
        let identity = match attestation {
            Attestation::X509(x) => Some(x.clone()),
            _ => None,
        };
        let (roots, versions) = (self.roots.clone(), self.options.tls_versions);
        let tls = blocking_task(move || {
            tlsio_bridge::client_config(roots, identity.as_deref(), versions).map_err(Error::from)
        })
        .await?;
        let token = match attestation {
            Attestation::SymmetricKey(identity) => Some(self.sas_token(&registration_id, identity.clone()).await?),
            _ => None,
        };
        let session = Session::open(Connect {
            transport: self.transport,
            endpoint: &self.endpoint,
            id_scope: &self.id_scope,
            registration_id: &registration_id,
            tls: Arc::new(tls),
            password: token.as_deref(),
            user_agent: &self.options.user_agent,
            api_version: api_version.as_str(),
            proxy,
            // A transport that attests at connect (AMQP's SASL TPM) uses it; over HTTPS the challenge is a
            // 401 of the register request (`flow.rs`).
            tpm: tpm_keys.as_ref().map(|(tpm, ek, srk)| crate::amqp::TpmSasl {
                tpm,
                client: self,
                endorsement_key: ek,
                storage_root_key: srk,
            }),
        })
        .await?;
        // The token a TPM's activation at connect was admitted with signs its requests too.
        let token = token.or_else(|| session.tpm_token().map(str::to_string));
        Ok((session, body, token))
    }

    /// The proxy of the options, checked before any connection.
    fn proxy(&self) -> Result<Option<Proxy>, Error> {
        let Some(url) = &self.options.proxy else {
            return Ok(None);
        };
        if !self.transport.supports_proxy() {
            let over = Transport::ALL
                .into_iter()
                .filter(|t| t.supports_proxy())
                .map(Transport::title);
            return Err(Error::InvalidRequest(format!(
                "a proxy is supported over {}, not over {}",
                over.collect::<Vec<_>>().join(" and "),
                self.transport
            )));
        }
        let bad = |why: &str| Error::InvalidRequest(format!("proxy {}: {why}", redacted(url)));
        if url.scheme() != "http" {
            return Err(bad("only http:// proxies are supported (CONNECT)"));
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad("no host")),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad("the credentials are not UTF-8 once decoded"))
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => Some((decode(user)?, decode(password.unwrap_or_default())?)),
        };
        Ok(Some(Proxy {
            host,
            port: url.port_or_known_default().unwrap_or(80),
            credentials,
        }))
    }
}

/// The proxy URL without its password, for messages.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}
