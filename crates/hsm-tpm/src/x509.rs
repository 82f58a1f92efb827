//! TPM-resident ECDSA P-256 and P-384 keys: signing for TLS and CSRs, x509 identities, `tpm:` tokens.
//!
//! Token syntax (no secret in it): `tpm:handle=0x81000200` or `tpm:blob=/path/key.tpmkey`,
//! optionally followed by `;tcti=<TCTI string>` (last, it may contain any character); without
//! `tcti=` the default TCTI is used (`TPM2TOOLS_TCTI`, `TCTI`, else `device:/dev/tpmrm0`).
//! Tokens are decoded and encoded by `hsm_core::token` ([`SignerToken`] is its `TpmToken`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hsm_core::config::Section;
use hsm_core::{Curve, Error, KeyAlgorithm, Result, SignatureScheme, SigningKey, X509Identity};
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use sha2::Digest as _;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, HashScheme, HashcheckTicket, Private, Public, Signature};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use zeroize::Zeroizing;

use crate::conn::TpmConn;
use crate::handles::{SRK_HANDLE, parse_handle};
use crate::objects::{flush, read_public};
use crate::session::{Session, retry};
use crate::{error, templates};

pub use hsm_core::token::{TpmKeyLocation as KeyLocation, TpmToken as SignerToken};

const BLOB_MAGIC: &[u8; 8] = b"HSMTPMK1";

fn write_blob(path: &Path, public: &Public, private: &Private) -> Result<()> {
    let mut out = BLOB_MAGIC.to_vec();
    out.extend_from_slice(&templates::tpm2b_public(public)?);
    out.extend_from_slice(&(private.value().len() as u16).to_be_bytes());
    out.extend_from_slice(private.value());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| Error::io("create key blob", path, e))?;
    std::io::Write::write_all(&mut f, &out).map_err(|e| Error::io("write key blob", path, e))
}

fn read_blob(path: &Path) -> Result<(Public, Private)> {
    let what = format!("TPM key blob {}", path.display());
    let bytes = hsm_core::fs::read_bounded("read key blob", path, hsm_core::fs::BLOB_MAX)?;
    let rest = bytes
        .strip_prefix(BLOB_MAGIC.as_slice())
        .ok_or_else(|| Error::parse(&what, "not a key blob written by hsmctl tpm keygen"))?;
    let (psize, _) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| Error::parse(&what, "truncated"))?;
    let plen = 2 + usize::from(u16::from_be_bytes(*psize));
    let (pub_bytes, rest) = rest
        .split_at_checked(plen)
        .ok_or_else(|| Error::parse(&what, "truncated"))?;
    let public = templates::parse_tpm2b_public(&what, pub_bytes)?;
    let (ssize, priv_bytes) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| Error::parse(&what, "truncated"))?;
    if usize::from(u16::from_be_bytes(*ssize)) != priv_bytes.len() {
        return Err(Error::parse(&what, "private part size does not match the file"));
    }
    let private = Private::try_from(priv_bytes.to_vec()).map_err(|e| Error::parse(&what, e))?;
    Ok((public, private))
}

/// The curve, DER SubjectPublicKeyInfo and uncompressed point of an ECC public area
/// (P-256 or P-384).
fn ecc_spki(public: &Public) -> Result<(Curve, Vec<u8>, Vec<u8>)> {
    use tss_esapi::interface_types::ecc::EccCurve;
    let Public::Ecc { parameters, unique, .. } = public else {
        return Err(error::device("read the key", "not an ECC key"));
    };
    let curve = match parameters.ecc_curve() {
        EccCurve::NistP256 => Curve::P256,
        EccCurve::NistP384 => Curve::P384,
        other => {
            return Err(error::device(
                "read the key",
                format!("curve {other:?} (P-256 or P-384 expected)"),
            ));
        }
    };
    let len = hsm_core::der::curve_len(curve);
    let mut point = vec![0x04];
    for c in [unique.x().value(), unique.y().value()] {
        if c.len() > len {
            return Err(error::device("read the key", format!("not a {curve:?} point")));
        }
        point.extend(std::iter::repeat_n(0, len - c.len()));
        point.extend_from_slice(c);
    }
    Ok((curve, hsm_core::der::ec_spki(curve, &point)?, point))
}

/// An ECDSA P-256 or P-384 key inside a TPM.
pub struct TpmKey {
    conn: Arc<TpmConn>,
    location: KeyLocation,
    blob: Option<(Public, Private)>,
    curve: Curve,
    spki: Vec<u8>,
    point: Vec<u8>,
}

impl std::fmt::Debug for TpmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmKey")
            .field("tcti", &self.conn.tcti())
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn null_ticket() -> Result<HashcheckTicket> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| Error::Internal(format!("null hashcheck ticket: {e}")))
}

impl TpmKey {
    /// Open a key on the connection `conn`.
    pub fn open(conn: Arc<TpmConn>, location: KeyLocation) -> Result<Self> {
        let (public, blob) = match &location {
            KeyLocation::Persistent(h) => {
                let h = *h;
                let public = conn.with(move |s| {
                    let obj = s
                        .persistent(h)?
                        .ok_or_else(|| error::device("open TPM key", format!("no key persisted at 0x{h:08x}")))?;
                    read_public(s, obj, &format!("the key at 0x{h:08x}"))
                })?;
                (public, None)
            }
            KeyLocation::Blob(path) => {
                let (public, private) = read_blob(path)?;
                (public.clone(), Some((public, private)))
            }
        };
        let expected = templates::ecc_signing_template(Curve::P256)?;
        if public.object_attributes() != expected.object_attributes() {
            return Err(error::device(
                "open TPM key",
                format!("{location:?} is not an unrestricted ECDSA signing key with empty auth"),
            ));
        }
        let (curve, spki, point) = ecc_spki(&public)?;
        Ok(TpmKey {
            conn,
            location,
            blob,
            curve,
            spki,
            point,
        })
    }

    /// The uncompressed public point (0x04 || X || Y).
    pub fn public_point(&self) -> &[u8] {
        &self.point
    }

    /// Where the key lives (a persistent handle or a key blob).
    pub fn location(&self) -> &KeyLocation {
        &self.location
    }

    /// Sign a SHA-256 digest; returns the DER ECDSA signature.
    pub(crate) fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        self.sign_hashed(digest, HashingAlgorithm::Sha256)
    }

    /// Sign a digest made with `hash`; returns the DER ECDSA signature.
    fn sign_hashed(&self, digest: &[u8], hash: HashingAlgorithm) -> Result<Vec<u8>> {
        let digest = Digest::try_from(digest.to_vec()).map_err(|e| Error::Internal(format!("digest: {e}")))?;
        let scheme = tss_esapi::structures::SignatureScheme::EcDsa {
            hash_scheme: HashScheme::new(hash),
        };
        let ticket = null_ticket()?;
        let sign = move |s: &mut Session, key: KeyHandle| {
            retry(|| {
                s.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.sign(key, digest.clone(), scheme, ticket.clone())
                })
            })
            .map_err(|e| error::tpm("ECDSA sign with the TPM key", e))
        };
        let location = self.location.clone();
        let blob = self.blob.clone();
        let signature = self.conn.with(move |s| match (&location, &blob) {
            (KeyLocation::Persistent(h), _) => {
                let obj = s
                    .persistent(*h)?
                    .ok_or_else(|| error::device("sign", format!("no key persisted at 0x{h:08x}")))?;
                sign(s, KeyHandle::from(obj))
            }
            (KeyLocation::Blob(_), Some((public, private))) => {
                let srk = s
                    .persistent(SRK_HANDLE)?
                    .ok_or_else(|| error::device("sign", "no SRK at 0x81000001 to load the key blob under"))?;
                let loaded = retry(|| {
                    s.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                        ctx.load(KeyHandle::from(srk), private.clone(), public.clone())
                    })
                })
                .map_err(|e| error::tpm("load the key blob under the SRK", e))?;
                let r = sign(s, loaded);
                flush(s, ObjectHandle::from(loaded));
                r
            }
            (KeyLocation::Blob(p), None) => Err(Error::Internal(format!("key blob {} not read", p.display()))),
        })?;
        match signature {
            Signature::EcDsa(sig) => Ok(hsm_core::der::ecdsa_signature(
                sig.signature_r().value(),
                sig.signature_s().value(),
            )),
            _ => Err(error::device("sign", "the TPM returned a non-ECDSA signature")),
        }
    }
}

impl SigningKey for TpmKey {
    fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::Ec(self.curve)
    }

    fn public_key_spki(&self) -> Result<Vec<u8>> {
        Ok(self.spki.clone())
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        match (self.curve, scheme) {
            (Curve::P256, SignatureScheme::EcdsaP256Sha256) => self.sign_digest(&sha2::Sha256::digest(message).into()),
            (Curve::P384, SignatureScheme::EcdsaP384Sha384) => {
                self.sign_hashed(&sha2::Sha384::digest(message), HashingAlgorithm::Sha384)
            }
            (curve, _) => Err(Error::unsupported(
                format!("a TPM ECDSA {curve:?} key"),
                format!("signature scheme {scheme}"),
            )),
        }
    }
}

impl TpmKey {
    /// A PEM PKCS#10 certificate signing request with subject CN `common_name`, signed in the TPM.
    pub fn csr_pem(&self, common_name: &str) -> Result<String> {
        hsm_core::csr::request_pem(self, common_name)
    }
}

/// Create an ECDSA P-256 key under the SRK (created first when missing) and persist it at a
/// handle or save it as a blob file (refuses to overwrite either).
pub fn generate_key(conn: Arc<TpmConn>, location: KeyLocation) -> Result<TpmKey> {
    generate_key_on(conn, location, Curve::P256)
}

/// [`generate_key`] on `curve` (P-256 or P-384).
pub fn generate_key_on(conn: Arc<TpmConn>, location: KeyLocation, curve: Curve) -> Result<TpmKey> {
    if let KeyLocation::Blob(p) = &location {
        if p.exists() {
            return Err(Error::invalid(
                "blob",
                format!("{} exists; not overwritten", p.display()),
            ));
        }
    }
    let template = templates::ecc_signing_template(curve)?;
    let srk_template = templates::srk_template()?;
    let where_ = location.clone();
    conn.with_keygen(move |s| {
        let srk = match s.persistent(SRK_HANDLE)? {
            Some(h) => h,
            None => {
                crate::objects::ensure_primary(
                    s,
                    SRK_HANDLE,
                    Hierarchy::Owner,
                    srk_template.clone(),
                    "storage root key",
                )?;
                s.persistent(SRK_HANDLE)?
                    .ok_or_else(|| error::device("create the SRK", "not found after persisting"))?
            }
        };
        let created = retry(|| {
            s.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create(KeyHandle::from(srk), template.clone(), None, None, None, None)
            })
        })
        .map_err(|e| error::tpm(format!("create an ECDSA {curve:?} key under the SRK"), e))?;
        match &where_ {
            KeyLocation::Blob(path) => write_blob(path, &created.out_public, &created.out_private),
            KeyLocation::Persistent(h) => {
                if s.persistent(*h)?.is_some() {
                    return Err(Error::invalid("handle", format!("0x{h:08x} is already in use")));
                }
                let loaded = retry(|| {
                    s.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                        ctx.load(
                            KeyHandle::from(srk),
                            created.out_private.clone(),
                            created.out_public.clone(),
                        )
                    })
                })
                .map_err(|e| error::tpm("load the new key", e))?;
                let p = PersistentTpmHandle::new(*h)
                    .map(Persistent::Persistent)
                    .map_err(|e| Error::invalid("handle", format!("0x{h:08x}: {e}")));
                let r = p.and_then(|p| {
                    retry(|| {
                        s.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                            ctx.evict_control(Provision::Owner, ObjectHandle::from(loaded), p)
                        })
                    })
                    .map_err(|e| error::tpm(format!("persist the key at 0x{h:08x}"), e))
                });
                flush(s, ObjectHandle::from(loaded));
                r.map(|_| ())
            }
        }
    })?;
    TpmKey::open(conn, location)
}

/// Open a signer for a decoded `tpm:` token (see the module documentation).
pub fn open_signer(t: &SignerToken) -> Result<Arc<dyn SigningKey>> {
    let tcti = t.tcti.clone().unwrap_or_else(crate::conn::default_tcti);
    let conn = TpmConn::shared(&tcti)?;
    Ok(Arc::new(TpmKey::open(conn, t.location.clone())?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct X509Params {
    tcti: Option<String>,
    key_handle: Option<toml_handle::Handle>,
    key_blob: Option<PathBuf>,
    certificate: PathBuf,
    command_timeout: Option<crate::tpm_options::TimeoutValue>,
}

mod toml_handle {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    pub(super) enum Handle {
        Int(i64),
        Str(String),
    }
}

/// An x509 identity whose key is in the TPM: `[x509] backend = "tpm"` with `certificate`
/// (PEM chain, leaf first), `key_handle` or `key_blob`, and optionally `tcti` and
/// `command_timeout` (seconds).
pub struct TpmX509 {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<TpmKey>,
    /// The `tpm:` token of the key (encoded once, at open).
    token: String,
}

impl TpmX509 {
    /// Open from the `[x509]` configuration section with `backend = "tpm"`.
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: X509Params = section.parse()?;
        let location = match (&p.key_handle, &p.key_blob) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(section.error("key_handle", "give exactly one of key_handle and key_blob"));
            }
            (Some(toml_handle::Handle::Int(i)), None) => KeyLocation::Persistent(
                parse_handle("key_handle", &i.to_string()).map_err(|e| section.error("key_handle", e.to_string()))?,
            ),
            (Some(toml_handle::Handle::Str(s)), None) => KeyLocation::Persistent(
                parse_handle("key_handle", s).map_err(|e| section.error("key_handle", e.to_string()))?,
            ),
            (None, Some(path)) => KeyLocation::Blob(section.path(path)),
        };
        let tcti = p.tcti.unwrap_or_else(crate::conn::default_tcti);
        let command_timeout = match &p.command_timeout {
            None => crate::conn::DEFAULT_COMMAND_TIMEOUT,
            Some(t) => t.duration().map_err(|e| section.error("command_timeout", e))?,
        };
        let cert_path = section.path(&p.certificate);
        let chain = hsm_core::pem::parse_certificates(
            &format!("certificate chain {}", cert_path.display()),
            &hsm_core::pem::read_file("read certificate chain", &cert_path)?,
        )?;
        let conn = TpmConn::connect(&tcti, crate::session::HierarchyAuth::default(), command_timeout)?;
        let key = TpmKey::open(conn, location.clone())?;
        let leaf = hsm_core::pem::public_key_spki(&chain[0])?;
        if leaf != key.spki {
            return Err(section.error(
                "certificate",
                format!(
                    "the first certificate of {} is not for the TPM key {location:?}",
                    cert_path.display()
                ),
            ));
        }
        hsm_core::pem::common_name(&chain[0])?;
        Ok(TpmX509 {
            chain,
            key: Arc::new(key),
            token: SignerToken {
                location,
                tcti: Some(tcti),
            }
            .encode()?,
        })
    }
}

impl X509Identity for TpmX509 {
    fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        Ok(self.chain.clone())
    }

    fn signing_key(&self) -> Result<Arc<dyn SigningKey>> {
        Ok(self.key.clone())
    }

    fn key_reference(&self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(self.token.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_blob_at_dev_zero_or_a_fifo_is_refused_at_once() {
        let e = read_blob(Path::new("/dev/zero")).err().unwrap().to_string();
        assert!(e.contains("/dev/zero") && e.contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key.blob");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = read_blob(&fifo).err().unwrap().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
    }
}
