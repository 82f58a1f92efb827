//! The certificate requests of issued identities (made by `hsm_core::csr` through the
//! [`SigningKey`] trait, whatever holds the key).

use hsm_core::{Curve, Error, KeyAlgorithm, Result, SigningKey};

/// The DER PKCS#10 request with subject `CN=common_name` for `key`, signed by it; only EC keys
/// (DPS issues certificates for P-384 keys; RSA is refused by the service).
pub(crate) fn csr_der(key: &dyn SigningKey, common_name: &str) -> Result<Vec<u8>> {
    match key.algorithm() {
        KeyAlgorithm::Ec(Curve::P256 | Curve::P384) => hsm_core::csr::request_der(key, common_name),
        other => Err(Error::unsupported("a certificate request", format!("{other:?} keys"))),
    }
}
