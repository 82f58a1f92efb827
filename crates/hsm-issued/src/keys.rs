//! Where the keys of an issued identity are made: a file (development), or a PKCS#11 token.
//! Each generation's key has a name derived from the registration id and the generation
//! number, so a key left over by a crash before the state file named it is found and removed.

use std::path::{Path, PathBuf};

use hsm_core::token::KeyToken;
use hsm_core::{Error, Result};

use crate::files::remove_file;

/// How many generations below the last one a sweep looks at on a token.
pub(crate) const SWEEP_WINDOW: u64 = 8;

/// A device kept open (see [`KeySource::hold`]); held, never read.
#[derive(Debug, Clone)]
pub struct Hold(
    #[cfg(feature = "pkcs11")]
    #[allow(dead_code)]
    std::sync::Arc<hsm_pkcs11::Token>,
);

/// Where new keys go.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// EC P-384 PEM files (mode 0600) in the store directory: development only.
    File,
    /// EC P-384 key pairs on the token a PKCS#11 URI names (module-path and pin-source in the
    /// URI, no pin-value); the certificate is stored as a token object with the key's CKA_ID.
    #[cfg(feature = "pkcs11")]
    Pkcs11(Box<hsm_pkcs11::Pkcs11Uri>),
    /// EC P-384 keys in a TPM, under the SRK, as key blob files in the store directory; the
    /// TCTI (None: the default one).
    #[cfg(feature = "tpm")]
    Tpm(Option<String>),
}

impl KeySource {
    /// `"file"`, a `pkcs11:` URI naming a token, or `"tpm"` / `"tpm:tcti=<TCTI>"`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        if t == "file" {
            return Ok(KeySource::File);
        }
        #[cfg(feature = "tpm")]
        if t == "tpm" {
            return Ok(KeySource::Tpm(None));
        }
        #[cfg(feature = "tpm")]
        if let Some(tcti) = t.strip_prefix("tpm:tcti=") {
            if tcti.trim().is_empty() {
                return Err(Error::parse("key source", "`tpm:tcti=` is empty"));
            }
            return Ok(KeySource::Tpm(Some(tcti.to_string())));
        }
        #[cfg(feature = "pkcs11")]
        if t.starts_with("pkcs11:") {
            let uri = hsm_pkcs11::Pkcs11Uri::parse(t)?;
            uri.reject_pin_value("the key source of an issued identity")?;
            if uri.names_object() {
                return Err(Error::parse(
                    "key source",
                    "name the token only: each generation's key gets its own label",
                ));
            }
            return Ok(KeySource::Pkcs11(Box::new(uri)));
        }
        Err(Error::parse(
            "key source",
            format!(
                "`{t}`: expected \"file\"{}",
                match (cfg!(feature = "pkcs11"), cfg!(feature = "tpm")) {
                    (true, true) => ", a pkcs11: URI naming a token, \"tpm\" or \"tpm:tcti=...\"",
                    (true, false) => " or a pkcs11: URI naming a token",
                    (false, true) => ", \"tpm\" or \"tpm:tcti=...\"",
                    (false, false) => "",
                }
            ),
        ))
    }

    /// What keeps the device open while a store is: for a token, its shared token object, so
    /// every tool and key of the store uses one login and one session pool (a token whose last
    /// session closes logs the application out).
    pub fn hold(&self) -> Result<Option<Hold>> {
        match self {
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(uri) => Ok(Some(Hold(hsm_pkcs11::Token::open(uri, None)?))),
            _ => Ok(None),
        }
    }

    /// The label (PKCS#11) or file stem of generation `generation`.
    pub fn name(registration_id: &str, generation: u64) -> String {
        format!("issued-{registration_id}-{generation}")
    }

    /// Make a new EC P-384 key for `generation`; returns its key token. A leftover of an
    /// earlier attempt at the same generation (never named by the state) is removed first.
    pub fn generate(&self, dir: &Path, registration_id: &str, generation: u64) -> Result<String> {
        self.remove(dir, registration_id, generation)?;
        let name = Self::name(registration_id, generation);
        match self {
            KeySource::File => {
                let path = key_file(dir, &name);
                let pem = generate_p384_pem()?;
                crate::files::write_new(&path, pem.as_bytes(), 0o600)?;
                Ok(format!("file:{}", path.display()))
            }
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(token) => {
                let mut uri = (**token).clone();
                uri.object = Some(name);
                uri.object_type = None;
                let key = hsm_pkcs11::tools::generate_key_pair(
                    &uri.to_token_string(),
                    hsm_core::KeyAlgorithm::Ec(hsm_core::Curve::P384),
                )?;
                Ok(key.to_token_string())
            }
            #[cfg(feature = "tpm")]
            KeySource::Tpm(tcti) => {
                let tcti = tcti.clone().unwrap_or_else(hsm_tpm::default_tcti);
                let conn = hsm_tpm::TpmConn::shared(&tcti)?;
                let path = blob_file(dir, &name);
                hsm_tpm::generate_key_on(conn, hsm_tpm::KeyLocation::Blob(path.clone()), hsm_core::Curve::P384)?;
                hsm_tpm::SignerToken {
                    location: hsm_tpm::KeyLocation::Blob(path),
                    tcti: Some(tcti),
                }
                .encode()
            }
        }
    }

    /// Store the leaf next to the key where the device keeps certificates (a token object
    /// with the key's id); a no-op for files, whose chain file is the store.
    #[cfg_attr(not(feature = "pkcs11"), allow(unused_variables))]
    pub(crate) fn store_certificate(&self, key_token: &str, leaf: &[u8]) -> Result<()> {
        match KeyToken::decode(key_token)? {
            KeyToken::File(_) | KeyToken::Tpm(_) => Ok(()),
            #[cfg(feature = "pkcs11")]
            KeyToken::Pkcs11(text) => {
                let mut uri = hsm_pkcs11::Pkcs11Uri::parse(&text)?;
                uri.object_type = Some(hsm_pkcs11::ObjectType::Cert);
                hsm_pkcs11::tools::destroy_objects(&uri.to_token_string())?;
                hsm_pkcs11::tools::import_certificate(&uri.to_token_string(), leaf).map(|_| ())
            }
            _ => Err(Error::unsupported(
                "an issued identity",
                format!("the key `{key_token}`"),
            )),
        }
    }

    /// The generations up to `last` that may have a key here: for files, the key files in
    /// `dir`; for a token (which cannot search by label prefix, and may hold many objects),
    /// the `SWEEP_WINDOW` (8) generations below `last` (a crash leaves at most the one replaced
    /// identity behind, always a recent one).
    pub fn generations(&self, dir: &Path, registration_id: &str, last: u64) -> Result<Vec<u64>> {
        match self {
            KeySource::File => key_files(dir, registration_id, ".key.pem", last),
            #[cfg(feature = "tpm")]
            KeySource::Tpm(_) => key_files(dir, registration_id, ".tpmkey", last),
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(_) => Ok((last.saturating_sub(SWEEP_WINDOW).max(1)..=last).collect()),
        }
    }

    /// Delete every object of `generation`: key pair and certificate objects, or the key file.
    /// Missing ones are not an error (a crash may have removed part of them already).
    pub fn remove(&self, dir: &Path, registration_id: &str, generation: u64) -> Result<()> {
        let name = Self::name(registration_id, generation);
        match self {
            KeySource::File => remove_file(&key_file(dir, &name)),
            #[cfg(feature = "tpm")]
            KeySource::Tpm(_) => remove_file(&blob_file(dir, &name)),
            #[cfg(feature = "pkcs11")]
            KeySource::Pkcs11(token) => {
                let mut uri = (**token).clone();
                uri.object = Some(name);
                uri.object_type = None;
                hsm_pkcs11::tools::destroy_objects(&uri.to_token_string()).map(|_| ())
            }
        }
    }
}

fn key_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.key.pem"))
}

#[cfg(feature = "tpm")]
fn blob_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.tpmkey"))
}

/// The generations up to `last` with a key file (`suffix`) in `dir`.
fn key_files(dir: &Path, registration_id: &str, suffix: &str, last: u64) -> Result<Vec<u64>> {
    let prefix = format!("{}-", KeySource::name(registration_id, 0).trim_end_matches("-0"));
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list the store", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list the store", dir, e))?;
        found.extend(
            entry
                .file_name()
                .to_string_lossy()
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n <= last),
        );
    }
    Ok(found)
}

/// Delete the key a key token names (with its public key and certificate objects on a
/// token); a missing key is not an error.
pub(crate) fn remove_key(key_token: &str) -> Result<()> {
    match KeyToken::decode(key_token)? {
        KeyToken::File(path) => remove_file(&path),
        #[cfg(feature = "pkcs11")]
        KeyToken::Pkcs11(text) => {
            let mut uri = hsm_pkcs11::Pkcs11Uri::parse(&text)?;
            uri.object_type = None;
            uri.id = None;
            if uri.object.is_none() {
                return Err(Error::parse("issued key", format!("`{text}` names no label")));
            }
            hsm_pkcs11::tools::destroy_objects(&uri.to_token_string()).map(|_| ())
        }
        #[cfg(feature = "tpm")]
        KeyToken::Tpm(token) => match token.location {
            hsm_tpm::KeyLocation::Blob(path) => remove_file(&path),
            hsm_tpm::KeyLocation::Persistent(h) => Err(Error::unsupported(
                "an issued identity",
                format!("deleting the persistent TPM key 0x{h:08x} (issued keys are blobs)"),
            )),
        },
        _ => Err(Error::unsupported(
            "an issued identity",
            format!("the key `{key_token}`"),
        )),
    }
}

/// A new EC P-384 key (ring, from the OS random number generator) as PKCS#8 PEM.
fn generate_p384_pem() -> Result<zeroize::Zeroizing<String>> {
    use base64::Engine as _;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
        .map_err(|_| Error::Crypto {
        op: "generate an EC P-384 key",
        reason: "the OS random number generator failed".into(),
    })?;
    let b64 = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()));
    let mut pem = zeroize::Zeroizing::new(String::from("-----BEGIN PRIVATE KEY-----\n"));
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}
