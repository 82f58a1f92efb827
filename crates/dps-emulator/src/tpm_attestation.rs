//! TPM attestation (the SDK's "sastoken" type), as DPS does it:
//!
//! 1. `PUT register` with `"tpm": {"endorsementKey", "storageRootKey"}` (base64 `TPM2B_PUBLIC`) and no
//!    Authorization: the EK must equal the enrollment's; the answer is `401 {"authenticationKey", "keyName"}`,
//!    an activation blob built for real (`hsm_tpm::service`: MakeCredential to the EK, a fresh HMAC key
//!    duplicated to the SRK with an AES-128-CFB inner wrapper).
//! 2. The same request with a SAS token signed (inside the device's TPM) with that HMAC key: verified, then
//!    `202` as for the other types; polls are verified with the same key.
//! 3. The assignment carries `registrationState.tpm.authenticationKey`: a second blob (the hub key), which
//!    the SDK activates again. The key is recorded with the registration state (`store.rs`, durable), and
//!    the emulator's IoT Hub checks the device's SAS tokens with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use dps_wire::device::{TpmChallenge, TpmRegistrationResult};
use zeroize::Zeroizing;

use crate::Error;
use crate::config::{EmulatorConfig, Enrollment};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The HMAC key a TPM device signs its IoT Hub SAS tokens with.
pub(crate) type HubKey = Zeroizing<Vec<u8>>;

/// What the last challenge issued to a device.
struct Issued {
    ek: Vec<u8>,
    srk: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

/// The outcome of a TPM registration request.
pub(crate) enum Step {
    /// Answer 401 with this body (the activation challenge).
    Challenge(TpmChallenge),
    /// The SAS token verified with the issued key.
    Admitted,
}

pub(crate) struct TpmAttestation {
    id_scope: String,
    enrollments: HashMap<String, Vec<u8>>,
    /// Shared by the trust stores rebuilt after enrollment changes, so a challenge outlives a rebuild.
    issued: Arc<Mutex<HashMap<String, Issued>>>,
}

impl TpmAttestation {
    pub(crate) fn new(config: &EmulatorConfig, source: &str) -> Result<Self, Error> {
        let mut enrollments = HashMap::new();
        for (i, e) in config.enrollments.iter().enumerate() {
            if let Enrollment::TpmIndividual {
                registration_id,
                endorsement_key,
            } = e
            {
                let ek = crate::config::decode_tpm_public("endorsement key", endorsement_key)
                    .map_err(|m| Error::config(source, format!("enrollment[{i}].endorsement_key"), m))?;
                enrollments.insert(registration_id.clone(), ek);
            }
        }
        Ok(TpmAttestation {
            id_scope: config.id_scope.clone(),
            enrollments,
            issued: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Keep the challenges issued by `previous` (a trust store this one replaces).
    pub(crate) fn share_issued(&mut self, previous: &TpmAttestation) {
        self.issued = previous.issued.clone();
    }

    pub(crate) fn is_enrolled(&self, registration_id: &str) -> bool {
        self.enrollments.contains_key(registration_id)
    }

    fn issued(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A registration request whose body has a `tpm` node.
    pub(crate) fn register(
        &self,
        registration_id: &str,
        tpm: &dps_wire::device::TpmAttestation,
        authorization: Option<&str>,
    ) -> Result<Step, String> {
        let enrolled = self
            .enrollments
            .get(registration_id)
            .ok_or_else(|| format!("no TPM enrollment for registration id '{registration_id}'"))?;
        let ek = crate::config::decode_tpm_public("endorsementKey", &tpm.endorsement_key)?;
        let srk = tpm
            .storage_root_key
            .as_deref()
            .ok_or_else(|| "the tpm node has no string field storageRootKey".to_string())?;
        let srk = crate::config::decode_tpm_public("storageRootKey", srk)?;
        if &ek != enrolled {
            return Err(format!(
                "endorsementKey does not match the enrollment tpm-individual '{registration_id}'"
            ));
        }
        match authorization {
            None => {
                let activation = hsm_tpm::service::make_activation(&ek, &srk).map_err(|e| e.to_string())?;
                let mut body = TpmChallenge {
                    authentication_key: B64.encode(&activation.blob),
                    extra: serde_json::Map::new(),
                };
                // The C SDK's service answers name the key; the spec does not model it.
                body.extra.insert("keyName".into(), "registration".into());
                self.issued().insert(
                    registration_id.to_string(),
                    Issued {
                        ek,
                        srk,
                        key: activation.key,
                    },
                );
                Ok(Step::Challenge(body))
            }
            Some(header) => {
                self.verify(registration_id, header)?;
                Ok(Step::Admitted)
            }
        }
    }

    /// Verify a SAS token against the key issued to `registration_id`.
    pub(crate) fn verify(&self, registration_id: &str, header: &str) -> Result<(), String> {
        let token = crate::device_sas::check_sas_claims(&self.id_scope, registration_id, header)?;
        let issued = self.issued();
        let entry = issued.get(registration_id).ok_or_else(|| {
            format!("no authenticationKey was issued to '{registration_id}': register without a token first")
        })?;
        if token.verify(&entry.key) {
            Ok(())
        } else {
            Err(format!(
                "SAS signature does not match the key issued to TPM registration '{registration_id}'"
            ))
        }
    }

    /// The `registrationState.tpm` node of an assignment: a fresh key activated to the same EK and SRK
    /// (the hub key: the device signs its IoT Hub SAS tokens with it), with that key for the store.
    pub(crate) fn assignment(&self, registration_id: &str) -> Result<Option<(TpmRegistrationResult, HubKey)>, String> {
        let issued = self.issued();
        let Some(entry) = issued.get(registration_id) else {
            return Ok(None);
        };
        let activation = hsm_tpm::service::make_activation(&entry.ek, &entry.srk).map_err(|e| e.to_string())?;
        let node = TpmRegistrationResult {
            authentication_key: Some(B64.encode(&activation.blob)),
            extra: serde_json::Map::new(),
        };
        Ok(Some((node, activation.key)))
    }
}
