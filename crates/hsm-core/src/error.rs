use std::path::PathBuf;

/// Where a device error came from; used to map errors onto stable C code ranges.
///
/// Not `#[non_exhaustive]`, like [`Error`]: every crate that matches on them is in this
/// workspace, and an exhaustive match is what makes a new variant a compile error in the C
/// mapping (`hsm-abi`'s `ffi/errors.rs`) instead of a silent `HSM_ABI_ERR_INTERNAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A PKCS#11 module (the `rv` is a `CK_RV`).
    Pkcs11,
    /// The TPM or the TSS (the `rv` is a `TPM2_RC`).
    Tpm,
    /// The DICE engine.
    Dice,
    /// The TLS stack (rustls) during a handshake.
    Tls,
    /// A vendor backend's C table (the `rv` is the vendor's code).
    Vendor,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Pkcs11 => "PKCS#11",
            Origin::Tpm => "TPM",
            Origin::Dice => "DICE",
            Origin::Tls => "TLS",
            Origin::Vendor => "vendor backend",
        })
    }
}

/// Every error of hsm-core and of the backends built on it.
///
/// Our own bugs ([`Error::Internal`]) and the device's errors ([`Error::Device`]) are
/// different variants; each carries the operation and the object it was about.
///
/// Not `#[non_exhaustive]` (see [`Origin`]): adding a variant must fail to compile wherever
/// errors are mapped, in particular onto the stable C codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is missing, unreadable or wrong: names the source, the key and
    /// what was expected.
    #[error("configuration {source_name}: {key}: {message}")]
    Config {
        /// The file (or `<inline>`, `HSM_ABI_CONFIG`) the configuration came from.
        source_name: String,
        /// The key or section that is wrong (`x509.key`, `[tpm]`).
        key: String,
        /// What was expected.
        message: String,
    },
    /// No configuration was given at all.
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// A file could not be read or written.
    #[error("{op}: {path}: {source}")]
    Io {
        /// What was being done (`read certificate`).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An argument from the caller is invalid (NULL, empty, not UTF-8, out of range).
    #[error("invalid argument `{what}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Data (PEM, DER, a token, a blob) could not be parsed.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was being parsed (`certificate chain device.pem`).
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The backend or key cannot do this operation.
    #[error("{op} is not supported by {backend}")]
    Unsupported {
        /// The backend or key (`file backend`, `this key`).
        backend: String,
        /// The operation it cannot do.
        op: String,
    },
    /// A software cryptographic operation failed.
    #[error("{op} failed: {reason}")]
    Crypto {
        /// The operation (`ECDSA signature`).
        op: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A device (token, TPM, vendor library) returned an error code.
    #[error("{origin} {op}: {message} (rv 0x{rv:x})")]
    Device {
        /// Which kind of device.
        origin: Origin,
        /// The call that failed (`C_Sign`, `Esys_ActivateCredential`).
        op: String,
        /// The device's raw return code, for C callers (`hsm_abi_last_error_rv`).
        rv: u64,
        /// The code in words.
        message: String,
    },
    /// A bug in this project: an invariant that should have held did not.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A result whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// [`Error::Config`]: `key` of the configuration `source_name` is wrong, `message` says how.
    pub fn config(source_name: impl Into<String>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            source_name: source_name.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// [`Error::Parse`]: `what` could not be parsed, for `reason`.
    pub fn parse(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Parse {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// [`Error::InvalidArgument`]: the argument `what` is invalid, for `reason`.
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what,
            reason: reason.into(),
        }
    }

    /// [`Error::Unsupported`]: `backend` cannot do `op`.
    pub fn unsupported(backend: impl Into<String>, op: impl Into<String>) -> Self {
        Error::Unsupported {
            backend: backend.into(),
            op: op.into(),
        }
    }

    /// [`Error::Io`]: `op` on `path` failed with `source`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
