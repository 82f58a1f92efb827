//! The token goes away and comes back (its own test process: it destroys its token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LABEL, PIN, SO_PIN, fixture, ring_verify};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme};
use hsm_pkcs11::{open_signer, tools};

#[test]
fn removed_token_fails_clearly_never_crashes() {
    let f = fixture();
    let uri = tools::generate_key_pair(&f.uri("object=survivor"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer = open_signer(&uri.to_token_string()).unwrap();
    let spki = signer.public_key_spki().unwrap();
    ring_verify(
        SignatureScheme::EcdsaP256Sha256,
        &spki,
        b"1",
        &signer.sign(SignatureScheme::EcdsaP256Sha256, b"1").unwrap(),
    );

    f.hsm.remove_tokens().unwrap();
    let check = |what: &str| {
        let started = std::time::Instant::now();
        let e = signer.sign(SignatureScheme::EcdsaP256Sha256, b"2").unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(
                e,
                hsm_core::Error::Device {
                    origin: hsm_core::Origin::Pkcs11,
                    ..
                }
            ),
            "{what}: {e:?}"
        );
        assert!(
            text.contains("sign") && text.contains("is the token present"),
            "{what}: {text}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{what}: no retry loop"
        );
    };
    check("token removed");
    check("token still removed");
    // Re-created with the same label and a new key: SoftHSM does not rescan its token
    // directory within a process, so this process keeps failing clearly, never crashing.
    f.hsm.init_token(LABEL, SO_PIN, PIN).unwrap();
    // A new key with the old label, made by another process (opensc's pkcs11-tool).
    let out = std::process::Command::new("pkcs11-tool")
        .args([
            "--module",
            f.hsm.module().to_str().unwrap(),
            "--token-label",
            LABEL,
            "--login",
            "--pin",
            PIN,
        ])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "survivor",
            "--id",
            "01",
        ])
        .env("SOFTHSM2_CONF", f.hsm.conf())
        .output()
        .expect("pkcs11-tool (package opensc)");
    assert!(
        out.status.success(),
        "pkcs11-tool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("token re-created with a new key");
    let e = tools::generate_key_pair(&f.uri("object=newcomer"), KeyAlgorithm::Ec(Curve::P256)).unwrap_err();
    assert!(matches!(e, hsm_core::Error::Device { .. }), "{e:?}");
}
