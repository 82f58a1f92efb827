//! The server side of TLS: the emulator's own CA and certificate, and a client-certificate verifier that
//! defers chain checks to the request (each enrollment has its own trust anchors).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

use crate::Error;

/// The one crypto provider of the emulator.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    hsm_core::tls::crypto_provider()
}

/// The emulator's server identity: a fresh CA per start, and a leaf for 127.0.0.1 and localhost.
pub(crate) struct ServerIdentity {
    pub(crate) ca_pem: String,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

pub(crate) fn make_server_identity() -> Result<ServerIdentity, Error> {
    let cert_err = |what: &'static str| {
        move |e: rcgen::Error| Error::Certificate {
            what,
            reason: e.to_string(),
        }
    };
    let ca_key = KeyPair::generate().map_err(cert_err("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err("CA"))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dps-emulator server CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(cert_err("CA"))?;

    let key = KeyPair::generate().map_err(cert_err("certificate key"))?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(cert_err("certificate"))?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&key, &ca).map_err(cert_err("certificate"))?;

    Ok(ServerIdentity {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone(), ca.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

/// TLS 1.2 and 1.3, ring, client certificates requested but optional. With `chacha20_only`, only
/// the ChaCha20-Poly1305 suites are offered (see [`crate::ServerOptions::chacha20_only`]).
pub(crate) fn server_config(identity: &ServerIdentity, chacha20_only: bool) -> Result<Arc<ServerConfig>, Error> {
    let mut provider = (*hsm_core::tls::crypto_provider()).clone();
    if chacha20_only {
        provider
            .cipher_suites
            .retain(|s| format!("{:?}", s.suite()).contains("CHACHA20_POLY1305"));
    }
    let provider = Arc::new(provider);
    let verifier = DeferredClientAuth {
        algorithms: provider.signature_verification_algorithms,
    };
    let tls = |what: &str| {
        let what = what.to_string();
        move |source| Error::Tls { what, source }
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls("protocol versions"))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(tls("server certificate"))?;
    Ok(Arc::new(config))
}

/// Offers client authentication, accepts any chain during the handshake (the request decides which
/// enrollment it must verify to), and checks the client's CertificateVerify signature for real, so a
/// presented certificate proves possession of its key.
#[derive(Debug)]
struct DeferredClientAuth {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
