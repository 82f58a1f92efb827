//! TPM 2.0 backend of hsm-abi, over tss-esapi 7 (tpm2-tss 3.2).
//!
//! - [`Tpm`]: the SDK's "sastoken" (TPM) attestation ([`hsm_core::TpmIdentity`]): EK and SRK at
//!   their standard persistent handles (created and persisted when missing), activation of the
//!   identity key the Device Provisioning Service sends, and HMAC-SHA256 with that key.
//! - [`TpmX509`] and [`open_signer`]: an x509 identity whose ECDSA P-256 key lives in the TPM
//!   (persistent handle or a saved key blob), for TLS and CSRs; the key never leaves the TPM.
//! - [`service`]: the service side of the activation in pure Rust (MakeCredential to an EK and an
//!   HMAC key duplicated to an SRK), used by the DPS emulator and the tests.
//!
//! Feature `device` (default) is the TPM side over tss-esapi; without it the crate is pure
//! Rust (registration ids, the activation blob, [`service`]) and links no tpm2-tss.
//!
//! One connection per TCTI is shared by every object of the process and serialized by a mutex:
//! swtpm serves one client at a time and a device without resource manager does the same.
//!
//! # Configuration
//!
//! ```toml
//! [tpm]                              # the SDK's TPM (sastoken) interface
//! backend = "tpm"
//! tcti = "swtpm:host=127.0.0.1,port=2321"  # default: $TPM2TOOLS_TCTI, $TCTI, device:/dev/tpmrm0
//! ek_template = "sdk"                # or "tcg"; only used when no EK is persisted yet
//! owner_auth = "str:secret"          # or owner_auth_file; hex:... for bytes; default empty
//! endorsement_auth_file = "eh.txt"   # or endorsement_auth; default empty
//! identity_handle = 0x81000100       # where the DPS identity key is persisted
//!
//! [x509]                             # an x509 identity whose P-256 key is in the TPM
//! backend = "tpm"
//! tcti = "swtpm:host=127.0.0.1,port=2321"
//! key_handle = "0x81000200"          # or key_blob = "device.tpmkey" (from `hsmctl tpm keygen`)
//! certificate = "device-chain.pem"   # PEM chain, leaf first; its key must be the TPM key
//! ```
//!
//! Alias-key tokens (what `get_key` hands to the TLS layer; no secret in them):
//! `tpm:handle=0x81000200` or `tpm:blob=/path/device.tpmkey`, optionally followed by
//! `;tcti=<TCTI>` (last; without it the default TCTI is used).
//!
//! Linking: a C program that links a library built with this crate must also link
//! `pkg-config --libs tss2-esys tss2-tctildr tss2-mu tss2-sys`.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

mod blob;
#[cfg(feature = "device")]
mod conn;
#[cfg(feature = "device")]
mod error;
#[cfg(feature = "device")]
mod handles;
#[cfg(feature = "device")]
mod hmac_sequence;
#[cfg(feature = "device")]
mod identity;
#[cfg(feature = "device")]
mod identity_key;
#[cfg(feature = "device")]
mod objects;
mod registration;
pub mod service;
#[cfg(feature = "device")]
mod session;
#[cfg(feature = "device")]
mod templates;
#[cfg(feature = "device")]
mod tpm_options;
// Without `device` only the service side uses it (the HMAC sequence commands are gone).
#[cfg(feature = "testing")]
pub mod testing;
#[cfg_attr(not(feature = "device"), allow(dead_code))]
mod tpm2;
#[cfg(feature = "device")]
mod x509;

pub use blob::ActivationBlob;
#[cfg(feature = "device")]
pub use conn::{DEFAULT_COMMAND_TIMEOUT, TpmConn, default_tcti};
#[cfg(feature = "device")]
pub use handles::{EK_HANDLE, IDENTITY_HANDLE, parse_persistent_handle, staging_handle};
#[cfg(feature = "device")]
pub use identity::{EkReport, KeysCreated, Tpm, ek_report};
#[cfg(feature = "device")]
pub use identity_key::ActivationStep;
pub use registration::registration_id;
#[cfg(feature = "device")]
pub use session::HierarchyAuth;
#[cfg(feature = "device")]
pub use templates::{EkTemplate, ek_template};
#[cfg(feature = "device")]
pub use tpm_options::TpmOptions;
#[cfg(feature = "device")]
pub use x509::{KeyLocation, SignerToken, TpmKey, TpmX509, generate_key, generate_key_on, open_signer};
