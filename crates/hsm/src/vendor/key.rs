//! The key of a vendor identity: the checks of its description and of every signature, and the
//! certificate chain it comes with.

use std::sync::Arc;

use hsm_core::{Curve, Error, KeyAlgorithm, Origin, Result, SignatureScheme, SigningKey};
use rustls_pki_types::CertificateDer;

use super::table::{BytesField, KeyFamily, KeyInfo, MAX_SCHEMES, RawVendorIdentity};

// ---- key checks ----

/// Check a key description from a vendor: known algorithm and size, 1..=8 known schemes that
/// belong to the algorithm, a plausible maximum signature size.
pub fn validate_key_info(backend: &str, info: &KeyInfo) -> Result<KeyAlgorithm> {
    let bad = |why: String| Error::Device {
        origin: Origin::Vendor,
        op: format!("{backend}: key_info"),
        rv: 0,
        message: why,
    };
    let algorithm = match (info.family, info.curve_or_bits) {
        (KeyFamily::Ec, 256) => KeyAlgorithm::Ec(Curve::P256),
        (KeyFamily::Ec, 384) => KeyAlgorithm::Ec(Curve::P384),
        (KeyFamily::Rsa, bits @ 2048..=8192) if bits % 8 == 0 => KeyAlgorithm::Rsa { bits },
        (_, n) => {
            return Err(bad(format!(
                "unsupported key: algorithm {}, curve_or_bits {n} (expected EC 256/384 or RSA 2048..8192)",
                info.algorithm
            )));
        }
    };
    let count = info.schemes.len();
    if count == 0 || count > MAX_SCHEMES {
        return Err(bad(format!("scheme_count {count} is not within 1..={MAX_SCHEMES}")));
    }
    for code in &info.schemes {
        let s = SignatureScheme::try_from(*code).map_err(|_| bad(format!("unknown scheme 0x{code:04x}")))?;
        if !algorithm.schemes().contains(&s) {
            return Err(bad(format!("scheme {s} does not fit a {algorithm:?} key")));
        }
    }
    let max = info.max_signature_len as usize;
    let (lo, hi) = match algorithm {
        KeyAlgorithm::Ec(Curve::P256) => (64, 256),
        KeyAlgorithm::Ec(Curve::P384) => (96, 256),
        KeyAlgorithm::Rsa { bits } => ((bits / 8) as usize, (bits / 8) as usize + 64),
        _ => (1, 1 << 12),
    };
    if !(lo..=hi).contains(&max) {
        return Err(bad(format!(
            "max_signature_len {max} is implausible for a {algorithm:?} key (expected {lo}..={hi})"
        )));
    }
    Ok(algorithm)
}

/// Verify `sig` over `msg` with the public key `spki` for `scheme` (ring, independent of the
/// vendor).
pub fn verify_signature(spki: &[u8], scheme: SignatureScheme, msg: &[u8], sig: &[u8]) -> Result<()> {
    use ring::signature as rs;
    let alg: &dyn rs::VerificationAlgorithm = match scheme {
        SignatureScheme::EcdsaP256Sha256 => &rs::ECDSA_P256_SHA256_ASN1,
        SignatureScheme::EcdsaP384Sha384 => &rs::ECDSA_P384_SHA384_ASN1,
        SignatureScheme::RsaPkcs1Sha256 => &rs::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::RsaPkcs1Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
        SignatureScheme::RsaPkcs1Sha512 => &rs::RSA_PKCS1_2048_8192_SHA512,
        SignatureScheme::RsaPssSha256 => &rs::RSA_PSS_2048_8192_SHA256,
        SignatureScheme::RsaPssSha384 => &rs::RSA_PSS_2048_8192_SHA384,
        SignatureScheme::RsaPssSha512 => &rs::RSA_PSS_2048_8192_SHA512,
        other => return Err(Error::unsupported("signature verification", format!("scheme {other}"))),
    };
    let key = hsm_core::der::spki_public_key_bits(spki)?;
    rs::UnparsedPublicKey::new(alg, key)
        .verify(msg, sig)
        .map_err(|_| Error::Crypto {
            op: "signature verification",
            reason: format!("the {scheme} signature does not verify with the public key"),
        })
}

// ---- the key ----

/// The key of a vendor identity. Every signature is verified before it is returned.
pub struct VendorKey {
    raw: Arc<dyn RawVendorIdentity>,
    algorithm: KeyAlgorithm,
    schemes: Vec<SignatureScheme>,
    max_signature_len: usize,
    spki: Vec<u8>,
}

impl std::fmt::Debug for VendorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorKey")
            .field("backend", &self.raw.backend())
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl VendorKey {
    /// Describe the key of `raw` and check it against its certificate (and `get_public_key`).
    pub fn new(raw: Arc<dyn RawVendorIdentity>) -> Result<Self> {
        let name = raw.backend().to_string();
        let info = raw.key_info()?;
        let algorithm = validate_key_info(&name, &info)?;
        let chain = certificate_chain(raw.as_ref())?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Internal("a checked chain is empty".into()))?;
        let cert_spki = hsm_core::pem::public_key_spki(leaf)?;
        let spki = if raw.has(BytesField::PublicKey) {
            let spki = raw.bytes(BytesField::PublicKey)?;
            if spki != cert_spki {
                return Err(mismatch(
                    &name,
                    "get_public_key differs from the leaf certificate's public key",
                ));
            }
            spki
        } else {
            cert_spki
        };
        let from_spki = hsm_core::pem::key_algorithm_from_spki(&spki)?;
        if from_spki != algorithm {
            return Err(mismatch(
                &name,
                &format!("key_info says {algorithm:?} but the certificate's key is {from_spki:?}"),
            ));
        }
        let schemes = info
            .schemes
            .iter()
            .filter_map(|c| SignatureScheme::try_from(*c).ok())
            .collect();
        Ok(VendorKey {
            raw,
            algorithm,
            schemes,
            max_signature_len: info.max_signature_len as usize,
            spki,
        })
    }
}

pub(super) fn mismatch(backend: &str, why: &str) -> Error {
    Error::Device {
        origin: Origin::Vendor,
        op: format!("{backend}: key"),
        rv: 0,
        message: why.to_string(),
    }
}

impl SigningKey for VendorKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_spki(&self) -> Result<Vec<u8>> {
        Ok(self.spki.clone())
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        if !self.schemes.contains(&scheme) {
            return Err(Error::unsupported(
                format!("vendor backend \"{}\"", self.raw.backend()),
                format!("signature scheme {scheme} (not listed by key_info)"),
            ));
        }
        let sig = self.raw.sign_raw(scheme.code(), message, self.max_signature_len)?;
        verify_signature(&self.spki, scheme, message, &sig).map_err(|e| Error::Device {
            origin: Origin::Vendor,
            op: format!("{}: sign", self.raw.backend()),
            rv: 0,
            message: format!("returned a bad signature: {e}"),
        })?;
        Ok(sig)
    }
}

/// The table's certificate chain (`get_certificate_chain`, PEM), parsed; an empty one is refused.
pub fn certificate_chain(raw: &dyn RawVendorIdentity) -> Result<Vec<CertificateDer<'static>>> {
    let pem = raw.text(BytesField::CertificateChain)?;
    let what = format!("certificate chain of vendor backend \"{}\"", raw.backend());
    let chain = hsm_core::pem::parse_certificates(&what, pem.as_bytes())?;
    if chain.is_empty() {
        return Err(Error::parse(what, "no certificate"));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_info_is_checked() {
        let mut info = KeyInfo {
            family: KeyFamily::Ec,
            algorithm: 1,
            curve_or_bits: 256,
            schemes: vec![0x0403],
            max_signature_len: 72,
        };
        assert_eq!(validate_key_info("t", &info).unwrap(), KeyAlgorithm::Ec(Curve::P256));
        info.schemes[0] = 0x0804;
        assert!(
            validate_key_info("t", &info)
                .unwrap_err()
                .to_string()
                .contains("does not fit")
        );
        info.schemes[0] = 0x0403;
        info.schemes = vec![0x0403; 9];
        assert!(
            validate_key_info("t", &info)
                .unwrap_err()
                .to_string()
                .contains("scheme_count")
        );
        info.schemes = vec![0x0403];
        info.max_signature_len = 1 << 30;
        assert!(
            validate_key_info("t", &info)
                .unwrap_err()
                .to_string()
                .contains("max_signature_len")
        );
        info.max_signature_len = 72;
        info.curve_or_bits = 521;
        assert!(validate_key_info("t", &info).is_err());
    }

    #[test]
    fn verification() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let file = hsm_core::file::FileKey::from_pem("k", key.serialize_pem().as_bytes()).unwrap();
        let sig = file.sign(SignatureScheme::EcdsaP256Sha256, b"msg").unwrap();
        verify_signature(&spki, SignatureScheme::EcdsaP256Sha256, b"msg", &sig).unwrap();
        let e = verify_signature(&spki, SignatureScheme::EcdsaP256Sha256, b"other", &sig).unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let e = verify_signature(&spki[..spki.len() - 1], SignatureScheme::EcdsaP256Sha256, b"msg", &sig).unwrap_err();
        assert!(e.to_string().contains("SubjectPublicKeyInfo"), "{e}");
    }
}
