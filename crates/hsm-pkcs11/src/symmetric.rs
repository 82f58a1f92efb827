//! A symmetric identity whose HMAC key (CKK_GENERIC_SECRET) never leaves the token.
//!
//! ```toml
//! [symmetric_key]
//! backend = "pkcs11"
//! registration_id = "device-0001"
//! key = "pkcs11:token=device;object=dps-key;type=secret-key?pin-source=file:/etc/device/pin"
//! module_path = "/usr/lib/softhsm/libsofthsm2.so"   # optional
//! pin_file = "/etc/device/pin"                      # when the URI has no pin-source
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use hsm_core::config::Section;
use hsm_core::{Error, Result, SasSigner, SymmetricIdentity};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::device;
use crate::objects::find_one;
use crate::token::Token;
use crate::uri::{ObjectType, Pkcs11Uri};
use crate::x509::configured_uri;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SymmetricParams {
    registration_id: String,
    key: String,
    module_path: Option<PathBuf>,
    pin_file: Option<PathBuf>,
}

/// A registration id and an HMAC-SHA256 key on a token.
pub struct Pkcs11Symmetric {
    registration_id: String,
    key: Pkcs11Secret,
}

impl Pkcs11Symmetric {
    /// Open from the `[symmetric]` configuration section with `backend = "pkcs11"`.
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: SymmetricParams = section.parse()?;
        if p.registration_id.is_empty() {
            return Err(section.error("registration_id", "must not be empty"));
        }
        let uri = configured_uri(section, "key", &p.key, p.module_path.as_deref(), p.pin_file.as_deref())?;
        let key = Pkcs11Secret::open(&uri).map_err(|e| section.context("key", e))?;
        Ok(Pkcs11Symmetric {
            registration_id: p.registration_id,
            key,
        })
    }

    /// The identity of `registration_id` whose key is `key`.
    pub fn new(registration_id: String, key: Pkcs11Secret) -> Self {
        Pkcs11Symmetric { registration_id, key }
    }

    /// The HMAC key.
    pub fn secret(&self) -> &Pkcs11Secret {
        &self.key
    }
}

impl SymmetricIdentity for Pkcs11Symmetric {
    fn registration_id(&self) -> Result<String> {
        Ok(self.registration_id.clone())
    }

    fn symmetric_key(&self) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::unsupported(
            "the PKCS#11 backend",
            "reading the symmetric key (it never leaves the token; sign with hmac_sha256 / sign_with_identity)",
        ))
    }

    fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]> {
        self.key.hmac_sha256(data)
    }
}

/// What the SDK's TPM-shaped interface needs for IoT Hub SAS tokens: `sign_with_identity`, an
/// HMAC on the token (`[tpm] backend = "pkcs11"`).
impl SasSigner for Pkcs11Symmetric {
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>> {
        Ok(self.key.hmac_sha256(data)?.to_vec())
    }
}

/// A CKK_GENERIC_SECRET key on a token, used for CKM_SHA256_HMAC.
pub struct Pkcs11Secret {
    token: Arc<Token>,
    uri: Pkcs11Uri,
    handle: Mutex<Option<(u64, ObjectHandle)>>,
}

impl std::fmt::Debug for Pkcs11Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Secret")
            .field("uri", &self.uri.to_token_string())
            .finish_non_exhaustive()
    }
}

impl Pkcs11Secret {
    /// Open the secret key a URI names (`type=secret-key` is implied).
    pub fn open(uri: &Pkcs11Uri) -> Result<Self> {
        let mut uri = uri.clone();
        match uri.object_type {
            None => uri.object_type = Some(ObjectType::SecretKey),
            Some(ObjectType::SecretKey) => {}
            Some(other) => {
                return Err(Error::parse(
                    "PKCS#11 URI attribute `type`",
                    format!("an HMAC key must be `type=secret-key`, not `{}`", other.as_str()),
                ));
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(Error::parse(
                "PKCS#11 URI",
                format!("name the key with `object` (label) and/or `id`{}", uri.vendor_note()),
            ));
        }
        let token = Token::open(&uri, None)?;
        let found = token.run("open secret key", |session, generation| {
            Ok((generation, find_one(session, &uri, &token)?))
        })?;
        Ok(Pkcs11Secret {
            token,
            uri,
            handle: Mutex::new(Some(found)),
        })
    }

    /// HMAC-SHA256 of `data`, computed on the token.
    pub fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]> {
        let mac = self.token.run("HMAC-SHA256", |session, generation| {
            let cached = self
                .handle
                .lock()
                .ok()
                .and_then(|c| *c)
                .filter(|(g, _)| *g == generation);
            let handle = match cached {
                Some((_, h)) => h,
                None => {
                    let h = find_one(session, &self.uri, &self.token)?;
                    if let Ok(mut c) = self.handle.lock() {
                        *c = Some((generation, h));
                    }
                    h
                }
            };
            session
                .sign(&Mechanism::Sha256Hmac, handle, data)
                .map_err(|e| device("C_Sign (CKM_SHA256_HMAC)", e))
        })?;
        <[u8; 32]>::try_from(mac.as_slice())
            .map_err(|_| Error::parse("CKM_SHA256_HMAC result", format!("{} bytes, expected 32", mac.len())))
    }
}
