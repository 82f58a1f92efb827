//! X.509 attestation: a group enrollment over HTTPS, MQTT and MQTT over WebSockets, untrusted chains and CN
//! mismatches refused, proxies on plain MQTT refused, and a key generated in SoftHSM2.

use std::process::Command;

use crate::common::{HUB, ca, certify_csr};
use crate::setup::*;

#[test]
fn x509_group_enrollment_is_assigned() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509");
    let out = ok(&e.provision(&cfg, &[]));
    assert!(out.contains("registration id: device-x509"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
    assert!(out.contains("device id: device-x509"), "{out}");
}

#[test]
fn x509_untrusted_chain_is_refused() {
    let e = env();
    let rogue = ca("rogue root");
    let cfg = x509_device(e.dir.path(), "rogue", &rogue, "device-rogue");
    refused(&e.provision(&cfg, &[]), "verify");
}

#[test]
fn x509_cn_mismatch_is_refused() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509");
    refused(
        &e.provision(&cfg, &["--registration-id", "someone-else"]),
        "does not match",
    );
}

#[test]
fn x509_over_mqtt_is_assigned() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509-mqtt");
    let out = ok(&e.provision_mqtt(&cfg, &[]));
    assert!(out.contains("registration id: device-x509-mqtt"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
    assert!(out.contains("device id: device-x509-mqtt"), "{out}");
}

/// MQTT over WebSockets: on the emulator's HTTPS port, path `/$iothub/websocket`.
#[test]
fn x509_over_mqtt_ws_is_assigned() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509-ws");
    let out = ok(&e.provision(&cfg, &["--transport", "mqtt-ws"]));
    assert!(out.contains("registration id: device-x509-ws"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
}

/// A proxy on plain MQTT is refused before connecting (as in the C SDK: HTTPS and MQTT over
/// WebSockets only); a proxy URL that does not parse is a usage error.
#[test]
fn proxy_on_plain_mqtt_and_a_bad_proxy_url_are_refused() {
    let e = env();
    let cfg = x509_device(e.dir.path(), "dev", &e.root, "device-x509-proxy");
    let out = e.provision_mqtt(&cfg, &["--proxy", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("proxy"), "{err}");
    let out = e.provision(&cfg, &["--proxy", "not a url"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--proxy"), "{err}");
}

#[test]
fn x509_key_generated_in_softhsm_is_assigned() {
    let e = env();
    let token = test_support::softhsm::for_children("provision");
    let (hsm, pin) = (&token.hsm, &token.pin_file);
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
            .env("SOFTHSM2_CONF", hsm.conf())
            .args(args)
            .output()
            .unwrap();
        ok(&out)
    };
    let base = format!(
        "pkcs11:token=provision;object=dev-key?pin-source=file:{}",
        pin.display()
    );
    let key_uri = run(&["pkcs11", "keygen", "--uri", &base, "--key-type", "p256"])
        .trim()
        .to_string();
    assert!(!key_uri.contains("pin-value"), "{key_uri}");
    let csr = e.dir.path().join("dev.csr");
    run(&[
        "pkcs11",
        "csr",
        "--uri",
        &key_uri,
        "--common-name",
        "device-hsm",
        "--out",
        csr.to_str().unwrap(),
    ]);
    let issued = certify_csr(e.dir.path(), &e.root, &csr);
    run(&[
        "pkcs11",
        "import-cert",
        "--uri",
        &base,
        "--file",
        issued.join("device-hsm.cert.pem").to_str().unwrap(),
    ]);

    // No certificate in the configuration: the certificate object on the token with the key's id.
    let cfg = e.dir.path().join("pkcs11.toml");
    let provision = |uri: &str| {
        std::fs::write(&cfg, format!("[x509]\nbackend = \"pkcs11\"\nkey = \"{uri}\"\n")).unwrap();
        e.provision_command(&cfg)
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .unwrap()
    };
    let stdout = ok(&provision(&key_uri));
    assert!(stdout.contains("device id: device-hsm"), "{stdout}");

    // A wrong PIN is one clear error, not a registration.
    let bad_pin = hsm.pin_file("bad.pin", "9999").unwrap();
    let out = provision(&key_uri.replace(&pin.display().to_string(), &bad_pin.display().to_string()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.to_lowercase().contains("pin"), "{stderr}");
}
