//! The errors a [`TlsIo`](super::TlsIo) reports (TLS and socket failures, the peer closing), and
//! the operating system's trust anchors used when no `TrustedCerts` option is set.

use std::io;

use hsm_core::{Error, Result};

use super::Phase;

pub(super) fn tls_error(op: &str, message: String) -> Error {
    Error::Device {
        origin: hsm_core::Origin::Tls,
        op: op.to_string(),
        rv: 0,
        message,
    }
}

pub(super) fn io_error(op: &str, host: &str, port: u16, e: &io::Error) -> Error {
    tls_error(&format!("{op} {host}:{port}"), e.to_string())
}

pub(super) fn peer_closed(phase: Phase) -> Error {
    if phase == Phase::Open {
        tls_error("connection", "the peer closed the connection".into())
    } else {
        tls_error(
            "handshake",
            "the peer closed the connection during the handshake".into(),
        )
    }
}

/// Trust anchors from the operating system's store.
pub(super) fn system_roots() -> Result<rustls::RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system trust store");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::debug!(ignored, "system trust anchors rustls cannot use");
    }
    if roots.is_empty() {
        return Err(Error::config(
            "system trust store",
            "TrustedCerts",
            "no TrustedCerts option was set and the system store has no usable certificate",
        ));
    }
    Ok(roots)
}
