//! The DICE x509 identity, its configuration and its `dice:` alias-key tokens.

use std::path::PathBuf;
use std::sync::Arc;

use hsm_core::config::Section;
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
    pub uds_file: PathBuf,
    pub firmware: Firmware,
    /// The registration id: the common name of the Alias and DeviceID certificates.
    pub registration_id: String,
    /// Group CA (certificate PEM, private key PEM) that signs the DeviceID certificate;
    /// `None`: the DeviceID certificate is self-signed.
    pub ca: Option<(PathBuf, PathBuf)>,
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
            token: AliasToken {
                uds_file: uds_path,
                fwid,
            }
            .to_string(),
        })
    }

    /// The certificates (Alias, DeviceID, CA chain).
    pub fn chain(&self) -> &DiceChain {
        &self.chain
    }

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

/// A `dice:` alias-key token: `dice:uds-file=<percent-encoded absolute path>;fwid=<64 hex>`.
///
/// It names the UDS file and the firmware measurement, from which the Alias key is
/// re-derived; it holds no secret (the UDS stays in its 0600 file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasToken {
    pub uds_file: PathBuf,
    pub fwid: Fwid,
}

impl std::fmt::Display for AliasToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dice:uds-file={};fwid={}",
            percent_encode(&self.uds_file.to_string_lossy()),
            self.fwid.to_hex()
        )
    }
}

impl AliasToken {
    /// Parse a whole token (with its `dice:` scheme).
    pub fn parse(token: &str) -> Result<Self> {
        let what = "dice: key token";
        let rest = token
            .trim()
            .strip_prefix("dice:")
            .ok_or_else(|| Error::parse(what, "does not start with `dice:`"))?;
        let mut uds_file = None;
        let mut fwid = None;
        for attr in rest.split(';') {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| Error::parse(what, format!("attribute `{attr}` has no `=`")))?;
            match k {
                "uds-file" if uds_file.is_none() => uds_file = Some(PathBuf::from(percent_decode(what, v)?)),
                "fwid" if fwid.is_none() => fwid = Some(Fwid::from_hex(what, v)?),
                "uds-file" | "fwid" => return Err(Error::parse(what, format!("attribute `{k}` given twice"))),
                other => {
                    return Err(Error::parse(
                        what,
                        format!("unknown attribute `{other}` (expected uds-file, fwid)"),
                    ));
                }
            }
        }
        Ok(AliasToken {
            uds_file: uds_file.ok_or_else(|| Error::parse(what, "missing attribute `uds-file`"))?,
            fwid: fwid.ok_or_else(|| Error::parse(what, "missing attribute `fwid`"))?,
        })
    }
}

/// Resolve a `dice:` alias-key token (the whole string, scheme included) to its signer: reads
/// the UDS file (mode-checked) and re-derives the Alias key.
pub fn open_signer(token: &str) -> Result<Arc<dyn SigningKey>> {
    let t = AliasToken::parse(token)?;
    let uds = Uds::from_file(&t.uds_file)?;
    Ok(Arc::new(derive_alias(&uds, &t.fwid)?))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(what: &str, s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::parse(what, format!("bad percent escape in `{s}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::parse(what, "the path is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_errors() {
        let t = AliasToken {
            uds_file: PathBuf::from("/var/lib/dev ice/uds;1=%.bin"),
            fwid: Fwid([0x5a; 32]),
        };
        let s = t.to_string();
        assert!(
            s.starts_with("dice:uds-file=/var/lib/dev%20ice/uds%3B1%3D%25.bin;fwid=5a5a"),
            "{s}"
        );
        assert_eq!(AliasToken::parse(&s).unwrap(), t);
        for (bad, msg) in [
            ("file:x", "does not start"),
            ("dice:uds-file=/x", "missing attribute `fwid`"),
            ("dice:fwid=00", "32"),
            ("dice:uds-file=/x;uds-file=/y", "twice"),
            ("dice:uds-file=/x;pin=1", "unknown attribute `pin`"),
            ("dice:uds-file=%zz", "percent"),
        ] {
            let e = AliasToken::parse(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }
}
