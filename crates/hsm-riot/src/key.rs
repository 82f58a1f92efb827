//! A DICE-derived ECDSA P-256 key held in memory.

use hsm_core::{Curve, Error, KeyAlgorithm, Result, SignatureScheme};
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::EncodePublicKey as _;

/// An ECDSA P-256 key pair derived by the DICE engine. It signs (RFC 6979 deterministic
/// nonces, so certificates are reproducible) and never hands out its private scalar.
/// The scalar is zeroized on drop; `Debug` prints only the public key.
pub struct DiceKey {
    signing: p256::ecdsa::SigningKey,
    /// Uncompressed SEC1 point (65 bytes): the `subjectPublicKey` bits.
    point: Vec<u8>,
    /// DER `SubjectPublicKeyInfo`.
    spki: Vec<u8>,
}

impl std::fmt::Debug for DiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiceKey")
            .field("public", &data_encoding::HEXLOWER.encode(&self.point))
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
        })
    }

    /// The uncompressed SEC1 public point (0x04 || X || Y).
    pub fn public_point(&self) -> &[u8] {
        &self.point
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// ECDSA-SHA256 over `message`, DER `Ecdsa-Sig-Value`.
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
            SignatureScheme::EcdsaP256Sha256 => Ok(self.sign_sha256(message)),
            other => Err(Error::unsupported(
                "a DICE P-256 key",
                format!("signature scheme {other}"),
            )),
        }
    }
}

impl rcgen::PublicKeyData for DiceKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for DiceKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        Ok(self.sign_sha256(msg))
    }
}
