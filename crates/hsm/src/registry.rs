//! Backend registry: turns a [`Config`] into backend objects.
//!
//! One `match` per interface on the section's `backend` name. A backend added behind a cargo
//! feature gets one `#[cfg(feature = "...")]` arm in the match and one line in the list of
//! built-in names of that interface.

use std::sync::Arc;

use hsm_core::config::{Config, Section};
use hsm_core::token::KeyToken;
use hsm_core::{Error, Result, SasSigner, SigningKey, SymmetricIdentity, TpmIdentity, X509Identity, file};

/// Backends built into this library for the x509 interface.
pub(crate) fn x509_backends() -> Vec<&'static str> {
    vec![
        "file",
        #[cfg(feature = "pkcs11")]
        "pkcs11",
        #[cfg(feature = "dice")]
        "dice",
        #[cfg(feature = "tpm")]
        "tpm",
        #[cfg(feature = "vendor")]
        "vendor",
        #[cfg(feature = "issued")]
        "issued",
    ]
}

/// Backends built into this library for the symmetric-key interface.
pub(crate) fn symmetric_backends() -> Vec<&'static str> {
    vec![
        "file",
        #[cfg(feature = "pkcs11")]
        "pkcs11",
        #[cfg(feature = "vendor")]
        "vendor",
    ]
}

/// Backends built into this library for the TPM interface.
pub(crate) fn tpm_backends() -> Vec<&'static str> {
    vec![
        #[cfg(feature = "pkcs11")]
        "pkcs11",
        #[cfg(feature = "tpm")]
        "tpm",
        #[cfg(feature = "vendor")]
        "vendor",
    ]
}

/// Key-token schemes this library resolves to signers (`pem` is an inline PEM private key).
pub(crate) fn signer_token_schemes() -> Vec<&'static str> {
    vec![
        "file",
        "pem",
        #[cfg(feature = "pkcs11")]
        "pkcs11",
        #[cfg(feature = "dice")]
        "dice",
        #[cfg(feature = "tpm")]
        "tpm",
        #[cfg(feature = "vendor")]
        "vendor",
    ]
}

fn not_built_in(section: &Section, built_in: &[&str]) -> Error {
    let list = if built_in.is_empty() {
        "none".to_string()
    } else {
        built_in.join(", ")
    };
    section.error(
        "backend",
        format!(
            "backend \"{}\" is not built into this library; built in: {list}",
            section.backend
        ),
    )
}

/// Open the identity of the `[x509]` section.
pub(crate) fn open_x509(config: &Config) -> Result<Box<dyn X509Identity>> {
    let section = config.section("x509")?;
    match section.backend.as_str() {
        "file" => Ok(Box::new(file::FileX509::from_section(section)?)),
        #[cfg(feature = "pkcs11")]
        "pkcs11" => Ok(Box::new(hsm_pkcs11::Pkcs11X509::from_section(section)?)),
        #[cfg(feature = "dice")]
        "dice" => Ok(Box::new(hsm_riot::DiceX509::from_section(section)?)),
        #[cfg(feature = "tpm")]
        "tpm" => Ok(Box::new(hsm_tpm::TpmX509::from_section(section)?)),
        #[cfg(feature = "vendor")]
        "vendor" => Ok(Box::new(crate::vendor::VendorX509::from_section(section)?)),
        #[cfg(feature = "issued")]
        "issued" => Ok(Box::new(hsm_issued::IssuedX509::from_section(section, open_signer)?)),
        _ => Err(not_built_in(section, &x509_backends())),
    }
}

/// Open the identity of the `[symmetric_key]` section.
pub(crate) fn open_symmetric(config: &Config) -> Result<Box<dyn SymmetricIdentity>> {
    let section = config.section("symmetric_key")?;
    match section.backend.as_str() {
        "file" => Ok(Box::new(file::FileSymmetric::from_section(section)?)),
        #[cfg(feature = "pkcs11")]
        "pkcs11" => Ok(Box::new(hsm_pkcs11::Pkcs11Symmetric::from_section(section)?)),
        #[cfg(feature = "vendor")]
        "vendor" => Ok(Box::new(crate::vendor::VendorSymmetric::from_section(section)?)),
        _ => Err(not_built_in(section, &symmetric_backends())),
    }
}

/// What a `[tpm]` section opens: a TPM identity (attestation and SAS signing), or a key that
/// only signs SAS tokens (a PKCS#11 HMAC secret: IoT Hub authentication through the SDK's
/// TPM-shaped interface, no EK, SRK or activation).
pub enum TpmBackend {
    /// A TPM identity: DPS TPM attestation and SAS signing.
    Attestation(Box<dyn TpmIdentity>),
    /// A key that only signs SAS tokens.
    SasSigning {
        /// The backend's name, for errors.
        backend: String,
        /// The key.
        signer: Box<dyn SasSigner>,
    },
}

impl TpmBackend {
    /// The TPM attestation capability; `op` names what needed it in the error of a backend that
    /// only signs SAS tokens.
    pub fn attestation(&self, op: &str) -> Result<&dyn TpmIdentity> {
        match self {
            TpmBackend::Attestation(t) => Ok(t.as_ref()),
            TpmBackend::SasSigning { backend, .. } => Err(Self::sas_only(backend, op)),
        }
    }

    /// [`TpmBackend::attestation`], owned.
    pub(crate) fn into_attestation(self, op: &str) -> Result<Box<dyn TpmIdentity>> {
        match self {
            TpmBackend::Attestation(t) => Ok(t),
            TpmBackend::SasSigning { backend, .. } => Err(Self::sas_only(&backend, op)),
        }
    }

    fn sas_only(backend: &str, op: &str) -> Error {
        Error::unsupported(
            format!("the [tpm] backend \"{backend}\" (a key that signs SAS tokens, not a TPM)"),
            format!("{op}: TPM attestation (endorsement key, storage root key, activation)"),
        )
    }
}

impl SasSigner for TpmBackend {
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>> {
        match self {
            TpmBackend::Attestation(t) => t.sign_with_identity(data),
            TpmBackend::SasSigning { signer, .. } => signer.sign_with_identity(data),
        }
    }
}

impl std::fmt::Debug for TpmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TpmBackend::Attestation(_) => f.write_str("TpmBackend::Attestation"),
            TpmBackend::SasSigning { backend, .. } => write!(f, "TpmBackend::SasSigning({backend})"),
        }
    }
}

/// Open the identity of the `[tpm]` section.
pub fn open_tpm(config: &Config) -> Result<TpmBackend> {
    let section = config.section("tpm")?;
    #[cfg_attr(
        not(any(feature = "tpm", feature = "pkcs11", feature = "vendor")),
        allow(clippy::match_single_binding)
    )]
    match section.backend.as_str() {
        #[cfg(feature = "tpm")]
        "tpm" => Ok(TpmBackend::Attestation(Box::new(hsm_tpm::Tpm::from_section(section)?))),
        // IoT Hub authentication through the TPM-shaped interface: an HMAC key on a token
        // signs the SAS tokens.
        #[cfg(feature = "pkcs11")]
        "pkcs11" => Ok(TpmBackend::SasSigning {
            backend: section.backend.clone(),
            signer: Box::new(hsm_pkcs11::Pkcs11Symmetric::from_section(section)?),
        }),
        #[cfg(feature = "vendor")]
        "vendor" => Ok(TpmBackend::Attestation(Box::new(
            crate::vendor::VendorTpm::from_section(section)?,
        ))),
        _ => Err(not_built_in(section, &tpm_backends())),
    }
}

/// The TPM attestation identity of the `[tpm]` section (a backend that only signs SAS tokens is
/// refused, naming `op`).
pub fn open_tpm_attestation(config: &Config, op: &str) -> Result<Box<dyn TpmIdentity>> {
    open_tpm(config)?.into_attestation(op)
}

/// Resolve an alias-key token (or an inline PEM private key) to a signer: the token is decoded
/// once (`hsm_core::token`) and its backend receives the typed value.
pub fn open_signer(token: &str) -> Result<Arc<dyn SigningKey>> {
    match KeyToken::decode(token)? {
        KeyToken::File(path) => Ok(Arc::new(file::FileKey::from_file(&path)?)),
        #[cfg(feature = "pkcs11")]
        KeyToken::Pkcs11(uri) => hsm_pkcs11::open_signer(&uri),
        #[cfg(feature = "dice")]
        KeyToken::Dice(t) => hsm_riot::open_signer(&t),
        #[cfg(feature = "tpm")]
        KeyToken::Tpm(t) => hsm_tpm::open_signer(&t),
        #[cfg(feature = "vendor")]
        KeyToken::Vendor(t) => crate::vendor::open_signer(&t),
        KeyToken::InlinePem(pem) => Ok(Arc::new(file::FileKey::from_pem(
            "inline PEM private key",
            pem.pem().as_bytes(),
        )?)),
        other => Err(Error::unsupported(
            format!(
                "this library (key tokens built in: {})",
                signer_token_schemes().join(", ")
            ),
            format!("resolving the key token {}", other.kind()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        Config::from_toml(text, "test.toml", Path::new("")).unwrap()
    }

    fn err<T>(r: Result<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_backends_list_the_built_in_ones() {
        let c = cfg("[x509]\nbackend = \"magic\"\n[symmetric_key]\nbackend = \"acme\"\n[tpm]\nbackend = \"tpm2\"\n");
        let e = err(open_x509(&c));
        let list = x509_backends().join(", ");
        assert!(
            e.contains(&format!(
                "backend \"magic\" is not built into this library; built in: {list}"
            )) && e.contains("test.toml"),
            "{e}"
        );
        let e = err(open_symmetric(&c));
        let list = symmetric_backends().join(", ");
        assert!(
            e.contains(&format!(
                "backend \"acme\" is not built into this library; built in: {list}"
            )),
            "{e}"
        );
        let e = err(open_tpm(&c));
        assert!(
            e.contains("backend \"tpm2\" is not built into this library; built in: "),
            "{e}"
        );
    }

    #[test]
    fn missing_sections_are_named() {
        // (An empty configuration is refused as a whole, as one caught mid-rewrite.)
        let c = cfg("[symmetric_key]\nbackend = \"file\"\n");
        assert!(err(open_x509(&c)).contains("[x509] is missing"));
        assert!(err(open_tpm(&c)).contains("[tpm] is missing"));
        let c = cfg("[tpm]\nbackend = \"file\"\n");
        assert!(err(open_symmetric(&c)).contains("[symmetric_key] is missing"));
    }

    #[test]
    fn symmetric_group_key_is_derived() {
        let c = cfg(concat!(
            "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"device-0001\"\n",
            "group_key = \"9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==\"\n"
        ));
        let id = open_symmetric(&c).unwrap();
        assert_eq!(id.registration_id().unwrap(), "device-0001");
        assert_eq!(
            hsm_core::sas::encode_key(&id.symmetric_key().unwrap()).as_str(),
            "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ="
        );
    }

    #[test]
    fn signer_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, key.serialize_pem()).unwrap();
        let from_file = open_signer(&format!("file:{}", path.display())).unwrap();
        let inline = open_signer(&key.serialize_pem()).unwrap();
        assert_eq!(
            from_file.public_key_spki().unwrap(),
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        assert_eq!(
            inline.public_key_spki().unwrap(),
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
        let e = err(open_signer("pkcs11:token=a;object=b"));
        #[cfg(not(feature = "pkcs11"))]
        assert!(e.contains("`pkcs11:`") && e.contains("file, pem"), "{e}");
        #[cfg(feature = "pkcs11")]
        assert!(e.contains("token=a"), "{e}");
        let e = err(open_signer(&format!("file:{}", dir.path().join("none.pem").display())));
        assert!(e.contains("none.pem"), "{e}");
        assert!(err(open_signer("nothing")).contains("key token"));
    }

    /// A key that signs SAS tokens in software (HMAC-SHA256), for the dispatch of `TpmBackend`.
    struct SoftSas(Vec<u8>);

    impl SasSigner for SoftSas {
        fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>> {
            Ok(hsm_core::sas::hmac_sha256(&self.0, data).to_vec())
        }
    }

    #[test]
    fn a_sas_signing_backend_signs_and_names_what_it_lacks() {
        let b = TpmBackend::SasSigning {
            backend: "pkcs11".into(),
            signer: Box::new(SoftSas(b"k".to_vec())),
        };
        assert_eq!(
            b.sign_with_identity(b"data").unwrap(),
            hsm_core::sas::hmac_sha256(b"k", b"data").to_vec()
        );
        let e = err(b.attestation("hsm_client_get_ek"));
        assert!(
            e.contains("\"pkcs11\"") && e.contains("hsm_client_get_ek") && e.contains("TPM attestation"),
            "{e}"
        );
        assert!(err(b.into_attestation("a TPM enrollment")).contains("a TPM enrollment"));
    }

    #[cfg(feature = "vendor")]
    #[test]
    fn vendor_without_the_c_layer_is_explained() {
        // Nothing in this crate installs a loader of C tables: hsm-abi does.
        let c = cfg("[x509]\nbackend = \"vendor\"\nregistered = \"acme\"\n");
        let e = err(open_x509(&c));
        assert!(e.contains("hsm_abi::vendor::install()"), "{e}");
        let e = err(open_signer("vendor:registered=acme;identity=x"));
        assert!(e.contains("hsm_abi::vendor::install()"), "{e}");
    }
}
