//! The DICE/RIoT backend of hsm-abi: a software DICE engine that serves the Azure IoT SDK's
//! riot/x509 attestation, plus (feature `pki`) the test-PKI tools behind `hsmctl certs`.
//!
//! # Layers
//!
//! - **Layer 0** (this engine) reads the Unique Device Secret (UDS, 32 to 4096 bytes, from a
//!   file of mode 0600 or stricter; [`create_uds_file`] makes one with the OS RNG) and derives
//!   CDI_0 and the **DeviceID** key pair. The DeviceID depends on the UDS only.
//! - **Layer 1** is measured: FWID = SHA-256 of the firmware image (or a given digest). CDI_1 and
//!   the **Alias** key pair depend on the UDS and the FWID: new firmware, new Alias key, same
//!   DeviceID.
//!
//! # Derivation (version `hsm-riot/v1`)
//!
//! `HKDF(salt, ikm, info)` is HKDF-SHA256 (RFC 5869) with 32 bytes of output; strings are ASCII
//! without terminator; `H` is SHA-256.
//!
//! ```text
//! CDI_0  = HKDF(salt = H("hsm-riot/v1 layer 0: software DICE engine"), ikm = UDS,   info = "hsm-riot/v1 CDI_0")
//! CDI_1  = HKDF(salt = FWID,                                           ikm = CDI_0, info = "hsm-riot/v1 CDI_1")
//!
//! key pair of a CDI with label L:
//!   PRK  = HKDF-Extract(salt = H("hsm-riot/v1 asymmetric key salt"), ikm = CDI)
//!   c_i  = HKDF-Expand(PRK, info = L || byte(i), 32)      for i = 0, 1, ... 15
//!   d    = the first c_i that, read as a big-endian integer, lies in [1, n-1]
//!          (n = order of P-256; rejection sampling, no modular bias)
//!   public key = d * G (ECDSA P-256)
//!
//! DeviceID = key pair of CDI_0 with L = "hsm-riot/v1 DeviceID P-256 key pair"
//! Alias    = key pair of CDI_1 with L = "hsm-riot/v1 Alias P-256 key pair"
//! ```
//!
//! This follows google/open-dice in spirit (HKDF for CDIs and for key-pair seeds, a
//! measurement as the HKDF salt of the next CDI) without claiming its exact byte format.
//! CDIs and scalars are zeroized when dropped.
//!
//! # Certificates
//!
//! See [`cert`]: the DeviceID certificate (CA, pathlen 0; self-signed or signed by a group CA)
//! and the Alias certificate (end entity, clientAuth, signed by the DeviceID key, with the TCG
//! DiceTcbInfo extension of [`tcbinfo`] carrying the FWID). The common name of both is the
//! registration id. As an [`hsm_core::X509Identity`], [`DiceX509`] gives the chain
//! `[Alias, DeviceID, group CA chain...]`, the Alias key, and a `dice:` token
//! (`hsm_core::token::DiceToken`) that [`open_signer`] resolves.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

pub mod cert;
mod derive;
mod identity;
mod key;
#[cfg(feature = "pki")]
pub mod pki;
pub mod tcbinfo;
mod uds;

pub use cert::{CaSigner, DiceChain, Validity, check_registration_id, issue_chain};
pub use derive::{DiceKeys, Fwid, derive_alias, derive_keys};
pub use identity::{DiceOptions, DiceX509, Firmware, open_signer};
pub use key::DiceKey;
pub use uds::{UDS_NEW_LEN, Uds, create_uds_file};
