//! Client configurations kept across IOs.
//!
//! The SDK creates a new TLS IO for every connection (its HTTP transport per registration, its
//! MQTT transport per reconnect) and sets the same options on it again. Resolving the key token
//! to a signer (for PKCS#11: find the key and read its public key on the token) and building the
//! rustls configuration (parsing the trust anchors and the chain, checking that key and
//! certificate match) then cost more than the handshake's own work. The configuration built for
//! one set of options is kept here and reused by the next IO with the same options.
//!
//! Kept only where nothing secret stays in memory: no key, or a key token whose key stays in a
//! device (the token says which: `KeyToken::key_in_process`). A `file:`, `dice:` or `vendor:`
//! token, and an inline PEM key, may put private key material in this process, which is kept no
//! longer than the IO that uses it. An entry is
//! dropped when an open with it fails, so the next open resolves the token again.

use std::sync::{Arc, Mutex};

use super::options::{KeyOption, TlsOptions};
use crate::TlsVersions;

/// Sets of options kept at most (a device has one identity, sometimes two or three).
const CAPACITY: usize = 4;

#[derive(PartialEq, Eq)]
struct Key {
    trusted_certs: Option<String>,
    certificate: Option<String>,
    token: Option<String>,
    versions: TlsVersions,
}

static CACHE: Mutex<Vec<(Key, Arc<rustls::ClientConfig>)>> = Mutex::new(Vec::new());

/// The cache key of `options`, or `None` when their configuration must not outlive the IO.
fn key(options: &TlsOptions) -> Option<Key> {
    let token = match &options.key {
        None => None,
        Some(KeyOption::InlinePem(_)) => return None,
        Some(KeyOption::Token(_, token)) if token.key_in_process() => return None,
        Some(KeyOption::Token(t, _)) => Some(t.clone()),
    };
    Some(Key {
        trusted_certs: options.trusted_certs.clone(),
        certificate: options.certificate.clone(),
        token,
        versions: options.versions,
    })
}

fn cache() -> std::sync::MutexGuard<'static, Vec<(Key, Arc<rustls::ClientConfig>)>> {
    // A panic while holding the lock cannot leave the list inconsistent: use it as it is.
    CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The configuration kept for these options, if any.
pub(crate) fn get(options: &TlsOptions) -> Option<Arc<rustls::ClientConfig>> {
    let key = key(options)?;
    let mut entries = cache();
    let at = entries.iter().position(|(k, _)| *k == key)?;
    // Most recently used last.
    let entry = entries.remove(at);
    let config = entry.1.clone();
    entries.push(entry);
    Some(config)
}

/// Keep `config` for these options (if they may be kept).
pub(crate) fn put(options: &TlsOptions, config: &Arc<rustls::ClientConfig>) {
    let Some(key) = key(options) else {
        return;
    };
    let mut entries = cache();
    entries.retain(|(k, _)| *k != key);
    if entries.len() >= CAPACITY {
        entries.remove(0);
    }
    entries.push((key, config.clone()));
}

/// Forget the configuration kept for these options (an open with it failed).
pub(crate) fn forget(options: &TlsOptions) {
    if let Some(key) = key(options) {
        cache().retain(|(k, _)| *k != key);
    }
}
