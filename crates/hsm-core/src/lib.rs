#![warn(missing_docs)]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

pub mod config;
pub mod csr;
pub mod der;
mod error;
pub mod file;
pub mod fs;
pub mod hex;
pub(crate) mod pct;
pub mod pem;
pub mod redact;
pub mod sas;
mod scheme;
pub mod tls;
pub mod token;
mod traits;
pub mod x509;

pub use error::{Error, Origin, Result};
pub use scheme::{Curve, KeyAlgorithm, SignatureScheme};
pub use traits::{OpenSigner, SasSigner, SigningKey, SymmetricIdentity, TpmIdentity, X509Identity};
