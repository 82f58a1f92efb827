//! Alias-key tokens: strings that name a key and never contain it.
//!
//! - `pkcs11:...` an RFC 7512 URI (PIN through `pin-source`, never `pin-value`);
//! - `tpm:...` a TPM-resident key (persistent handle or saved blob);
//! - `dice:...` a key of the software DICE engine;
//! - `file:PATH` a PEM private key file of the development backend;
//! - `vendor:...` a key of a vendor backend (`library=PATH` or `registered=NAME`, `identity=ID`).
//!
//! A PEM private key (`-----BEGIN ... PRIVATE KEY-----`) is still accepted where a token is
//! expected, for compatibility with the SDK's OpenSSL options.

use crate::{Error, Result};

/// A classified key reference.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyToken {
    Pkcs11(String),
    Tpm(String),
    Dice(String),
    File(std::path::PathBuf),
    /// A vendor backend's key: the part after `vendor:`, parsed by hsm-abi.
    Vendor(String),
    /// A PEM private key given inline (compatibility only: it is a secret).
    InlinePem,
}

impl KeyToken {
    /// Classify a string; the scheme-specific part is parsed by the backend that owns it.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.starts_with("-----BEGIN") {
            return Ok(KeyToken::InlinePem);
        }
        let (scheme, rest) = t.split_once(':').ok_or_else(|| {
            Error::parse(
                "key token",
                "expected `pkcs11:`, `tpm:`, `dice:`, `file:`, `vendor:` or a PEM private key",
            )
        })?;
        match scheme {
            "pkcs11" => Ok(KeyToken::Pkcs11(t.to_string())),
            "tpm" => Ok(KeyToken::Tpm(rest.to_string())),
            "dice" => Ok(KeyToken::Dice(rest.to_string())),
            "file" if !rest.is_empty() => Ok(KeyToken::File(rest.into())),
            "file" => Err(Error::parse("key token", "`file:` needs a path")),
            "vendor" => Ok(KeyToken::Vendor(rest.to_string())),
            other => Err(Error::parse("key token", format!("unknown scheme `{other}:`"))),
        }
    }

    /// Whether the token itself is a secret (only inline PEM is).
    pub fn is_secret(&self) -> bool {
        matches!(self, KeyToken::InlinePem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(
            KeyToken::parse("pkcs11:token=a;object=b").unwrap(),
            KeyToken::Pkcs11("pkcs11:token=a;object=b".into())
        );
        assert_eq!(KeyToken::parse("file:/k.pem").unwrap(), KeyToken::File("/k.pem".into()));
        assert_eq!(
            KeyToken::parse("tpm:handle=0x81000200").unwrap(),
            KeyToken::Tpm("handle=0x81000200".into())
        );
        assert!(KeyToken::parse("-----BEGIN PRIVATE KEY-----\n").unwrap().is_secret());
        assert!(KeyToken::parse("nothing").is_err());
        assert!(KeyToken::parse("ftp:x").is_err());
        assert!(KeyToken::parse("file:").is_err());
    }

    #[test]
    fn vendor_tokens() {
        assert_eq!(
            KeyToken::parse("vendor:library=/l.so;identity=a").unwrap(),
            KeyToken::Vendor("library=/l.so;identity=a".into())
        );
        assert!(!KeyToken::parse("vendor:registered=x").unwrap().is_secret());
        assert!(KeyToken::parse("vendors:x").is_err());
    }
}
