//! The shared suite (`common/suite.rs`) against a second real module: tpm2-pkcs11 on a swtpm of
//! its own, with its store in a temp dir and its tokens made through the module
//! (`C_InitToken`, `C_InitPIN`). One test: the module reads its TCTI and store once per
//! process, and the swtpm must stop when the test ends (a process-wide fixture never drops).
//! Each part runs on; the test fails listing every part that failed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use common::{set_up, suite, suite_errors, suite_sessions};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme};
use hsm_pkcs11::testing::Tpm2Pkcs11;

#[test]
fn shared_suite_on_tpm2_pkcs11() {
    let started = Instant::now();
    let f = set_up(Tpm2Pkcs11::create().expect("tpm2-pkcs11, tpm2-abrmd and swtpm must be installed"));
    // The SAS test vector's key (test-vectors.md), imported the only way tpm2-pkcs11 takes
    // one, before this process loads the module.
    let dps_key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=",
    )
    .unwrap();
    f.hsm
        .import_hmac_key(common::LABEL, "dps-key", &dps_key, common::PIN)
        .unwrap();
    let mut failed = Vec::new();
    let mut part = |name: &str, run: &dyn Fn()| {
        let t = Instant::now();
        let ok = catch_unwind(AssertUnwindSafe(run)).is_ok();
        eprintln!(
            "part {name}: {} ({:.1?})",
            if ok { "ok" } else { "FAILED" },
            t.elapsed()
        );
        if !ok {
            failed.push(name.to_string());
        }
    };
    part("x509_identity_p256", &|| {
        suite::full_identity(
            &f,
            "device-p256",
            KeyAlgorithm::Ec(Curve::P256),
            &[SignatureScheme::EcdsaP256Sha256],
        )
    });
    part("x509_identity_p384", &|| {
        suite::full_identity(
            &f,
            "device-p384",
            KeyAlgorithm::Ec(Curve::P384),
            &[SignatureScheme::EcdsaP384Sha384],
        )
    });
    part("x509_identity_rsa", &|| {
        suite::full_identity(&f, "device-rsa", KeyAlgorithm::Rsa { bits: 2048 }, &suite::RSA_SCHEMES)
    });
    part("token_hashing_mechanisms", &|| suite::token_hashing_mechanisms(&f));
    part("rsa_3072_key_generation_and_signing", &|| {
        suite::rsa_3072_key_generation_and_signing(&f)
    });
    part("hmac_key_stays_on_the_token", &|| {
        suite::hmac_key_stays_on_the_token(&f)
    });
    part("uri_and_configuration_errors", &|| {
        suite_errors::uri_and_configuration_errors(&f)
    });
    part("eight_threads_sign_concurrently", &|| {
        suite_sessions::eight_threads_sign_concurrently(&f)
    });
    part("logs_in_again_after_logout", &|| {
        suite_sessions::logs_in_again_after_logout(&f)
    });
    part("list_objects_as_uris", &|| suite::list_objects_as_uris(&f));
    part("key_generation_while_other_threads_search", &|| {
        suite_sessions::key_generation_while_other_threads_search(&f)
    });
    // Last: a rejected PIN counts against the TPM's dictionary-attack protection, and
    // tpm2-pkcs11 answers later logins with CKR_GENERAL_ERROR while the TPM is locked out.
    part("wrong_pin_is_tried_once", &|| {
        suite_sessions::wrong_pin_is_tried_once(&f)
    });
    eprintln!("tpm2-pkcs11 suite: {:.1?}", started.elapsed());
    assert!(failed.is_empty(), "failed parts: {failed:?}");
}
