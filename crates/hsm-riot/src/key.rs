//! A DICE-derived ECDSA P-256 key held in memory.

use hsm_core::{Curve, Error, KeyAlgorithm, Result, SignatureScheme};
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use std::sync::OnceLock;

/// An ECDSA P-256 key pair derived by the DICE engine. It never hands out its private scalar.
///
/// Certificates are signed with RustCrypto `p256` and RFC 6979 nonces, so they are
/// reproducible. TLS signatures ([`hsm_core::SigningKey::sign`]) go through `ring`, about ten
/// times faster; its key object is made from the same scalar on the first TLS signature.
/// Secrets are zeroized on drop; `Debug` prints only the public key.
pub struct DiceKey {
    signing: p256::ecdsa::SigningKey,
    /// Uncompressed SEC1 point (65 bytes): the `subjectPublicKey` bits.
    point: Vec<u8>,
    /// DER `SubjectPublicKeyInfo`.
    spki: Vec<u8>,
    fast: OnceLock<ring::signature::EcdsaKeyPair>,
}

impl std::fmt::Debug for DiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiceKey")
            .field("public", &hsm_core::hex::encode(&self.point))
            .finish_non_exhaustive()
    }
}

impl DiceKey {
    pub(crate) fn from_secret(secret: p256::SecretKey) -> Result<Self> {
        let public = secret.public_key();
        let point = public.to_encoded_point(false).as_bytes().to_vec();
        let spki = public
            .to_public_key_der()
            .map_err(|e| Error::Internal(format!("encoding a P-256 public key as SPKI failed: {e}")))?
            .as_bytes()
            .to_vec();
        Ok(DiceKey {
            signing: p256::ecdsa::SigningKey::from(secret),
            point,
            spki,
            fast: OnceLock::new(),
        })
    }

    /// The ring key pair of the same scalar (PKCS#8 made by `p256`, checked by ring against
    /// the public key).
    fn fast(&self) -> Result<&ring::signature::EcdsaKeyPair> {
        if let Some(k) = self.fast.get() {
            return Ok(k);
        }
        let secret = p256::SecretKey::from(self.signing.as_nonzero_scalar());
        let pkcs8 = secret
            .to_pkcs8_der()
            .map_err(|e| Error::Internal(format!("encoding a DICE key as PKCS#8 failed: {e}")))?;
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| Error::Internal(format!("ring rejected a DICE key: {e}")))?;
        Ok(self.fast.get_or_init(|| key))
    }

    /// ECDSA-SHA256 over `message` with a random nonce (ring), DER `Ecdsa-Sig-Value`.
    pub(crate) fn sign_sha256_fast(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self
            .fast()?
            .sign(&ring::rand::SystemRandom::new(), message)
            .map_err(|_| Error::Crypto {
                op: "ECDSA P-256 signature with a DICE key",
                reason: "ring failed to sign".into(),
            })?;
        Ok(sig.as_ref().to_vec())
    }

    /// The uncompressed SEC1 public point (0x04 || X || Y).
    pub fn public_point(&self) -> &[u8] {
        &self.point
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// ECDSA-SHA256 over `message` with an RFC 6979 nonce (`p256`), DER `Ecdsa-Sig-Value`.
    pub fn sign_sha256(&self, message: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.signing.sign(message);
        sig.to_der().as_bytes().to_vec()
    }
}

impl hsm_core::SigningKey for DiceKey {
    fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::Ec(Curve::P256)
    }

    fn public_key_spki(&self) -> Result<Vec<u8>> {
        Ok(self.spki.clone())
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        match scheme {
            SignatureScheme::EcdsaP256Sha256 => self.sign_sha256_fast(message),
            other => Err(Error::unsupported(
                "a DICE P-256 key",
                format!("signature scheme {other}"),
            )),
        }
    }
}

#[cfg(feature = "pki")]
impl rcgen::PublicKeyData for DiceKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

#[cfg(feature = "pki")]
impl rcgen::SigningKey for DiceKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        Ok(self.sign_sha256(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_core::SigningKey as _;

    #[test]
    fn both_signers_verify_under_the_public_key() {
        let secret = p256::SecretKey::from_slice(&[0x11; 32]).unwrap();
        let key = DiceKey::from_secret(secret).unwrap();
        let verify = |sig: &[u8]| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key.public_point())
                .verify(b"message", sig)
        };
        let deterministic = key.sign_sha256(b"message");
        assert_eq!(deterministic, key.sign_sha256(b"message"), "RFC 6979");
        verify(&deterministic).unwrap();
        let fast = key.sign(SignatureScheme::EcdsaP256Sha256, b"message").unwrap();
        verify(&fast).unwrap();
        verify(&key.sign(SignatureScheme::EcdsaP256Sha256, b"message").unwrap()).unwrap();
        assert!(verify(&key.sign(SignatureScheme::EcdsaP256Sha256, b"other").unwrap()).is_err());
    }
}
