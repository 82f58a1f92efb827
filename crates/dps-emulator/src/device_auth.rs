//! Authentication of a device against the enrollments: SAS tokens, client certificates, and (through
//! `tpm_attestation.rs`) TPM-activated keys.

use std::collections::HashMap;
use std::sync::Arc;

use hsm_core::sas::{SasToken, derive_device_key};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use zeroize::Zeroizing;

use crate::config::{EmulatorConfig, Enrollment};
use crate::{Error, tls};

/// Which enrollment admitted a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admitted {
    X509Individual,
    X509Group(String),
    SymmetricIndividual,
    SymmetricGroup(String),
    TpmIndividual,
}

/// Why a request was refused (the message goes to the device in the 401 body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denied(pub(crate) String);

struct X509Anchor {
    certificates: Vec<CertificateDer<'static>>,
    verifier: Arc<dyn ClientCertVerifier>,
}

struct SymmetricKeys {
    primary: Zeroizing<String>,
    secondary: Option<Zeroizing<String>>,
}

impl SymmetricKeys {
    fn new(source: &str, prefix: &str, primary: &str, secondary: Option<&str>) -> Result<Self, Error> {
        let check = |name: &str, v: &str| {
            hsm_core::sas::decode_key(name, v)
                .map(|_| ())
                .map_err(|e| Error::config(source, format!("{prefix}.{name}"), e.to_string()))
        };
        check("primary_key", primary)?;
        if let Some(s) = secondary {
            check("secondary_key", s)?;
        }
        Ok(SymmetricKeys {
            primary: Zeroizing::new(primary.to_string()),
            secondary: secondary.map(|s| Zeroizing::new(s.to_string())),
        })
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary.as_str()).chain(self.secondary.as_deref().map(String::as_str))
    }
}

/// The enrollments, prepared for checks: decoded keys and one webpki verifier per x509 enrollment.
pub(crate) struct Trust {
    id_scope: String,
    x509_individual: HashMap<String, X509Anchor>,
    x509_groups: Vec<(String, X509Anchor)>,
    symmetric_individual: HashMap<String, SymmetricKeys>,
    symmetric_groups: Vec<(String, SymmetricKeys)>,
    pub(crate) tpm: crate::tpm_attestation::TpmAttestation,
}

impl Trust {
    pub(crate) fn new(config: &EmulatorConfig) -> Result<Self, Error> {
        let source = "emulator configuration";
        config.validate(source)?;
        let mut trust = Trust {
            id_scope: config.id_scope.clone(),
            x509_individual: HashMap::new(),
            x509_groups: Vec::new(),
            symmetric_individual: HashMap::new(),
            symmetric_groups: Vec::new(),
            tpm: crate::tpm_attestation::TpmAttestation::new(config, source)?,
        };
        for (i, e) in config.enrollments.iter().enumerate() {
            let prefix = format!("enrollment[{i}]");
            match e {
                Enrollment::X509Individual {
                    registration_id,
                    certificate,
                } => {
                    let anchor = anchor(source, &format!("{prefix}.certificate"), certificate)?;
                    trust.x509_individual.insert(registration_id.clone(), anchor);
                }
                Enrollment::X509Group { name, ca } => {
                    let anchor = anchor(source, &format!("{prefix}.ca"), ca)?;
                    trust.x509_groups.push((name.clone(), anchor));
                }
                Enrollment::SymmetricIndividual {
                    registration_id,
                    primary_key,
                    secondary_key,
                } => {
                    let keys = SymmetricKeys::new(source, &prefix, primary_key, secondary_key.as_deref())?;
                    trust.symmetric_individual.insert(registration_id.clone(), keys);
                }
                Enrollment::SymmetricGroup {
                    name,
                    primary_key,
                    secondary_key,
                } => {
                    let keys = SymmetricKeys::new(source, &prefix, primary_key, secondary_key.as_deref())?;
                    trust.symmetric_groups.push((name.clone(), keys));
                }
                // Checked by `tpm::TpmAttestation`.
                Enrollment::TpmIndividual { .. } => {}
            }
        }
        Ok(trust)
    }

    /// Authenticate a request for `registration_id`: a SAS token when an Authorization header is present,
    /// else the client certificate chain of the TLS connection.
    pub(crate) fn authenticate(
        &self,
        registration_id: &str,
        authorization: Option<&str>,
        peer_chain: Option<&[CertificateDer<'static>]>,
    ) -> Result<Admitted, Denied> {
        if self.tpm.is_enrolled(registration_id) {
            let header = authorization.ok_or_else(|| {
                Denied("no credentials: a TPM registration needs a SAS token in the Authorization header".into())
            })?;
            return self
                .tpm
                .verify(registration_id, header)
                .map(|()| Admitted::TpmIndividual)
                .map_err(Denied);
        }
        if let Some(header) = authorization {
            return self.check_sas(registration_id, header);
        }
        match peer_chain {
            Some(chain) if !chain.is_empty() => self.check_x509(registration_id, chain),
            _ => Err(Denied(
                "no credentials: send a SAS token in the Authorization header or present a client certificate"
                    .to_string(),
            )),
        }
    }

    fn check_sas(&self, registration_id: &str, header: &str) -> Result<Admitted, Denied> {
        let token = crate::device_sas::check_sas_claims(&self.id_scope, registration_id, header).map_err(Denied)?;
        self.verify_device_key(registration_id, &token)
    }

    /// Whether `token` (its claims already checked) is signed with the device key of `registration_id`: its
    /// individual enrollment's primary or secondary key, or a key derived from a symmetric group's. IoT Hub
    /// checks a device's token with the key DPS registered it with. TPM devices are refused: the hub key
    /// their activation imports is not modelled here.
    pub(crate) fn verify_device_key(&self, registration_id: &str, token: &SasToken) -> Result<Admitted, Denied> {
        if self.tpm.is_enrolled(registration_id) {
            return Err(Denied(format!(
                "'{registration_id}' is TPM-enrolled: its SAS tokens are checked with the hub key its assignment \
                 activated, not an enrollment key"
            )));
        }
        if let Some(keys) = self.symmetric_individual.get(registration_id) {
            return match keys.keys().any(|k| verify_b64(token, k)) {
                true => Ok(Admitted::SymmetricIndividual),
                false => Err(Denied(format!(
                    "SAS signature does not match the primary or secondary key of enrollment \
                     symmetric-individual '{registration_id}'"
                ))),
            };
        }
        if self.symmetric_groups.is_empty() {
            return Err(Denied(format!(
                "no symmetric key enrollment for registration id '{registration_id}'"
            )));
        }
        for (name, keys) in &self.symmetric_groups {
            for group_key in keys.keys() {
                let Ok(device_key) = derive_device_key(group_key, registration_id) else {
                    continue;
                };
                if token.verify(&device_key) {
                    return Ok(Admitted::SymmetricGroup(name.clone()));
                }
            }
        }
        Err(Denied(format!(
            "SAS signature does not match a key derived for '{registration_id}' from any symmetric-group \
             enrollment (tried {})",
            names(&self.symmetric_groups)
        )))
    }

    fn check_x509(&self, registration_id: &str, chain: &[CertificateDer<'static>]) -> Result<Admitted, Denied> {
        let (leaf, intermediates) = match chain.split_first() {
            Some(split) => split,
            None => return Err(Denied("no client certificate".to_string())),
        };
        let cn = hsm_core::pem::common_name(leaf)
            .map_err(|e| Denied(format!("client certificate has no usable common name: {e}")))?;
        if cn != registration_id {
            return Err(Denied(format!(
                "certificate CN '{cn}' does not match registration id '{registration_id}'"
            )));
        }
        let now = UnixTime::now();
        if let Some(anchor) = self.x509_individual.get(registration_id) {
            if anchor.certificates.iter().any(|c| c == leaf) {
                return check_validity(leaf).map(|()| Admitted::X509Individual);
            }
            return anchor
                .verifier
                .verify_client_cert(leaf, intermediates, now)
                .map(|_| Admitted::X509Individual)
                .map_err(|e| {
                    Denied(format!(
                        "certificate chain does not verify to any enrollment: {} (tried x509-individual '{}')",
                        describe_tls_error(&e),
                        registration_id
                    ))
                });
        }
        if self.x509_groups.is_empty() {
            return Err(Denied(format!(
                "no x509 enrollment for registration id '{registration_id}'"
            )));
        }
        let mut failures = Vec::new();
        for (name, anchor) in &self.x509_groups {
            match anchor.verifier.verify_client_cert(leaf, intermediates, now) {
                Ok(_) => return Ok(Admitted::X509Group(name.clone())),
                Err(e) => failures.push(describe_tls_error(&e)),
            }
        }
        failures.dedup();
        Err(Denied(format!(
            "certificate chain does not verify to any enrollment: {} (tried {})",
            failures.join("; "),
            names(&self.x509_groups)
        )))
    }
}

fn names<T>(items: &[(String, T)]) -> String {
    items
        .iter()
        .map(|(n, _)| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verify_b64(token: &SasToken, key_b64: &str) -> bool {
    hsm_core::sas::decode_key("key", key_b64).is_ok_and(|k| token.verify(&k))
}

fn anchor(source: &str, key: &str, certificates: &[CertificateDer<'static>]) -> Result<X509Anchor, Error> {
    let mut roots = RootCertStore::empty();
    for (i, c) in certificates.iter().enumerate() {
        roots.add(c.clone()).map_err(|e| {
            Error::config(
                source,
                key,
                format!("certificate {} cannot be a trust anchor: {e}", i + 1),
            )
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
        .build()
        .map_err(|e| Error::config(source, key, format!("cannot build a verifier: {e}")))?;
    Ok(X509Anchor {
        certificates: certificates.to_vec(),
        verifier,
    })
}

/// A webpki error as a short reason: `UnknownIssuer`, `certificate expired: ...`.
fn describe_tls_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => c.to_string(),
        other => other.to_string(),
    }
}

fn check_validity(leaf: &CertificateDer<'_>) -> Result<(), Denied> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| Denied(format!("client certificate is not valid X.509: {e}")))?;
    let validity = cert.validity();
    if validity.is_valid() {
        Ok(())
    } else {
        Err(Denied(format!(
            "client certificate is not valid now (valid from {} to {})",
            validity.not_before, validity.not_after
        )))
    }
}
