//! PKCS#11 backend of hsm-abi: keys, certificates and HMAC secrets on any token (SoftHSM2,
//! YubiHSM, NXP SE05x, tpm2-pkcs11, ...), addressed by RFC 7512 URIs.
//!
//! - [`Pkcs11X509`]: an x509 identity (private key on the token; certificate object or PEM chain);
//! - [`Pkcs11Symmetric`]: a registration id and an HMAC-SHA256 key that never leaves the token;
//! - [`open_signer`]: the signer for an alias-key token (what `get_key` hands out);
//! - [`tools`]: key generation, CSRs, certificate and secret import, object listing.
//!
//! One `C_Initialize` per module and process ([`module()`], re-initialized only to find a
//! token that went away and came back); one login and a session pool per token
//! ([`Token`], which documents the recovery rules).
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

mod error;
mod key;
mod module;
mod objects;
mod symmetric;
#[cfg(feature = "testing")]
pub mod testing;
mod token;
pub mod tools;
mod uri;
mod x509;

pub use key::Pkcs11Key;
pub use module::{DEFAULT_MODULE, Module, module};
pub use symmetric::{Pkcs11Secret, Pkcs11Symmetric};
pub use token::Token;
pub use uri::{ObjectType, Pkcs11Uri, read_pin_file};
pub use x509::{Pkcs11X509, open_signer};
