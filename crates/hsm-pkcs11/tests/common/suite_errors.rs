//! The assertion every module under test must pass on URI and configuration errors: each names what is
//! wrong.

use hsm_core::{Curve, KeyAlgorithm, SignatureScheme};
use hsm_pkcs11::testing::TestModule;
use hsm_pkcs11::{open_signer, tools};

use super::suite::{issue, x509_config};
use super::{Fixture, LABEL, PIN, ring_verify};

pub fn uri_and_configuration_errors<M: TestModule>(f: &Fixture<M>) {
    // Two keys with one label: ambiguous.
    tools::generate_key_pair(&f.uri("object=twin;id=%01"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    tools::generate_key_pair(&f.uri("object=twin;id=%02"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let e = open_signer(&f.uri("object=twin")).unwrap_err().to_string();
    assert!(
        e.contains("ambiguous") && e.contains("object=twin") && e.contains("`id`"),
        "{e}"
    );
    let ok = open_signer(&f.uri("object=twin;id=%02")).unwrap();
    ring_verify(
        SignatureScheme::EcdsaP256Sha256,
        &ok.public_key_spki().unwrap(),
        b"m",
        &ok.sign(SignatureScheme::EcdsaP256Sha256, b"m").unwrap(),
    );
    // A duplicate key is refused.
    let e = tools::generate_key_pair(&f.uri("object=twin;id=%02"), KeyAlgorithm::Ec(Curve::P256)).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    // Missing key, missing token.
    let e = open_signer(&f.uri("object=nothing-here")).unwrap_err().to_string();
    assert!(
        e.contains("no object matches") && e.contains("object=nothing-here"),
        "{e}"
    );
    let e = open_signer(&f.uri_on("no-such-token", "object=k"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no token matches") && e.contains("token=no-such-token"),
        "{e}"
    );
    // pin-value is refused for alias-key tokens and in the configuration.
    let with_pin = format!(
        "pkcs11:token={LABEL};object=twin;id=%02?module-path={}&pin-value={PIN}",
        f.hsm.module().display()
    );
    let e = open_signer(&with_pin).unwrap_err().to_string();
    assert!(e.contains("pin-value") && e.contains("pin-source"), "{e}");
    let e = x509_config(f, &format!("[x509]\nbackend = \"pkcs11\"\nkey = \"{with_pin}\"\n"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("x509.key") && e.contains("pin-source") && e.contains("test.toml"),
        "{e}"
    );
    // ... but the tools accept it.
    assert!(!tools::list_objects(&with_pin).unwrap().is_empty());
    // Unknown configuration key, bad URI attribute, wrong type, bad percent-encoding.
    let e = x509_config(
        f,
        "[x509]\nbackend = \"pkcs11\"\nkey = \"pkcs11:object=a\"\npin = \"1\"\n",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("pin") && e.contains("unknown field"), "{e}");
    let e = x509_config(f, "[x509]\nbackend = \"pkcs11\"\nkey = \"pkcs11:objekt=a\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`objekt`"), "{e}");
    let e = x509_config(f, "[x509]\nbackend = \"pkcs11\"\nkey = \"pkcs11:object=a;type=cert\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`type`"), "{e}");
    let e = open_signer(&f.uri("object=tw%in")).unwrap_err().to_string();
    assert!(e.contains("`object`") && e.contains("percent"), "{e}");
    // A certificate that does not belong to the key.
    let (leaf, _) = issue(
        f.hsm.path(),
        "stranger",
        &tools::make_csr(
            &tools::generate_key_pair(&f.uri("object=stranger"), KeyAlgorithm::Ec(Curve::P256))
                .unwrap()
                .to_token_string(),
            "stranger",
        )
        .unwrap(),
    );
    std::fs::write(f.hsm.path().join("stranger-only.pem"), leaf).unwrap();
    let e = x509_config(
        f,
        &format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\ncertificate_file = \"stranger-only.pem\"\n",
            f.uri("object=twin;id=%02").split('?').next().unwrap().to_string()
                + "?pin-source=file:"
                + &f.pin_file.display().to_string()
        ),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("does not belong"), "{e}");
}
