//! The fixture of `test_support::softhsm`: one module under test per test process (C_Initialize
//! is once per process): SoftHSM2 ([`fixture`], set up on first use) or tpm2-pkcs11 ([`set_up`]
//! on a `Tpm2Pkcs11`), each with the tokens `LABEL` and `PIN_TEST_LABEL`. `suite`, `suite_errors` and
//! `suite_sessions` hold the assertions both run.
#![allow(dead_code, unused_imports)]

pub mod suite;
pub mod suite_errors;
pub mod suite_sessions;

pub use test_support::softhsm::{Fixture, LABEL, PIN, PIN_TEST_LABEL, SO_PIN, fixture, set_up};

/// Verify a signature with ring (an implementation independent of the token).
pub fn ring_verify(scheme: hsm_core::SignatureScheme, spki: &[u8], message: &[u8], signature: &[u8]) {
    use hsm_core::SignatureScheme::*;
    use ring::signature as s;
    let alg: &dyn s::VerificationAlgorithm = match scheme {
        EcdsaP256Sha256 => &s::ECDSA_P256_SHA256_ASN1,
        EcdsaP384Sha384 => &s::ECDSA_P384_SHA384_ASN1,
        RsaPkcs1Sha256 => &s::RSA_PKCS1_2048_8192_SHA256,
        RsaPkcs1Sha384 => &s::RSA_PKCS1_2048_8192_SHA384,
        RsaPkcs1Sha512 => &s::RSA_PKCS1_2048_8192_SHA512,
        RsaPssSha256 => &s::RSA_PSS_2048_8192_SHA256,
        RsaPssSha384 => &s::RSA_PSS_2048_8192_SHA384,
        RsaPssSha512 => &s::RSA_PSS_2048_8192_SHA512,
        other => panic!("no verifier for {other}"),
    };
    let public = hsm_core::der::spki_public_key_bits(spki).unwrap();
    s::UnparsedPublicKey::new(alg, public)
        .verify(message, signature)
        .unwrap_or_else(|_| panic!("{scheme} signature does not verify"));
}
