//! Secrets (issue 12): the PIN is not kept once the last user of a token is gone (the next user
//! reads the PIN file again); a URI typo that puts `pin-value` into a path attribute, and a bad
//! character in `pin-value`, are refused without quoting the secret. Its own test process: it
//! relies on no other test holding the token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{LABEL, PIN, fixture};
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme};
use hsm_pkcs11::Pkcs11Uri;
use hsm_pkcs11::{open_signer, tools};

#[test]
fn the_pin_is_dropped_when_the_last_signer_closes() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let uri = format!(
        "pkcs11:token={LABEL};object=pin-drop?module-path={}&pin-source=file:{}",
        f.hsm.module().display(),
        pin_file.display()
    );
    let key = tools::generate_key_pair(&uri, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let token = key.to_token_string();
    let signer = open_signer(&token).unwrap();
    signer.sign(SignatureScheme::EcdsaP256Sha256, b"one").unwrap();
    // A second user while the first is open shares the token (and its login).
    let second = open_signer(&token).unwrap();
    std::fs::remove_file(&pin_file).unwrap();
    drop(signer);
    second.sign(SignatureScheme::EcdsaP256Sha256, b"two").unwrap();
    drop(second);
    // Every user is gone: the PIN went with the token, so opening again needs the file.
    let e = match open_signer(&token) {
        Ok(_) => panic!("the PIN was kept after every signer closed"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("read PIN file") && e.contains(&pin_file.display().to_string()),
        "{e}"
    );
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let again = open_signer(&token).unwrap();
    again.sign(SignatureScheme::EcdsaP256Sha256, b"three").unwrap();
}

#[test]
fn uri_errors_never_quote_a_pin() {
    let pin = "Pin-Secret-99";
    for text in [
        format!("pkcs11:token=t;object=k1&pin-value={pin}"),
        format!("pkcs11:token=t;object=k1&pin-source=/x/{pin}"),
        format!("pkcs11:token=t&pin-value={pin}"),
        format!("pkcs11:object=k1&PIN-VALUE={pin} x"),
        format!("pkcs11:token=t?pin-value{pin}"),
        format!("pkcs11:token=t;pin-value{pin}"),
    ] {
        let e = Pkcs11Uri::parse(&text).unwrap_err().to_string();
        assert!(!e.contains(pin), "{text}: {e}");
    }
    let e = Pkcs11Uri::parse(&format!("pkcs11:token=t;object=k1&pin-value={pin}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`object`") && e.contains("pin-value") && e.contains("`?`"),
        "{e}"
    );
    // A character that must be percent-encoded, in a PIN: its position, not the character.
    let e = Pkcs11Uri::parse("pkcs11:token=t?pin-value=ab#cd")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("ab#cd"), "{e}");
    let e = Pkcs11Uri::parse("pkcs11:token=t?pin-value=ab\"cd")
        .unwrap_err()
        .to_string();
    assert!(e.contains("byte 2") && !e.contains('"'), "{e}");
    // Outside secrets the character is still shown.
    let e = Pkcs11Uri::parse("pkcs11:token=a\"b").unwrap_err().to_string();
    assert!(e.contains("`\\\"`"), "{e}");
}
