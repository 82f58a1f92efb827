//! Core types of hsm-abi: the backend traits, signature schemes, alias-key tokens,
//! configuration, SAS-token helpers and the plain-file development backend.
//!
//! A backend implements [`X509Identity`] (certificate chain, common name, signing key),
//! [`SymmetricIdentity`] (registration id and a symmetric key or an HMAC over it) or, for
//! TPM-shaped devices, [`TpmIdentity`] (EK, SRK, activate an identity key) over [`SasSigner`]
//! (sign SAS tokens with the identity key; a PKCS#11 HMAC secret offers only this).
//! Keys implement [`SigningKey`]: sign a message with a [`SignatureScheme`] and report the
//! public key. No FFI and no `unsafe` here: the C ABI lives in `hsm-abi`.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

pub mod config;
pub mod csr;
pub mod der;
mod error;
pub mod file;
pub mod fs;
pub(crate) mod pct;
pub mod pem;
pub mod redact;
pub mod sas;
mod scheme;
pub mod tls;
pub mod token;
mod traits;

pub use error::{Error, Origin, Result};
pub use scheme::{Curve, KeyAlgorithm, SignatureScheme};
pub use traits::{OpenSigner, SasSigner, SigningKey, SymmetricIdentity, TpmIdentity, X509Identity};
