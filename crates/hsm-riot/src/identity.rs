//! The DICE x509 identity, its configuration and its `dice:` alias-key tokens.

use std::path::PathBuf;
use std::sync::Arc;

use hsm_core::config::Section;
use hsm_core::token::DiceToken;
use hsm_core::{Error, Result, SigningKey, X509Identity};
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::cert::{CaSigner, DiceChain, Validity, check_registration_id, issue_chain};
use crate::derive::{Fwid, derive_alias, derive_keys};
use crate::key::DiceKey;
use crate::uds::Uds;

/// The `[x509]` parameters of `backend = "dice"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiceParams {
    uds_file: PathBuf,
    firmware_file: Option<PathBuf>,
    firmware_digest: Option<String>,
    registration_id: String,
    ca_certificate: Option<PathBuf>,
    ca_key: Option<PathBuf>,
    not_before: Option<String>,
    validity_days: Option<u32>,
}

/// Where the firmware measurement comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// SHA-256 of this image file.
    File(PathBuf),
    /// A digest measured elsewhere.
    Digest(Fwid),
}

impl Firmware {
    /// The firmware's digest: the file hashed now, or the digest given.
    pub fn measure(&self) -> Result<Fwid> {
        match self {
            Firmware::File(p) => Fwid::of_file(p),
            Firmware::Digest(d) => Ok(*d),
        }
    }
}

/// Everything a DICE identity is made from.
#[derive(Debug, Clone)]
pub struct DiceOptions {
    /// The file holding the Unique Device Secret (32 bytes or more, mode 0600).
    pub uds_file: PathBuf,
    /// The firmware the Alias key depends on.
    pub firmware: Firmware,
    /// The registration id: the common name of the Alias and DeviceID certificates.
    pub registration_id: String,
    /// Group CA (certificate PEM, private key PEM) that signs the DeviceID certificate;
    /// `None`: the DeviceID certificate is self-signed.
    pub ca: Option<(PathBuf, PathBuf)>,
    /// The validity of the certificates made.
    pub validity: Validity,
}

/// A DICE identity: the SDK's riot/x509 attestation served by the software DICE engine.
///
/// The Alias key stays in this object (and is re-derived by [`open_signer`] from the token);
/// it is never exported.
pub struct DiceX509 {
    chain: DiceChain,
    alias: Arc<DiceKey>,
    registration_id: String,
    fwid: Fwid,
    token: String,
}

impl std::fmt::Debug for DiceX509 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiceX509")
            .field("registration_id", &self.registration_id)
            .field("fwid", &self.fwid.to_hex())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl DiceX509 {
    /// Open the identity of an `[x509]` section with `backend = "dice"`:
    ///
    /// ```toml
    /// [x509]
    /// backend = "dice"
    /// uds_file = "uds.bin"              # 32+ bytes, mode 0600 (hsmctl dice init)
    /// firmware_file = "firmware.bin"    # or firmware_digest = "<64 hex digits of SHA-256>"
    /// registration_id = "device-0001"   # CN of the Alias and DeviceID certificates
    /// # ca_certificate = "group-ca.pem" # group enrollment: the DeviceID certificate is
    /// # ca_key = "group-ca.key.pem"     #   signed by this CA (both or neither)
    /// # not_before = "2025-01-01T00:00:00Z"
    /// # validity_days = 3650            # default: until 9999-12-31T23:59:59Z
    /// ```
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: DiceParams = section.parse()?;
        let firmware = match (&p.firmware_file, &p.firmware_digest) {
            (Some(f), None) => Firmware::File(section.path(f)),
            (None, Some(d)) => Firmware::Digest(
                Fwid::from_hex(&format!("{}.firmware_digest", section.name), d)
                    .map_err(|e| section.error("firmware_digest", e.to_string()))?,
            ),
            (Some(_), Some(_)) => {
                return Err(section.error(
                    "firmware_file",
                    "give either firmware_file or firmware_digest, not both",
                ));
            }
            (None, None) => {
                return Err(section.error(
                    "firmware_file",
                    "missing: give firmware_file (an image to measure) or firmware_digest (its SHA-256, hex)",
                ));
            }
        };
        let ca = match (&p.ca_certificate, &p.ca_key) {
            (Some(c), Some(k)) => Some((section.path(c), section.path(k))),
            (None, None) => None,
            (Some(_), None) => return Err(section.error("ca_key", "missing: ca_certificate needs ca_key")),
            (None, Some(_)) => {
                return Err(section.error("ca_certificate", "missing: ca_key needs ca_certificate"));
            }
        };
        check_registration_id(&format!("{}.registration_id", section.name), &p.registration_id)
            .map_err(|e| section.error("registration_id", e.to_string()))?;
        let validity = Validity::from_parts(section.name, p.not_before.as_deref(), p.validity_days).map_err(|e| {
            let key = if e.to_string().contains("validity_days") {
                "validity_days"
            } else {
                "not_before"
            };
            section.error(key, e.to_string())
        })?;
        Self::new(&DiceOptions {
            uds_file: section.path(&p.uds_file),
            firmware,
            registration_id: p.registration_id,
            ca,
            validity,
        })
    }

    /// Derive the keys and issue the certificates.
    pub fn new(opts: &DiceOptions) -> Result<Self> {
        check_registration_id("registration id", &opts.registration_id)?;
        let uds = Uds::from_file(&opts.uds_file)?;
        let fwid = opts.firmware.measure()?;
        let ca = match &opts.ca {
            Some((c, k)) => {
                let ca = CaSigner::from_files(c, k)?;
                ca.check_can_sign_a_ca(&format!("CA certificate {}", c.display()))?;
                Some(ca)
            }
            None => None,
        };
        let keys = derive_keys(&uds, &fwid)?;
        let chain = issue_chain(&keys, &opts.registration_id, &opts.validity, ca.as_ref())?;
        let uds_path =
            std::fs::canonicalize(&opts.uds_file).map_err(|e| Error::io("resolve UDS file", &opts.uds_file, e))?;
        Ok(DiceX509 {
            chain,
            alias: Arc::new(keys.alias),
            registration_id: opts.registration_id.clone(),
            fwid,
            token: DiceToken {
                uds_file: uds_path,
                fwid: fwid.0,
            }
            .encode()?,
        })
    }

    /// The certificates (Alias, DeviceID, CA chain).
    pub fn chain(&self) -> &DiceChain {
        &self.chain
    }

    /// The registration id (the certificates' common name).
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }

    /// The firmware measurement the Alias layer was derived from.
    pub fn fwid(&self) -> Fwid {
        self.fwid
    }

    /// The `dice:` token naming the Alias key.
    pub fn alias_token(&self) -> &str {
        &self.token
    }
}

impl X509Identity for DiceX509 {
    fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        Ok(self.chain.to_vec())
    }

    fn common_name(&self) -> Result<String> {
        Ok(self.registration_id.clone())
    }

    fn signing_key(&self) -> Result<Arc<dyn SigningKey>> {
        Ok(self.alias.clone())
    }

    fn key_reference(&self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(self.token.clone()))
    }
}

/// Resolve a decoded `dice:` alias-key token (`hsm_core::token::DiceToken`: the UDS file and
/// the firmware measurement) to its signer: reads the UDS file (mode-checked) and re-derives the
/// Alias key. (Its text form, round trip and errors are tested with every token in hsm-core.)
pub fn open_signer(t: &DiceToken) -> Result<Arc<dyn SigningKey>> {
    let uds = Uds::from_file(&t.uds_file)?;
    Ok(Arc::new(derive_alias(&uds, &Fwid(t.fwid))?))
}
