//! Issued identities: the device makes an EC P-384 key (a file for development, or on a
//! PKCS#11 token), sends a CSR for it, and keeps the chain the service issued; renewal makes a
//! new key each time, and the previous working identity stays until the new one was verified,
//! stored and used once ([`store::Store`]).
//!
//! ```toml
//! [x509]
//! backend = "issued"
//! store = "/var/lib/hsm-abi/issued"     # directory: state.toml, chain files, key files
//! registration_id = "device-01"          # the CN of every request
//! keys = "pkcs11:token=device?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/device/pin"
//! # keys = "file"                         # P-384 PEM files in the store (development only)
//! ```
//!
//! [`IssuedX509`] serves the current generation: each call reads the state, so after a
//! renewal the next `get_cert`/`get_key` (and the next TLS connection) uses the new pair.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

mod chain;
mod csr;
mod files;
#[cfg(feature = "dps")]
pub mod flow;
mod keys;
mod renewal_due;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hsm_core::config::Section;
use hsm_core::{OpenSigner, Result, SigningKey, X509Identity};
use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use zeroize::Zeroizing;

pub use keys::KeySource;
pub use renewal_due::{CertificateInfo, RENEW_AT_PERCENT};
pub use store::{CRASH_ENV, Generation, STEPS, State, Store};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    store: PathBuf,
    registration_id: String,
    keys: String,
}

type Loaded = (Generation, Vec<CertificateDer<'static>>, Arc<dyn SigningKey>);

/// The x509 identity of an issued-identity store: always its current generation.
pub struct IssuedX509 {
    store: Store,
    loaded: Mutex<Option<(Generation, Loaded)>>,
}

/// The store an `[x509] backend = "issued"` section names (nothing need be issued yet); its
/// keys are opened with `open_signer` (`hsm::open_signer`).
pub fn store_from_section(section: &Section, open_signer: OpenSigner) -> Result<Store> {
    let p: Params = section.parse()?;
    let keys = KeySource::parse(&p.keys).map_err(|e| section.error("keys", e.to_string()))?;
    Store::open(&section.path(&p.store), &p.registration_id, keys, open_signer)
        .map_err(|e| section.error("store", e.to_string()))
}

impl IssuedX509 {
    /// The identity of an `[x509] backend = "issued"` section (see [`store_from_section`]).
    pub fn from_section(section: &Section, open_signer: OpenSigner) -> Result<Self> {
        let id = IssuedX509::new(store_from_section(section, open_signer)?);
        id.load().map_err(|e| section.context("store", e))?;
        Ok(id)
    }

    /// The identity the store's current generation holds (loaded on first use).
    pub fn new(store: Store) -> Self {
        IssuedX509 {
            store,
            loaded: Mutex::new(None),
        }
    }

    /// The store behind the identity.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current generation, reopened when the state names another one than last time.
    fn load(&self) -> Result<Loaded> {
        let state = self.store.state()?;
        let mut slot = self
            .loaded
            .lock()
            .map_err(|_| hsm_core::Error::Internal("issued identity lock poisoned".into()))?;
        // Keyed by the state's current generation: a fallback to the retired one
        // ([`Store::current`]) is loaded, and warned about, once.
        if let (Some((named, cached)), Some(current)) = (slot.as_ref(), state.current.as_ref()) {
            if named == current {
                return Ok(cached.clone());
            }
        }
        let loaded = self.store.current()?;
        if let Some(current) = state.current {
            *slot = Some((current, loaded.clone()));
        }
        Ok(loaded)
    }
}

impl X509Identity for IssuedX509 {
    fn certificate_chain(&self) -> Result<Vec<CertificateDer<'static>>> {
        Ok(self.load()?.1)
    }

    fn signing_key(&self) -> Result<Arc<dyn SigningKey>> {
        Ok(self.load()?.2)
    }

    fn key_reference(&self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(self.load()?.0.key))
    }
}
