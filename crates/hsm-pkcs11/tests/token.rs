//! The shared suite (`common/suite.rs`) against a real SoftHSM2 token (one token directory per
//! test process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture, suite};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme};

#[test]
fn x509_identity_p256() {
    suite::full_identity(
        fixture(),
        "device-p256",
        KeyAlgorithm::Ec(Curve::P256),
        &[SignatureScheme::EcdsaP256Sha256],
    );
}

#[test]
fn x509_identity_p384() {
    suite::full_identity(
        fixture(),
        "device-p384",
        KeyAlgorithm::Ec(Curve::P384),
        &[SignatureScheme::EcdsaP384Sha384],
    );
}

#[test]
fn x509_identity_rsa_pss_and_pkcs1() {
    suite::full_identity(
        fixture(),
        "device-rsa",
        KeyAlgorithm::Rsa { bits: 2048 },
        &suite::RSA_SCHEMES,
    );
}

#[test]
fn token_hashing_mechanisms() {
    suite::token_hashing_mechanisms(fixture());
}

#[test]
fn rsa_3072_key_generation_and_signing() {
    suite::rsa_3072_key_generation_and_signing(fixture());
}

#[test]
fn hmac_key_stays_on_the_token() {
    suite::hmac_key_stays_on_the_token(fixture());
}

#[test]
fn uri_and_configuration_errors() {
    suite::uri_and_configuration_errors(fixture());
}

#[test]
fn eight_threads_sign_concurrently() {
    suite::eight_threads_sign_concurrently(fixture());
}

#[test]
fn logs_in_again_after_logout() {
    suite::logs_in_again_after_logout(fixture());
}

#[test]
fn wrong_pin_is_tried_once() {
    suite::wrong_pin_is_tried_once(fixture());
}

#[test]
fn list_objects_as_uris() {
    suite::list_objects_as_uris(fixture());
}

/// Keys generated while other threads search the token's objects and log in through other
/// token objects: zero errors. (SoftHSM2 fails a key generation that overlaps an object
/// search with CKR_GENERAL_ERROR; the backend runs object creation alone.)
#[test]
fn key_generation_while_other_threads_search() {
    suite::key_generation_while_other_threads_search(fixture());
}
