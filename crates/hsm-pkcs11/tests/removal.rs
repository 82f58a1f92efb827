//! The token goes away and comes back (its own test process: it destroys its tokens).
//!
//! SoftHSM2 learns which tokens exist only in `C_Initialize`, so this is the hard case: the
//! backend must re-initialize the module to see a token come back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{LABEL, PIN, PIN_TEST_LABEL, SO_PIN, fixture, ring_verify};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme, SigningKey};
use hsm_pkcs11::{open_signer, tools};

const P256: SignatureScheme = SignatureScheme::EcdsaP256Sha256;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn sign_verifies(signer: &dyn SigningKey, spki: &[u8], message: &[u8]) {
    ring_verify(P256, spki, message, &signer.sign(P256, message).unwrap());
}

/// The signer fails with a PKCS#11 device error that names the operation and says what to
/// check, quickly (one re-open and one module re-initialization, no retry loop).
fn fails_clearly(signer: &dyn SigningKey, what: &str, expect_rv: Option<u64>) -> String {
    let started = Instant::now();
    let e = signer.sign(P256, b"2").unwrap_err();
    let text = e.to_string();
    let hsm_core::Error::Device {
        origin: hsm_core::Origin::Pkcs11,
        rv,
        ..
    } = e
    else {
        panic!("{what}: {e:?}");
    };
    if let Some(want) = expect_rv {
        assert_eq!(rv, want, "{what}: {text}");
    }
    assert!(text.contains("sign"), "{what}: {text}");
    assert!(
        text.contains("is the token present") || text.contains("was the token re-created?"),
        "{what}: says what to check: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{what}: no retry loop");
    text
}

#[test]
fn token_goes_away_and_comes_back() {
    let f = fixture();
    // Every failed lookup may re-initialize the module here (the default allows one a second).
    let module = hsm_pkcs11::module(f.hsm.module()).unwrap();
    module.set_rescan_interval(Duration::ZERO).unwrap();
    let uri = tools::generate_key_pair(&f.uri("object=survivor"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer = open_signer(&uri.to_token_string()).unwrap();
    let spki = signer.public_key_spki().unwrap();
    sign_verifies(signer.as_ref(), &spki, b"1");
    // A key on the other token of the same module: its pooled sessions are voided by the
    // re-initializations below and must be replaced without an error.
    let other_uri = tools::generate_key_pair(
        &f.uri_on(PIN_TEST_LABEL, "object=bystander"),
        KeyAlgorithm::Ec(Curve::P256),
    )
    .unwrap();
    let other = open_signer(&other_uri.to_token_string()).unwrap();
    let other_spki = other.public_key_spki().unwrap();
    sign_verifies(other.as_ref(), &other_spki, b"1");

    // The token goes away (its files are kept aside, as a device is unplugged).
    let aside = f.hsm.path().join("unplugged");
    copy_dir(&f.hsm.token_dir(), &aside);
    f.hsm.remove_tokens().unwrap();
    let text = fails_clearly(signer.as_ref(), "token removed", None);
    assert!(text.contains(LABEL), "the error names the token: {text}");
    fails_clearly(
        signer.as_ref(),
        "token still removed",
        Some(cryptoki_sys::CKR_TOKEN_NOT_PRESENT),
    );
    fails_clearly(other.as_ref(), "the other token is gone too", None);

    // It comes back: the same signer works again, with the same key.
    copy_dir(&aside, &f.hsm.token_dir());
    sign_verifies(signer.as_ref(), &spki, b"3");
    sign_verifies(other.as_ref(), &other_spki, b"3");
    // Eight threads after the recovery, zero errors.
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let (signer, spki) = (&signer, &spki);
            s.spawn(move || {
                for i in 0..20u8 {
                    sign_verifies(signer.as_ref(), spki, &[t, i]);
                }
            });
        }
    });

    // It goes away again and a different token with the same label and key label takes its
    // place (made by another process, opensc's pkcs11-tool): the signer refuses the other key.
    f.hsm.remove_tokens().unwrap();
    f.hsm.init_token(LABEL, SO_PIN, PIN).unwrap();
    // Without the key: an error naming the missing object.
    let e = signer.sign(P256, b"2").unwrap_err().to_string();
    assert!(e.contains("no object matches") && e.contains("object=survivor"), "{e}");
    let id: String = uri.id.as_ref().unwrap().iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new("pkcs11-tool")
        .args(["--module", f.hsm.module().to_str().unwrap(), "--token-label", LABEL])
        .args(["--login", "--pin", PIN])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "survivor",
            "--id",
            &id,
        ])
        .env("SOFTHSM2_CONF", f.hsm.conf())
        .output()
        .expect("pkcs11-tool (package opensc)");
    assert!(
        out.status.success(),
        "pkcs11-tool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fails_clearly(
        signer.as_ref(),
        "token re-created with a new key",
        Some(cryptoki_sys::CKR_KEY_CHANGED),
    );
    assert!(text.contains("not the key this identity was opened with"), "{text}");
    // Opened again, the new key is used; the new token takes new keys.
    let reopened = open_signer(&uri.to_token_string()).unwrap();
    let new_spki = reopened.public_key_spki().unwrap();
    assert_ne!(new_spki, spki);
    sign_verifies(reopened.as_ref(), &new_spki, b"4");
    let newcomer = tools::generate_key_pair(&f.uri("object=newcomer"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let newcomer = open_signer(&newcomer.to_token_string()).unwrap();
    sign_verifies(newcomer.as_ref(), &newcomer.public_key_spki().unwrap(), b"5");
    // The other token was not re-created: its signer still fails clearly.
    fails_clearly(
        other.as_ref(),
        "the other token stays away",
        Some(cryptoki_sys::CKR_TOKEN_NOT_PRESENT),
    );

    // A token created after the module was initialized is found too.
    f.hsm.init_token("late-token", SO_PIN, PIN).unwrap();
    let late = tools::generate_key_pair(&f.uri_on("late-token", "object=late"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let late = open_signer(&late.to_token_string()).unwrap();
    let late_spki = late.public_key_spki().unwrap();
    sign_verifies(late.as_ref(), &late_spki, b"late");

    // Within the rescan interval, calls for a token that is away fail without re-initializing
    // the module each time; once the interval allows it, the token is found again.
    module.set_rescan_interval(Duration::from_secs(3600)).unwrap();
    let aside = f.hsm.path().join("unplugged-again");
    copy_dir(&f.hsm.token_dir(), &aside);
    f.hsm.remove_tokens().unwrap();
    let before = *module.enter().unwrap();
    for round in 0..3 {
        fails_clearly(late.as_ref(), &format!("away, round {round}"), None);
    }
    assert_eq!(
        *module.enter().unwrap(),
        before,
        "no re-initialization within the interval"
    );
    copy_dir(&aside, &f.hsm.token_dir());
    fails_clearly(late.as_ref(), "back, but not looked for yet", None);
    module.set_rescan_interval(Duration::ZERO).unwrap();
    sign_verifies(late.as_ref(), &late_spki, b"found again");
    assert_eq!(*module.enter().unwrap(), before + 1);
}
