//! A CA that issues for CSRs the way DPS does with the `csr` field (feature `testing`): ECDSA
//! P-384 root and intermediate, chains returned leaf, intermediate, root. For tests of this
//! crate and of its users (the C ABI, hsmctl).

use hsm_core::{Error, Result};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};

fn crypto(op: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::Crypto {
        op,
        reason: e.to_string(),
    }
}

fn ca_params(cn: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(crypto("CA parameters"))?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ok(p)
}

fn p384() -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(crypto("generate a P-384 key"))
}

/// A root and an intermediate CA.
pub struct Ca {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A new root and intermediate (P-384), named after `name`.
    pub fn new(name: &str) -> Result<Ca> {
        let root = CertifiedIssuer::self_signed(ca_params(&format!("{name} root"))?, p384()?)
            .map_err(crypto("make the root CA"))?;
        let intermediate = CertifiedIssuer::signed_by(ca_params(&format!("{name} intermediate"))?, p384()?, &root)
            .map_err(crypto("make the intermediate CA"))?;
        Ok(Ca { root, intermediate })
    }

    /// The chain for a DER CSR (its signature checked), with the CSR's subject as it is.
    pub fn issue(&self, csr: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
        let params =
            rcgen::CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr.to_vec()))
                .map_err(crypto("read the CSR"))?;
        let leaf = params.signed_by(&self.intermediate).map_err(crypto("issue"))?;
        Ok(vec![leaf.der().clone(), self.intermediate(), self.root()])
    }

    /// A chain for another key than any request's, with subject `CN=cn`.
    pub fn issue_for_other_key(&self, cn: &str) -> Result<Vec<CertificateDer<'static>>> {
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(crypto("leaf parameters"))?;
        p.distinguished_name.push(DnType::CommonName, cn);
        let leaf = p.signed_by(&p384()?, &self.intermediate).map_err(crypto("issue"))?;
        Ok(vec![leaf.der().clone(), self.intermediate(), self.root()])
    }

    /// The intermediate's certificate.
    pub fn intermediate(&self) -> CertificateDer<'static> {
        self.intermediate.der().clone()
    }

    /// The root's certificate.
    pub fn root(&self) -> CertificateDer<'static> {
        self.root.der().clone()
    }

    /// The root certificate as PEM (a trust anchor for a TLS server).
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }
}
