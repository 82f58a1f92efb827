//! The options the SDK's transports set on a TLS IO, by the names the SDK uses.

use std::sync::{Arc, Mutex};

use hsm_core::token::KeyToken;
use hsm_core::{Error, Result, SigningKey};
use zeroize::Zeroizing;

use crate::TlsVersions;

/// `TrustedCerts`: PEM trust anchors for the server.
pub const OPTION_TRUSTED_CERTS: &str = "TrustedCerts";
/// `x509certificate` (HTTP transports): the client's PEM certificate chain.
pub const OPTION_X509_CERT: &str = "x509certificate";
/// `x509privatekey` (HTTP transports): the client key, a token or a PEM key.
pub const OPTION_X509_KEY: &str = "x509privatekey";
/// `x509EccCertificate` (MQTT/AMQP transports): same meaning as [`OPTION_X509_CERT`].
pub const OPTION_X509_ECC_CERT: &str = "x509EccCertificate";
/// `x509EccAliasKey` (MQTT/AMQP transports): same meaning as [`OPTION_X509_KEY`].
pub const OPTION_X509_ECC_KEY: &str = "x509EccAliasKey";
/// `tls_version`: an `int` (10, 11, 12: OpenSSL's minimum version; 13 here: TLS 1.3 only).
pub const OPTION_TLS_VERSION: &str = "tls_version";
/// `underlying_io_options`: an option handler for the underlying IO.
pub(crate) const OPTION_UNDERLYING_IO_OPTIONS: &str = "underlying_io_options";
/// `x509PrivatekeyType`: an `int`, 0 (a key string) is accepted, 1 (OpenSSL engine) is not.
pub(crate) const OPTION_PRIVATE_KEY_TYPE: &str = "x509PrivatekeyType";
/// `tls_renegotiation`: accepted and ignored (rustls never renegotiates).
pub(crate) const OPTION_TLS_RENEGOTIATION: &str = "tls_renegotiation";

/// How the value behind an option's `const void*` is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// A NUL-terminated string.
    Str,
    /// A pointer to an `int`.
    Int,
    /// A pointer to a `bool`, read and ignored.
    Bool,
    /// An `OPTIONHANDLER_HANDLE` for the underlying IO.
    UnderlyingOptions,
    /// Not an option of the TLS layer.
    Unknown,
}

/// The kind of option `name` is.
pub fn option_kind(name: &str) -> OptionKind {
    match name {
        OPTION_TRUSTED_CERTS | OPTION_X509_CERT | OPTION_X509_KEY | OPTION_X509_ECC_CERT | OPTION_X509_ECC_KEY => {
            OptionKind::Str
        }
        OPTION_TLS_VERSION | OPTION_PRIVATE_KEY_TYPE => OptionKind::Int,
        OPTION_TLS_RENEGOTIATION => OptionKind::Bool,
        OPTION_UNDERLYING_IO_OPTIONS => OptionKind::UnderlyingOptions,
        _ => OptionKind::Unknown,
    }
}

/// Resolves a key option (an alias-key token, or a PEM private key) to a backend signer.
pub type KeyResolver = Arc<dyn Fn(&str) -> Result<Arc<dyn SigningKey>> + Send + Sync>;

/// The client key as it was given.
#[derive(Clone)]
pub enum KeyOption {
    /// An alias-key token: a reference, safe to copy and log; as given, and decoded.
    Token(String, KeyToken),
    /// A PEM private key given inline (compatibility): a secret, never copied out.
    InlinePem(Zeroizing<String>),
}

impl std::fmt::Debug for KeyOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOption::Token(t, _) => f.debug_tuple("Token").field(t).finish(),
            KeyOption::InlinePem(_) => f.write_str("InlinePem(<secret>)"),
        }
    }
}

impl KeyOption {
    /// Decode a key option value (once: the typed token says whether it is a secret); a string
    /// that is neither a valid token nor a PEM key is an error.
    pub fn parse(value: &str) -> Result<Self> {
        let token = KeyToken::decode(value)?;
        Ok(if token.is_secret() {
            KeyOption::InlinePem(Zeroizing::new(value.to_string()))
        } else {
            KeyOption::Token(value.trim().to_string(), token)
        })
    }

    /// The string handed to the resolver.
    pub fn as_str(&self) -> &str {
        match self {
            KeyOption::Token(t, _) => t,
            KeyOption::InlinePem(p) => p,
        }
    }
}

/// Every TLS option set on one IO.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM trust anchors; `None`: the system store.
    pub trusted_certs: Option<String>,
    /// PEM client certificate chain, leaf first.
    pub certificate: Option<String>,
    /// The client key.
    pub key: Option<KeyOption>,
    /// Allowed protocol versions.
    pub versions: TlsVersions,
    /// The `tls_version` value as given (to copy it out again).
    pub tls_version_value: Option<i32>,
}

impl TlsOptions {
    /// Set a string option. The x509 pair may each be set once per IO, as with the SDK's
    /// OpenSSL layer; `TrustedCerts` may be replaced.
    pub fn set_str(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            OPTION_TRUSTED_CERTS => {
                check_once(Checked::TrustAnchors, value, || {
                    crate::roots_from_pem("option TrustedCerts", value.as_bytes()).map(drop)
                })?;
                self.trusted_certs = Some(value.to_string());
            }
            OPTION_X509_CERT | OPTION_X509_ECC_CERT => {
                if self.certificate.is_some() {
                    return Err(Error::invalid("x509 certificate option", "was already set on this IO"));
                }
                check_once(Checked::Certificates, value, || {
                    hsm_core::pem::parse_certificates(&format!("option {name}"), value.as_bytes()).map(drop)
                })?;
                self.certificate = Some(value.to_string());
            }
            OPTION_X509_KEY | OPTION_X509_ECC_KEY => {
                if self.key.is_some() {
                    return Err(Error::invalid("x509 key option", "was already set on this IO"));
                }
                self.key = Some(KeyOption::parse(value).map_err(|e| match e {
                    Error::Parse { reason, .. } => Error::parse(format!("option {name}"), reason),
                    other => other,
                })?);
            }
            other => {
                return Err(Error::unsupported(
                    "the rustls TLS IO",
                    format!("string option `{other}`"),
                ));
            }
        }
        Ok(())
    }

    /// Set an `int` option.
    pub(crate) fn set_int(&mut self, name: &str, value: i32) -> Result<()> {
        match name {
            OPTION_TLS_VERSION => {
                self.versions = match value {
                    0 | 10 | 11 => {
                        tracing::warn!(
                            value,
                            "tls_version below 1.2 requested: TLS 1.2 is the minimum of rustls"
                        );
                        TlsVersions::Both
                    }
                    12 => TlsVersions::Both,
                    13 => TlsVersions::Tls13Only,
                    other => {
                        return Err(Error::invalid(
                            "tls_version",
                            format!("{other} is not one of 10, 11, 12 (TLS 1.2 and 1.3) or 13 (TLS 1.3 only)"),
                        ));
                    }
                };
                self.tls_version_value = Some(value);
                Ok(())
            }
            OPTION_PRIVATE_KEY_TYPE => match value {
                0 => Ok(()),
                1 => Err(Error::unsupported(
                    "the rustls TLS IO",
                    "x509PrivatekeyType ENGINE (give an alias-key token in x509privatekey instead)",
                )),
                other => Err(Error::invalid(
                    "x509PrivatekeyType",
                    format!("unknown key type {other}"),
                )),
            },
            other => Err(Error::unsupported(
                "the rustls TLS IO",
                format!("integer option `{other}`"),
            )),
        }
    }

    /// The options to copy out for a reconnect (`retrieveoptions`): every value but an inline
    /// PEM key, which is a secret (its certificate is left out with it).
    pub fn retrievable(&self) -> Vec<(&'static str, RetrievedValue)> {
        let mut out = Vec::new();
        if let Some(t) = &self.trusted_certs {
            out.push((OPTION_TRUSTED_CERTS, RetrievedValue::Str(t.clone())));
        }
        match (&self.certificate, &self.key) {
            (Some(c), Some(KeyOption::Token(k, _))) => {
                out.push((OPTION_X509_CERT, RetrievedValue::Str(c.clone())));
                out.push((OPTION_X509_KEY, RetrievedValue::Str(k.clone())));
            }
            (_, Some(KeyOption::InlinePem(_))) => {
                tracing::warn!("an inline PEM private key is a secret: it is not copied out by retrieveoptions");
            }
            (Some(c), None) => out.push((OPTION_X509_CERT, RetrievedValue::Str(c.clone()))),
            (None, Some(KeyOption::Token(k, _))) => out.push((OPTION_X509_KEY, RetrievedValue::Str(k.clone()))),
            (None, None) => {}
        }
        if let Some(v) = self.tls_version_value {
            out.push((OPTION_TLS_VERSION, RetrievedValue::Int(v)));
        }
        out
    }
}

/// What a checked option value was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    /// PEM certificates that rustls takes as trust anchors (`TrustedCerts`).
    TrustAnchors,
    /// A PEM chain of X.509 certificates (`x509certificate`, `x509EccCertificate`).
    Certificates,
}

/// Values checked at most (a device sets one trust bundle and one or two chains).
const CHECKED_CAPACITY: usize = 8;

/// Option values that passed their check in this process. The SDK creates a new IO for every
/// connection and sets the same PEM options on it; parsing them again (every certificate
/// through an X.509 parser, the anchors into a root store) was a good part of what a new IO
/// costs. Only public values are kept (trust anchors and certificate chains, never a key); a
/// value that failed its check is not kept, so it fails again.
static CHECKED: Mutex<Vec<(Checked, Arc<str>)>> = Mutex::new(Vec::new());

/// How many option values were parsed and checked (not found among those checked before).
static CHECKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Run `check` on `value` unless the same value passed the same check before.
fn check_once(kind: Checked, value: &str, check: impl FnOnce() -> Result<()>) -> Result<()> {
    let seen = |list: &Vec<(Checked, Arc<str>)>| list.iter().any(|(k, v)| *k == kind && **v == *value);
    // A panic while holding the lock cannot leave the list inconsistent: use it as it is.
    let lock = || CHECKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen(&lock()) {
        return Ok(());
    }
    CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    check()?;
    let mut list = lock();
    if !seen(&list) {
        if list.len() >= CHECKED_CAPACITY {
            list.remove(0);
        }
        list.push((kind, Arc::from(value)));
    }
    Ok(())
}

/// How many option values were parsed and checked so far, in the whole process (for tests: a
/// value set again on a new IO is not parsed again).
#[doc(hidden)]
pub fn checks_done() -> usize {
    CHECKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A value copied out by [`TlsOptions::retrievable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrievedValue {
    /// A string option (a PEM text, a key token).
    Str(String),
    /// An integer option.
    Int(i32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_options_are_classified_and_secrets_stay_in() {
        let mut o = TlsOptions::default();
        assert!(o.set_str(OPTION_X509_ECC_KEY, "no token").is_err());
        o.set_str(OPTION_X509_ECC_KEY, "pkcs11:token=t;object=k").unwrap();
        assert!(o.set_str(OPTION_X509_KEY, "pkcs11:token=t;object=k").is_err());
        let r = o.retrievable();
        assert_eq!(
            r,
            vec![(OPTION_X509_KEY, RetrievedValue::Str("pkcs11:token=t;object=k".into()))]
        );

        let mut o = TlsOptions::default();
        o.set_str(
            OPTION_X509_KEY,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(format!("{o:?}").contains("<secret>"));
        assert!(o.retrievable().is_empty());
    }

    #[test]
    fn versions_and_kinds() {
        let mut o = TlsOptions::default();
        o.set_int(OPTION_TLS_VERSION, 13).unwrap();
        assert_eq!(o.versions, TlsVersions::Tls13Only);
        o.set_int(OPTION_TLS_VERSION, 12).unwrap();
        assert_eq!(o.versions, TlsVersions::Both);
        assert!(o.set_int(OPTION_TLS_VERSION, 14).is_err());
        assert!(o.set_int(OPTION_PRIVATE_KEY_TYPE, 1).is_err());
        assert_eq!(option_kind("TrustedCerts"), OptionKind::Str);
        assert_eq!(option_kind("proxy_data"), OptionKind::Unknown);
        assert!(o.set_str(OPTION_TRUSTED_CERTS, "not pem").is_err());
    }
}
