//! An x509 identity whose private key lives on a token.
//!
//! ```toml
//! [x509]
//! backend = "pkcs11"
//! key = "pkcs11:token=device;object=device-key?pin-source=file:/etc/device/pin"
//! certificate = "pkcs11:token=device;object=device-cert;type=cert"   # or:
//! certificate_file = "device-chain.pem"                              # PEM chain, leaf first
//! module_path = "/usr/lib/softhsm/libsofthsm2.so"                    # default: the URI's, then SoftHSM2
//! pin_file = "/etc/device/pin"                                       # when the URI has no pin-source
//! ```
//!
//! Without `certificate` and `certificate_file` the certificate object with the key's `id`
//! (or, without an id, its label) is used.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cryptoki::object::{Attribute, AttributeType};
use hsm_core::config::Section;
use hsm_core::{Error, Result, SigningKey, X509Identity, pem};
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::device;
use crate::key::{Pkcs11Key, private_key_uri};
use crate::module::resolve_module_path;
use crate::objects::find_one;
use crate::token::Token;
use crate::uri::{ObjectType, Pkcs11Uri};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct X509Params {
    key: String,
    certificate: Option<String>,
    certificate_file: Option<PathBuf>,
    module_path: Option<PathBuf>,
    pin_file: Option<PathBuf>,
}

/// Complete a configured URI: module path and pin-source filled in, no pin-value allowed.
pub(crate) fn configured_uri(
    section: &Section,
    key: &str,
    text: &str,
    module_path: Option<&Path>,
    pin_file: Option<&Path>,
) -> Result<Pkcs11Uri> {
    let mut uri = Pkcs11Uri::parse(text).map_err(|e| section.error(key, e.to_string()))?;
    uri.reject_pin_value(&format!("the configuration key `{key}`"))
        .map_err(|e| section.error(key, e.to_string()))?;
    let default = module_path.map(|p| section.path(p));
    if let (Some(in_uri), Some(in_toml)) = (&uri.module_path, &default) {
        if !same_file(in_uri, in_toml) {
            return Err(section.error(
                "module_path",
                format!(
                    "names the module {}, but the `{key}` URI's module-path names another, {}; give one module \
                     (or the same one in both)",
                    in_toml.display(),
                    in_uri.display()
                ),
            ));
        }
    }
    // A module named by `module_path` alone is loaded here, so that a wrong one is reported
    // under that key, not under the key URI's.
    if let (None, None, Some(path)) = (&uri.module_path, &uri.module_name, &default) {
        crate::module::module(path).map_err(|e| section.context("module_path", e))?;
    }
    uri.module_path =
        Some(resolve_module_path(&uri, default.as_deref()).map_err(|e| section.error(key, e.to_string()))?);
    uri.module_name = None;
    if let Some(pin_file) = pin_file {
        if uri.pin_source.is_some() {
            return Err(section.error(
                "pin_file",
                format!("both pin_file and the `{key}` URI's pin-source are given; keep one"),
            ));
        }
        let path = section.path(pin_file);
        let path = std::path::absolute(&path).map_err(|e| Error::io("resolve pin_file", &path, e))?;
        uri.pin_source = Some(format!("file:{}", path.display()));
    }
    Ok(uri)
}

/// Whether two paths name the same file: equal once canonicalized (symbolic links and `..`
/// resolved), or equal as written when either cannot be canonicalized (a missing file, which
/// loading the module reports).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// An x509 identity: a private key on a token and its certificate (token object or PEM file).
pub struct Pkcs11X509 {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<Pkcs11Key>,
    key_uri: String,
}

impl Pkcs11X509 {
    /// Open from the `[x509]` configuration section with `backend = "pkcs11"`.
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: X509Params = section.parse()?;
        if p.certificate.is_some() && p.certificate_file.is_some() {
            return Err(section.error("certificate", "give certificate or certificate_file, not both"));
        }
        let key_uri = configured_uri(section, "key", &p.key, p.module_path.as_deref(), p.pin_file.as_deref())?;
        let key_uri = private_key_uri(&key_uri).map_err(|e| section.error("key", e.to_string()))?;
        let token = Token::open(&key_uri, None).map_err(|e| section.context("key", e))?;
        let chain = match (&p.certificate, &p.certificate_file) {
            (_, Some(file)) => {
                let path = section.path(file);
                pem::parse_certificates(
                    &format!("certificate chain {}", path.display()),
                    &pem::read_file("read certificate chain", &path)?,
                )?
            }
            (Some(text), None) => {
                let mut cert_uri = configured_uri(
                    section,
                    "certificate",
                    text,
                    p.module_path.as_deref(),
                    p.pin_file.as_deref(),
                )?;
                match cert_uri.object_type {
                    None => cert_uri.object_type = Some(ObjectType::Cert),
                    Some(ObjectType::Cert) => {}
                    Some(other) => {
                        return Err(section.error(
                            "certificate",
                            format!(
                                "the URI must name a certificate (`type=cert`), not `type={}`",
                                other.as_str()
                            ),
                        ));
                    }
                }
                let cert_token = Token::open(&cert_uri, None)?;
                vec![
                    read_certificate(&cert_token, &cert_uri)
                        .map_err(|e| section.error("certificate", e.to_string()))?,
                ]
            }
            (None, None) => {
                let mut cert_uri = Pkcs11Uri {
                    object_type: Some(ObjectType::Cert),
                    ..Pkcs11Uri::default()
                };
                if key_uri.id.is_some() {
                    cert_uri.id = key_uri.id.clone();
                } else {
                    cert_uri.object = key_uri.object.clone();
                }
                vec![read_certificate(&token, &cert_uri).map_err(|e| {
                    section.error(
                        "certificate",
                        format!("no certificate given and none found next to the key: {e}"),
                    )
                })?]
            }
        };
        Self::new(token, &key_uri, chain).map_err(|e| section.context("key", e))
    }

    /// An identity from a token key and a chain (leaf first); the leaf must match the key.
    pub fn new(token: Arc<Token>, key_uri: &Pkcs11Uri, chain: Vec<CertificateDer<'static>>) -> Result<Self> {
        let leaf = chain
            .first()
            .ok_or_else(|| Error::parse("certificate chain", "the chain is empty"))?;
        let leaf_spki = pem::public_key_spki(leaf)?;
        let key = Pkcs11Key::open(token, key_uri, Some(&leaf_spki))?;
        if key.public_key_spki()? != leaf_spki {
            return Err(Error::parse(
                "certificate",
                format!(
                    "the leaf certificate does not belong to the key `{}`",
                    key_uri.object_description()
                ),
            ));
        }
        pem::common_name(leaf)?;
        let key_uri = key.uri();
        Ok(Pkcs11X509 {
            chain,
            key: Arc::new(key),
            key_uri: key_uri.to_token_string(),
        })
    }

    /// The private key.
    pub fn key(&self) -> &Arc<Pkcs11Key> {
        &self.key
    }
}

/// The DER value of the one certificate object `uri` names.
pub(crate) fn read_certificate(token: &Token, uri: &Pkcs11Uri) -> Result<CertificateDer<'static>> {
    let der = token.run("read certificate", |session, _| {
        let h = find_one(session, uri, token)?;
        let attrs = session
            .get_attributes(h, &[AttributeType::Value])
            .map_err(|e| device("C_GetAttributeValue (certificate)", e))?;
        attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| Error::parse("certificate object", "no CKA_VALUE"))
    })?;
    hsm_core::x509::parse(&format!("certificate object `{}`", uri.object_description()), &der)?;
    Ok(CertificateDer::from(der))
}

impl X509Identity for Pkcs11X509 {
    fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        Ok(self.chain.clone())
    }

    fn signing_key(&self) -> Result<Arc<dyn SigningKey>> {
        Ok(self.key.clone())
    }

    fn key_reference(&self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(self.key_uri.clone()))
    }
}

/// The signer for an alias-key token (`pkcs11:` URI with module-path / pin-source, no pin-value),
/// as the TLS bridge receives it from `get_key`.
pub fn open_signer(uri: &str) -> Result<Arc<dyn SigningKey>> {
    let parsed = Pkcs11Uri::parse(uri)?;
    parsed.reject_pin_value("an alias-key token")?;
    let token = Token::open(&parsed, None)?;
    Ok(Arc::new(Pkcs11Key::open(token, &parsed, None)?))
}
