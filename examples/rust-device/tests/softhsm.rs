//! The example, run as a device maker would: a P-256 key generated on a SoftHSM2 token, its certificate
//! issued by a group CA, provisioned over MQTT against the DPS emulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use dps_emulator::{Emulator, EmulatorConfig, Enrollment};
use hsm::{Curve, KeyAlgorithm};
use hsm_pkcs11::testing::SoftHsm;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

const SCOPE: &str = "0ne00000A0A";
const HUB: &str = "hub.example.test";

/// The public half of a P-256 key on the token, for rcgen to certify.
struct TokenPublicKey(Vec<u8>);

impl rcgen::PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        // The uncompressed point ends the SubjectPublicKeyInfo.
        &self.0[self.0.len() - 65..]
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

#[test]
fn provisions_a_softhsm_key_over_mqtt() {
    let hsm = SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)");
    hsm.init_token("device", "so-pin-0000", "1234").unwrap();
    let pin = hsm.pin_file("user.pin", "1234").unwrap();
    let base = format!(
        "pkcs11:token=device;object=device-key?module-path={}&pin-source=file:{}",
        hsm.module().display(),
        pin.display()
    );
    // SAFETY: the only test of this binary, before any PKCS#11 module is loaded; nothing else here touches
    // the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", hsm.conf());
    }
    let key_uri = hsm_pkcs11::tools::generate_key_pair(&base, KeyAlgorithm::Ec(Curve::P256))
        .unwrap()
        .to_token_string();
    let spki = hsm_pkcs11::open_signer(&key_uri).unwrap().public_key_spki().unwrap();

    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "fleet root");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "rust-device-001");
    let leaf = leaf.signed_by(&TokenPublicKey(spki), &ca).unwrap();

    let emulator = Emulator::start(EmulatorConfig {
        id_scope: SCOPE.into(),
        assigned_hub: HUB.into(),
        enrollments: vec![Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![ca.der().clone()],
        }],
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("device.cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.path().join("server-ca.pem"), emulator.server_ca_pem()).unwrap();
    let config = dir.path().join("device.toml");
    std::fs::write(
        &config,
        format!(
            "[dps]\nid_scope = \"{SCOPE}\"\nendpoint = \"{}\"\ntrusted_ca = \"server-ca.pem\"\n\
             payload = '{{\"modelId\": \"dtmi:example:device;1\"}}'\n\n\
             [x509]\nbackend = \"pkcs11\"\nkey = \"{key_uri}\"\ncertificate_file = \"device.cert.pem\"\n",
            emulator.mqtt_endpoint()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rust-device"))
        .env("SOFTHSM2_CONF", hsm.conf())
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("registration id: rust-device-001"), "{stdout}");
    assert!(stdout.contains(&format!("assigned hub: {HUB}")), "{stdout}");
    assert!(stdout.contains("device id: rust-device-001"), "{stdout}");
}
