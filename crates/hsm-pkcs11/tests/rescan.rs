//! Module re-initializations (looking for a token that is not there) while other threads sign
//! and MAC on tokens of the same module: no operation fails, no session is closed twice, and
//! signatures still verify. Its own test process: it re-initializes the module many times.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::{PIN_TEST_LABEL, fixture, ring_verify};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme, SymmetricIdentity};
use hsm_pkcs11::{open_signer, tools};

#[test]
fn reinitializing_the_module_under_load_loses_no_operation() {
    let f = fixture();
    let uri = tools::generate_key_pair(&f.uri("object=busy"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer = open_signer(&uri.to_token_string()).unwrap();
    let spki = signer.public_key_spki().unwrap();
    let secret_uri = tools::import_secret(&f.uri_on(PIN_TEST_LABEL, "object=busy-hmac"), &[9u8; 32]).unwrap();
    let secret = hsm_pkcs11::Pkcs11Symmetric::new(
        "device-busy".into(),
        hsm_pkcs11::Pkcs11Secret::open(&secret_uri).unwrap(),
    );
    let expected_mac = hsm_core::sas::hmac_sha256(&[9u8; 32], b"busy");
    let module = hsm_pkcs11::module(f.hsm.module()).unwrap();
    assert!(module.can_reinitialize(), "this process initialized the module");
    // Every failed lookup re-initializes (the default allows one a second).
    module.set_rescan_interval(std::time::Duration::ZERO).unwrap();
    let before = *module.enter().unwrap();

    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..6u8)
            .map(|t| {
                let (signer, spki, secret, expected_mac, done) = (&signer, &spki, &secret, &expected_mac, &done);
                s.spawn(move || {
                    let mut n = 0u32;
                    while !done.load(Ordering::Relaxed) || n < 20 {
                        let msg = [t, (n % 251) as u8];
                        if t % 2 == 0 {
                            let sig = signer.sign(SignatureScheme::EcdsaP256Sha256, &msg).unwrap();
                            ring_verify(SignatureScheme::EcdsaP256Sha256, spki, &msg, &sig);
                        } else {
                            assert_eq!(&secret.hmac_sha256(b"busy").unwrap(), expected_mac);
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // Each failed lookup of a missing token re-initializes the module once.
        for _ in 0..25 {
            let e = open_signer(&f.uri_on("no-such-token", "object=k"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("no token matches") && e.contains("token=no-such-token"),
                "{e}"
            );
        }
        done.store(true, Ordering::Relaxed);
        for w in workers {
            assert!(w.join().unwrap() >= 20);
        }
    });
    let after = *module.enter().unwrap();
    assert!(
        after >= before + 25,
        "the module was re-initialized 25 times ({before} -> {after})"
    );
    // Still one login, a working pool: a plain signature afterwards.
    let sig = signer.sign(SignatureScheme::EcdsaP256Sha256, b"after").unwrap();
    ring_verify(SignatureScheme::EcdsaP256Sha256, &spki, b"after", &sig);
}

/// Tokens dropped (their pooled sessions with them) while other threads re-initialize the
/// module: a dropped token closes its sessions only while no `C_Finalize` can run, and never a
/// session of an earlier module generation (its handle number may belong to another token's
/// session by now). Before, a token dropped during a re-initialization closed its sessions
/// in the middle of `C_Finalize` (SoftHSM2 crashed the process now and then under load).
#[test]
fn tokens_dropped_during_reinitializations_close_nothing_they_do_not_own() {
    let f = fixture();
    let uri = tools::generate_key_pair(&f.uri("object=dropped"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    // A pin-source of its own per thread: every open is a token object of its own, dropped
    // with its signer.
    let own: Vec<String> = (0..4)
        .map(|t| {
            let pin = f
                .hsm
                .pin_file(&format!("dropper-{t}.pin"), &format!("{}\n", common::PIN))
                .unwrap();
            uri.to_token_string()
                .replace(&f.pin_file.display().to_string(), &pin.display().to_string())
        })
        .collect();
    let module = hsm_pkcs11::module(f.hsm.module()).unwrap();
    module.set_rescan_interval(std::time::Duration::ZERO).unwrap();
    let shared = open_signer(&uri.to_token_string()).unwrap();
    let spki = shared.public_key_spki().unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let droppers: Vec<_> = (0..4u8)
            .map(|t| {
                let (own, done) = (&own[usize::from(t)], &done);
                s.spawn(move || {
                    let mut n = 0u32;
                    while !done.load(Ordering::Relaxed) || n < 10 {
                        let signer = open_signer(own).unwrap();
                        signer.sign(SignatureScheme::EcdsaP256Sha256, &[t, n as u8]).unwrap();
                        drop(signer);
                        n += 1;
                    }
                })
            })
            .collect();
        let user = s.spawn(|| {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) || n < 20 {
                let msg = [0xaa, (n % 251) as u8];
                let sig = shared.sign(SignatureScheme::EcdsaP256Sha256, &msg).unwrap();
                ring_verify(SignatureScheme::EcdsaP256Sha256, &spki, &msg, &sig);
                n += 1;
            }
        });
        for _ in 0..40 {
            assert!(open_signer(&f.uri_on("no-such-token", "object=k")).is_err());
        }
        done.store(true, Ordering::Relaxed);
        for d in droppers {
            d.join().unwrap();
        }
        user.join().unwrap();
    });
}
