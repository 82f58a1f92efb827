//! Test PKIs made with rcgen: roots, intermediates, device and server leaves, self-signed certificates.
//!
//! Every certificate the tests need is built here; a test that wants something unusual edits the
//! parameters through [`Ca::leaf_with`] rather than building its own.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The key types the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384 (what DPS issues certificates to).
    P384,
}

impl KeyType {
    /// rcgen's signature algorithm for this key type.
    pub fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// A fresh key pair of this type.
    pub fn generate(self) -> KeyPair {
        KeyPair::generate_for(self.algorithm()).expect("rcgen generates an ECDSA key")
    }
}

/// Parameters with subject CN `cn` and nothing else.
pub fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

/// A CA's parameters: CN `cn`, unconstrained, keyCertSign and cRLSign.
pub fn ca_params(cn: &str) -> CertificateParams {
    let mut p = params(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// A device leaf's parameters: CN `cn`, not a CA, digitalSignature, clientAuth.
pub fn leaf_params(cn: &str) -> CertificateParams {
    let mut p = params(cn);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p
}

/// A leaf's parameters with CN `cn` and the SANs `names` (DNS names or IP addresses), no extension
/// beyond them: what a plain TLS test certificate needs, for either side.
pub fn named_params(cn: &str, names: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("names are DNS names or IP addresses");
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

/// A TLS server leaf's parameters: the SANs `names` (DNS names or IP addresses), serverAuth.
pub fn server_params(names: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("server names are DNS names or IP addresses");
    p.distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("test server"));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p
}

/// A certificate authority that issues intermediates and leaves.
pub struct Ca {
    /// The CA's certificate and key, as rcgen signs with them.
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A self-signed P-256 root with CN `cn`.
    pub fn root(cn: &str) -> Ca {
        Ca::root_with(cn, KeyType::P256, |_| {})
    }

    /// A self-signed root of key type `key`, with the parameters edited by `edit`.
    pub fn root_with(cn: &str, key: KeyType, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
        let mut p = ca_params(cn);
        edit(&mut p);
        Ca {
            issuer: CertifiedIssuer::self_signed(p, key.generate()).expect("rcgen self-signs the root"),
        }
    }

    /// A P-256 intermediate CA with CN `cn`, signed by this one.
    pub fn intermediate(&self, cn: &str) -> Ca {
        self.intermediate_with(cn, KeyType::P256, |_| {})
    }

    /// An intermediate CA of key type `key` signed by this one, its parameters edited by `edit`.
    pub fn intermediate_with(&self, cn: &str, key: KeyType, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
        let mut p = ca_params(cn);
        edit(&mut p);
        Ca {
            issuer: CertifiedIssuer::signed_by(p, key.generate(), &self.issuer).expect("rcgen signs the intermediate"),
        }
    }

    /// The CA certificate (DER).
    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A P-256 device leaf (clientAuth) with subject CN `cn`.
    pub fn leaf(&self, cn: &str) -> Identity {
        self.leaf_with(cn, KeyType::P256, |_| {})
    }

    /// A device leaf of key type `key`, with [`leaf_params`] edited by `edit`.
    pub fn leaf_with(&self, cn: &str, key: KeyType, edit: impl FnOnce(&mut CertificateParams)) -> Identity {
        let mut p = leaf_params(cn);
        edit(&mut p);
        self.issue(p, key.generate())
    }

    /// A P-256 TLS server leaf for `names`.
    pub fn server(&self, names: &[&str]) -> Identity {
        self.issue(server_params(names), KeyType::P256.generate())
    }

    /// Sign `params` for `key`.
    pub fn issue(&self, params: CertificateParams, key: KeyPair) -> Identity {
        let cert = params.signed_by(&key, &self.issuer).expect("rcgen signs the leaf");
        Identity::new(vec![cert.der().clone()], key)
    }

    /// Sign `params` for a public key held elsewhere (a token, a TPM: `hsm_core::csr::SubjectKey`).
    pub fn certify(&self, params: CertificateParams, public_key: &impl PublicKeyData) -> CertificateDer<'static> {
        params
            .signed_by(public_key, &self.issuer)
            .expect("rcgen signs the certificate")
            .der()
            .clone()
    }
}

/// A TLS identity: its chain (leaf first) and private key.
pub struct Identity {
    /// The certificates, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
    key_pair: KeyPair,
}

impl Identity {
    /// An identity of `chain` and the key pair of its leaf.
    pub fn new(chain: Vec<CertificateDer<'static>>, key_pair: KeyPair) -> Identity {
        Identity {
            chain,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
            key_pair,
        }
    }

    /// The chain with `ca`'s certificate appended (an intermediate the device sends).
    pub fn with_intermediate(mut self, ca: &Ca) -> Identity {
        self.chain.push(ca.der());
        self
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.chain[0].clone()
    }

    /// The leaf's key pair.
    pub fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// The leaf's key pair, owned.
    pub fn into_key_pair(self) -> KeyPair {
        self.key_pair
    }

    /// The leaf alone, PEM.
    pub fn cert_pem(&self) -> String {
        hsm_core::pem::certificates_to_pem(&self.chain[..1])
    }

    /// The whole chain, PEM, leaf first.
    pub fn chain_pem(&self) -> String {
        hsm_core::pem::certificates_to_pem(&self.chain)
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key_pair.serialize_pem()
    }

    /// Write the chain and key into `dir` as `{name}.cert.pem` and `{name}.key.pem`; their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.cert.pem"));
        let key = dir.join(format!("{name}.key.pem"));
        std::fs::write(&cert, self.chain_pem()).unwrap_or_else(|e| panic!("write {}: {e}", cert.display()));
        std::fs::write(&key, self.key_pem()).unwrap_or_else(|e| panic!("write {}: {e}", key.display()));
        (cert, key)
    }
}

/// A self-signed P-256 TLS server certificate for `names` (for loopback test servers).
pub fn self_signed_server(names: &[&str]) -> Identity {
    let key = KeyType::P256.generate();
    let cert = server_params(names).self_signed(&key).expect("rcgen self-signs");
    Identity::new(vec![cert.der().clone()], key)
}

/// A self-signed certificate with CN `cn` for a key of type `key` (a device identity no CA vouches for).
pub fn self_signed(cn: &str, key: KeyType) -> Identity {
    let key = key.generate();
    let cert = leaf_params(cn).self_signed(&key).expect("rcgen self-signs");
    Identity::new(vec![cert.der().clone()], key)
}

/// A PKCS#10 request (DER) with subject CN `cn` for a fresh key of type `key`; the key too.
pub fn csr(cn: &str, key: KeyType) -> (Vec<u8>, KeyPair) {
    let key = key.generate();
    let der = params(cn)
        .serialize_request(&key)
        .expect("rcgen signs the request")
        .der()
        .to_vec();
    (der, key)
}

impl Ca {
    /// A P-256 device identity on files (leaf `cn`, then the certificates of `extra`) written into
    /// `dir`, opened as the file backend opens it.
    pub fn file_identity(&self, dir: &Path, cn: &str, extra: &[&Ca]) -> std::sync::Arc<hsm_core::file::FileX509> {
        let mut id = self.leaf(cn);
        for ca in extra {
            id = id.with_intermediate(ca);
        }
        let (cert, key) = id.write(dir, cn);
        let opened = hsm_core::file::FileX509::open(&cert, &key, hsm_core::file::KeyReference::Token)
            .unwrap_or_else(|e| panic!("open the file identity {cn}: {e}"));
        std::sync::Arc::new(opened)
    }
}
