//! The swtpm fixture of `test_support`, HTTP helpers for the emulator tests, and the SDK's TPM interface
//! of hsm-abi (`sdk_tpm`); a `tpm:` token's signer and a check of its signatures.
#![allow(dead_code, unused_imports)]

pub mod sdk_tpm;

pub use test_support::swtpm::Swtpm;

/// A client of the emulator's HTTPS port, trusting its CA, with `identity` as its TLS client credential
/// (none: no client certificate), over `versions`.
pub fn agent(
    emu: &dps_emulator::Emulator,
    identity: Option<&dyn hsm_core::X509Identity>,
    versions: tlsio_bridge::TlsVersions,
) -> ureq::Agent {
    let roots = tlsio_bridge::roots_from_pem("emulator CA", emu.server_ca_pem().as_bytes()).unwrap();
    let config = tlsio_bridge::client_config(roots, identity, versions).unwrap();
    ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(config))
        .timeout(std::time::Duration::from_secs(20))
        .build()
}

/// The URL of the device API's `path` (what follows the id scope) on the emulator.
pub fn url(emu: &dps_emulator::Emulator, path: &str) -> String {
    format!(
        "https://localhost:{}/{}/{path}?api-version=2021-06-01",
        emu.port(),
        test_support::emulator::SCOPE
    )
}

/// Send and return (status, JSON body) whatever the status.
pub fn send(req: ureq::Request, body: Option<&serde_json::Value>) -> (u16, serde_json::Value) {
    let r = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport: {e}"),
    };
    (resp.status(), resp.into_json().unwrap_or(serde_json::Value::Null))
}

/// A signer from a `tpm:` token's text: decoded once by hsm-core, opened by the backend.
pub fn open_signer(token: &str) -> hsm_core::Result<std::sync::Arc<dyn hsm_core::SigningKey>> {
    match hsm_core::token::KeyToken::decode(token)? {
        hsm_core::token::KeyToken::Tpm(t) => hsm_tpm::open_signer(&t),
        other => panic!("not a tpm: token: {other:?}"),
    }
}

/// `sig` is an ECDSA P-256 SHA-256 signature of `msg` by the key of the SubjectPublicKeyInfo `spki`
/// (checked in software, by ring).
pub fn verify(spki: &[u8], msg: &[u8], sig: &[u8]) {
    let (_, info): (_, x509_parser::x509::SubjectPublicKeyInfo) =
        x509_parser::prelude::FromDer::from_der(spki).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        info.subject_public_key.data.to_vec(),
    )
    .verify(msg, sig)
    .expect("signature verifies");
}
