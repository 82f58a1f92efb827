//! Alias-key tokens: strings that name a key and never contain it, decoded once, here, into a
//! typed [`KeyToken`] that the backends receive.
//!
//! - `pkcs11:...` an RFC 7512 URI (PIN through `pin-source`, never `pin-value`), kept whole
//!   and parsed by hsm-pkcs11;
//! - `tpm:handle=0x81000200` or `tpm:blob=PATH`, then optionally `;tcti=TCTI` (last, as written:
//!   it may contain any character) — a TPM-resident key;
//! - `dice:uds-file=PATH;fwid=<64 hex>` a key of the software DICE engine;
//! - `file:PATH` a PEM private key file of the development backend;
//! - `vendor:library=PATH;identity=ID` or `vendor:registered=NAME;identity=ID` a key of a vendor
//!   backend.
//!
//! Every PATH, ID and NAME is percent-encoded with `crate::pct::TOKEN` (decoding also accepts
//! characters that need no escape, so `file:/etc/device/key.pem` is fine as written); a path that
//! is not UTF-8 is refused, when decoding and when encoding. A PEM private key
//! (`-----BEGIN ... PRIVATE KEY-----`) is still accepted where a token is expected, for
//! compatibility with the SDK's OpenSSL options: it is the one token that is a secret.
//!
//! [`KeyToken::decode`] and [`KeyToken::encode`] are inverse: `decode(encode(v)) == v` for every
//! value, and `encode(decode(t)) == t` for every token this library writes (a property test
//! checks both).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::pct::{self, TOKEN};
use crate::{Error, Result};

/// A decoded alias-key token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyToken {
    /// The whole RFC 7512 URI, `pkcs11:` included (hsm-pkcs11 parses its attributes).
    Pkcs11(String),
    /// `tpm:`: a persistent handle or a key blob.
    Tpm(TpmToken),
    /// `dice:`: the Alias key derived from a UDS file and a firmware measurement.
    Dice(DiceToken),
    /// `file:`: a PEM private key file.
    File(PathBuf),
    /// `vendor:`: a key of a vendor backend.
    Vendor(VendorToken),
    /// A PEM private key given inline (compatibility only: it is a secret).
    InlinePem(InlinePem),
}

/// Where a TPM key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmKeyLocation {
    /// Persisted at a handle (0x81000000..0x81ffffff).
    Persistent(u32),
    /// A key blob file (public and wrapped private part) loaded under the SRK for each use.
    Blob(PathBuf),
}

/// A `tpm:` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmToken {
    /// Where the key is.
    pub location: TpmKeyLocation,
    /// The TCTI to reach the TPM; `None`: the default one.
    pub tcti: Option<String>,
}

/// A `dice:` token: the UDS file and the firmware measurement the Alias key is derived from (the
/// UDS itself stays in its 0600 file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiceToken {
    /// The file holding the Unique Device Secret.
    pub uds_file: PathBuf,
    /// The firmware measurement (SHA-256).
    pub fwid: [u8; 32],
}

/// Where a vendor table comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorSource {
    /// A shared object exporting `hsm_abi_vendor_table`.
    Library(PathBuf),
    /// A table registered from C under this name.
    Registered(String),
}

/// A `vendor:` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorToken {
    /// Which vendor table.
    pub source: VendorSource,
    /// Passed to the vendor's `open` (no secrets here).
    pub identity: String,
}

/// An inline PEM private key; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct InlinePem(Zeroizing<String>);

impl InlinePem {
    /// Keep `pem` (zeroized when dropped).
    pub fn new(pem: &str) -> Self {
        InlinePem(Zeroizing::new(pem.to_string()))
    }

    /// The PEM text (a secret: never log it).
    pub fn pem(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for InlinePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InlinePem(<secret>)")
    }
}

const SCHEMES: &str = "expected `pkcs11:`, `tpm:`, `dice:`, `file:`, `vendor:` or a PEM private key";

impl KeyToken {
    /// Decode a token (surrounding whitespace ignored). Errors name the scheme and what was wrong.
    pub fn decode(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.starts_with("-----BEGIN") {
            return Ok(KeyToken::InlinePem(InlinePem::new(s)));
        }
        let (scheme, rest) = t.split_once(':').ok_or_else(|| Error::parse("key token", SCHEMES))?;
        match scheme {
            "pkcs11" => Ok(KeyToken::Pkcs11(t.to_string())),
            "tpm" => TpmToken::decode_rest(rest).map(KeyToken::Tpm),
            "dice" => DiceToken::decode_rest(rest).map(KeyToken::Dice),
            "file" if !rest.is_empty() => Ok(KeyToken::File(path("file: key token", rest)?)),
            "file" => Err(Error::parse("key token", "`file:` needs a path")),
            "vendor" => VendorToken::decode_rest(rest).map(KeyToken::Vendor),
            other => Err(Error::parse(
                "key token",
                format!("unknown scheme `{other}:` ({SCHEMES})"),
            )),
        }
    }

    /// The token's text. Fails only for a value no token can carry: a path that is not UTF-8, an
    /// empty path, a TCTI with surrounding whitespace or an inline PEM key that is not one.
    pub fn encode(&self) -> Result<String> {
        match self {
            KeyToken::Pkcs11(uri) if uri.starts_with("pkcs11:") && uri.trim() == uri => Ok(uri.clone()),
            KeyToken::Pkcs11(_) => Err(Error::invalid("pkcs11 key token", "must be a whole `pkcs11:` URI")),
            KeyToken::Tpm(t) => t.encode(),
            KeyToken::Dice(t) => t.encode(),
            KeyToken::File(p) => Ok(format!("file:{}", encode_path("file: key token", p)?)),
            KeyToken::Vendor(t) => t.encode(),
            KeyToken::InlinePem(p) if p.pem().trim_start().starts_with("-----BEGIN") => Ok(p.pem().to_string()),
            KeyToken::InlinePem(_) => Err(Error::invalid("inline PEM key", "does not start with `-----BEGIN`")),
        }
    }

    /// Whether the token itself is a secret (only inline PEM is).
    pub fn is_secret(&self) -> bool {
        match self {
            KeyToken::InlinePem(_) => true,
            KeyToken::Pkcs11(_) | KeyToken::Tpm(_) | KeyToken::Dice(_) | KeyToken::File(_) | KeyToken::Vendor(_) => {
                false
            }
        }
    }

    /// Whether using the key puts private key material in this process's memory, so that
    /// nothing opened with it (a signer, a TLS configuration) should be kept beyond its use:
    /// yes for a key read or derived here (`file:`, `dice:`, inline PEM) and for a vendor
    /// library (it may be a software one); no for a key that stays in a PKCS#11 token or a TPM.
    pub fn key_in_process(&self) -> bool {
        match self {
            KeyToken::Pkcs11(_) | KeyToken::Tpm(_) => false,
            KeyToken::Dice(_) | KeyToken::File(_) | KeyToken::Vendor(_) | KeyToken::InlinePem(_) => true,
        }
    }

    /// The scheme, for messages (`pkcs11:`, ..., `inline PEM`).
    pub fn kind(&self) -> &'static str {
        match self {
            KeyToken::Pkcs11(_) => "`pkcs11:`",
            KeyToken::Tpm(_) => "`tpm:`",
            KeyToken::Dice(_) => "`dice:`",
            KeyToken::File(_) => "`file:`",
            KeyToken::Vendor(_) => "`vendor:`",
            KeyToken::InlinePem(_) => "inline PEM",
        }
    }
}

/// A percent-encoded path attribute, decoded.
fn path(what: &str, v: &str) -> Result<PathBuf> {
    let p = pct::decode_utf8(what, v)?;
    if p.is_empty() {
        return Err(Error::parse(what, "the path is empty"));
    }
    Ok(PathBuf::from(p))
}

fn encode_path(what: &'static str, p: &Path) -> Result<String> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::invalid(what, format!("the path {} is not UTF-8", p.display())))?;
    if s.is_empty() {
        return Err(Error::invalid(what, "the path is empty"));
    }
    Ok(TOKEN.encode_str(s))
}

/// `key=value` attributes separated by `;`, each key at most once, from the allowed `keys`.
fn attributes<'a>(what: &str, rest: &'a str, keys: &[&str]) -> Result<Vec<(&'a str, &'a str)>> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for attr in rest.split(';').filter(|a| !a.is_empty()) {
        let (k, v) = attr
            .split_once('=')
            .ok_or_else(|| Error::parse(what, format!("attribute `{attr}` has no `=`")))?;
        if !keys.contains(&k) {
            return Err(Error::parse(
                what,
                format!("unknown attribute `{k}` (expected {})", keys.join(", ")),
            ));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(Error::parse(what, format!("attribute `{k}` given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// A persistent TPM handle, `0x81000200` or decimal, within 0x81000000..0x81ffffff.
pub fn persistent_handle(what: &'static str, text: &str) -> Result<u32> {
    let t = text.trim();
    let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse::<u32>(),
    }
    .map_err(|e| Error::invalid(what, format!("`{t}`: {e}")))?;
    if (0x8100_0000..=0x81ff_ffff).contains(&v) {
        Ok(v)
    } else {
        Err(Error::invalid(
            what,
            format!("0x{v:08x} is not a persistent handle (0x81000000..0x81ffffff)"),
        ))
    }
}

impl TpmToken {
    fn decode_rest(rest: &str) -> Result<Self> {
        let what = "tpm: key token";
        let (key_part, tcti) = match rest.find(";tcti=") {
            Some(i) => (&rest[..i], Some(rest[i + ";tcti=".len()..].to_string())),
            None => (rest, None),
        };
        if tcti.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(Error::parse(what, "`tcti=` is empty"));
        }
        let location = match key_part.split_once('=') {
            Some(("handle", v)) => TpmKeyLocation::Persistent(persistent_handle("tpm token handle", v)?),
            Some(("blob", v)) if !v.is_empty() => TpmKeyLocation::Blob(path(what, v)?),
            _ => {
                return Err(Error::parse(
                    what,
                    format!("`{key_part}`: expected `handle=0x81xxxxxx` or `blob=PATH` (then optionally `;tcti=...`)"),
                ));
            }
        };
        Ok(TpmToken { location, tcti })
    }

    /// `tpm:...` (see [`KeyToken::encode`]).
    pub fn encode(&self) -> Result<String> {
        let mut s = match &self.location {
            TpmKeyLocation::Persistent(h) => {
                let h = persistent_handle("tpm token handle", &h.to_string())?;
                format!("tpm:handle=0x{h:08x}")
            }
            TpmKeyLocation::Blob(p) => format!("tpm:blob={}", encode_path("tpm: key token", p)?),
        };
        if let Some(t) = &self.tcti {
            if t.trim().is_empty() || t.trim() != t {
                return Err(Error::invalid(
                    "tpm: key token",
                    "the TCTI is empty or has surrounding whitespace",
                ));
            }
            s.push_str(";tcti=");
            s.push_str(t);
        }
        Ok(s)
    }
}

impl DiceToken {
    fn decode_rest(rest: &str) -> Result<Self> {
        let what = "dice: key token";
        let mut uds_file = None;
        let mut fwid = None;
        for (k, v) in attributes(what, rest, &["uds-file", "fwid"])? {
            match k {
                "uds-file" => uds_file = Some(path(what, v)?),
                _ => fwid = Some(fwid_from_hex(what, v)?),
            }
        }
        Ok(DiceToken {
            uds_file: uds_file.ok_or_else(|| Error::parse(what, "missing attribute `uds-file`"))?,
            fwid: fwid.ok_or_else(|| Error::parse(what, "missing attribute `fwid`"))?,
        })
    }

    /// `dice:...` (see [`KeyToken::encode`]).
    pub fn encode(&self) -> Result<String> {
        Ok(format!(
            "dice:uds-file={};fwid={}",
            encode_path("dice: key token", &self.uds_file)?,
            crate::hex::encode(&self.fwid)
        ))
    }
}

fn fwid_from_hex(what: &str, hex: &str) -> Result<[u8; 32]> {
    let bytes =
        crate::hex::decode(hex.trim()).map_err(|e| Error::parse(what, format!("fwid is not hexadecimal: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        Error::parse(
            what,
            format!("fwid has {} bytes; a SHA-256 digest has 32 (64 hex digits)", b.len()),
        )
    })
}

impl VendorToken {
    fn decode_rest(rest: &str) -> Result<Self> {
        let what = "vendor: key token";
        let mut source = None;
        let mut identity = String::new();
        for (k, v) in attributes(what, rest, &["library", "registered", "identity"])? {
            match k {
                "identity" => identity = pct::decode_utf8(what, v)?,
                _ if source.is_some() => {
                    return Err(Error::parse(what, "give either `library=` or `registered=`, not both"));
                }
                "library" => source = Some(VendorSource::Library(path(what, v)?)),
                _ => source = Some(VendorSource::Registered(pct::decode_utf8(what, v)?)),
            }
        }
        let source = source.ok_or_else(|| Error::parse(what, "needs `library=` or `registered=`"))?;
        Ok(VendorToken { source, identity })
    }

    /// `vendor:...` (see [`KeyToken::encode`]).
    pub fn encode(&self) -> Result<String> {
        let src = match &self.source {
            VendorSource::Library(p) => format!("library={}", encode_path("vendor: key token", p)?),
            VendorSource::Registered(n) => format!("registered={}", TOKEN.encode_str(n)),
        };
        Ok(format!("vendor:{src};identity={}", TOKEN.encode_str(&self.identity)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(
            KeyToken::decode("pkcs11:token=a;object=b").unwrap(),
            KeyToken::Pkcs11("pkcs11:token=a;object=b".into())
        );
        assert_eq!(
            KeyToken::decode("file:/k.pem").unwrap(),
            KeyToken::File("/k.pem".into())
        );
        assert_eq!(
            KeyToken::decode("tpm:handle=0x81000200").unwrap(),
            KeyToken::Tpm(TpmToken {
                location: TpmKeyLocation::Persistent(0x8100_0200),
                tcti: None
            })
        );
        let pem = KeyToken::decode("-----BEGIN PRIVATE KEY-----\n").unwrap();
        assert!(pem.is_secret());
        assert!(!format!("{pem:?}").contains("BEGIN"));
        assert!(KeyToken::decode("nothing").is_err());
        assert!(KeyToken::decode("ftp:x").is_err());
        assert!(KeyToken::decode("file:").is_err());
    }

    #[test]
    fn only_device_keys_stay_out_of_the_process() {
        for (token, in_process) in [
            ("pkcs11:token=a;object=b", false),
            ("tpm:handle=0x81000200", false),
            ("tpm:blob=/k/a.tpmkey", false),
            ("file:/k.pem", true),
            (&format!("dice:uds-file=/u;fwid={}", "00".repeat(32)), true),
            ("vendor:registered=acme;identity=x", true),
            ("-----BEGIN PRIVATE KEY-----\n", true),
        ] {
            assert_eq!(KeyToken::decode(token).unwrap().key_in_process(), in_process, "{token}");
        }
    }

    #[test]
    fn tpm_tokens() {
        let t = KeyToken::decode("tpm:blob=/k/a.tpmkey;tcti=swtpm:host=127.0.0.1,port=2321").unwrap();
        let KeyToken::Tpm(tpm) = &t else { panic!("{t:?}") };
        assert_eq!(tpm.location, TpmKeyLocation::Blob("/k/a.tpmkey".into()));
        assert_eq!(tpm.tcti.as_deref(), Some("swtpm:host=127.0.0.1,port=2321"));
        for (bad, msg) in [
            ("tpm:handle=0x01", "not a persistent handle"),
            ("tpm:key=1", "expected `handle=0x81xxxxxx`"),
            ("tpm:handle=0x81000200;tcti=", "`tcti=` is empty"),
            ("tpm:blob=%FF", "not UTF-8"),
            // The prefix is required: a token is decoded in one place, whole.
            ("handle=0x81000200", "key token"),
        ] {
            let e = KeyToken::decode(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn dice_tokens() {
        let t = DiceToken {
            uds_file: PathBuf::from("/var/lib/dev ice/uds;1=%.bin"),
            fwid: [0x5a; 32],
        };
        let s = t.encode().unwrap();
        assert!(
            s.starts_with("dice:uds-file=/var/lib/dev%20ice/uds%3B1%3D%25.bin;fwid=5a5a"),
            "{s}"
        );
        assert_eq!(KeyToken::decode(&s).unwrap(), KeyToken::Dice(t));
        for (bad, msg) in [
            ("dice:uds-file=/x", "missing attribute `fwid`"),
            ("dice:fwid=00", "32"),
            ("dice:uds-file=/x;uds-file=/y", "twice"),
            ("dice:uds-file=/x;pin=1", "unknown attribute `pin`"),
            ("dice:uds-file=%zz", "percent"),
        ] {
            let e = KeyToken::decode(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn vendor_tokens() {
        let t = VendorToken {
            source: VendorSource::Library(PathBuf::from("/opt/v e;n%d/libv.so")),
            identity: "slot=1;label=a b".into(),
        };
        let s = t.encode().unwrap();
        assert!(
            s.starts_with("vendor:library=/opt/v%20e%3Bn%25d/libv.so;identity="),
            "{s}"
        );
        assert_eq!(KeyToken::decode(&s).unwrap(), KeyToken::Vendor(t));
        assert!(!KeyToken::decode("vendor:registered=x").unwrap().is_secret());
        for (bad, msg) in [
            ("vendor:identity=x", "library="),
            ("vendor:library=a;library=b", "twice"),
            ("vendor:library=a;registered=b", "not both"),
            ("vendor:library=%zz", "percent"),
            ("vendor:lib=a", "unknown attribute"),
            ("vendors:x", "unknown scheme"),
        ] {
            let e = KeyToken::decode(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_are_refused_when_encoding() {
        use std::os::unix::ffi::OsStrExt;
        let p = PathBuf::from(std::ffi::OsStr::from_bytes(b"/k/\xff.pem"));
        let e = KeyToken::File(p).encode().unwrap_err().to_string();
        assert!(e.contains("is not UTF-8"), "{e}");
    }
}
