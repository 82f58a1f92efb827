#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A TPM-resident key authenticating TLS: an x509 identity (`backend = "tpm"`) provisions over
//! mutual TLS against the DPS emulator, TLS 1.3 and 1.2, every CertificateVerify signed in swtpm.

mod common;

use common::{Swtpm, agent, send, url};
use dps_emulator::{Emulator, Enrollment};
use hsm_core::X509Identity;
use hsm_tpm::{KeyLocation, TpmConn, TpmX509, generate_key};
use serde_json::json;

#[test]
fn tpm_key_authenticates_mutual_tls_to_the_emulator() {
    let sw = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let conn = TpmConn::shared(&sw.tcti()).unwrap();
    let blob = dir.path().join("device.tpmkey");
    let key = generate_key(conn, KeyLocation::Blob(blob.clone())).unwrap();

    // A group CA issues the device certificate for the TPM key (CN = registration id).
    let ca = test_support::pki::Ca::root("TPM group CA");
    let leaf = ca.certify(
        test_support::pki::leaf_params("tpm-tls-device"),
        &hsm_core::csr::SubjectKey::of(&key).unwrap(),
    );
    let chain = hsm_core::pem::certificates_to_pem(&[leaf, ca.der()]);
    std::fs::write(dir.path().join("chain.pem"), chain).unwrap();

    let text = format!(
        "[x509]\nbackend = \"tpm\"\ntcti = \"{}\"\nkey_blob = \"device.tpmkey\"\ncertificate = \"chain.pem\"\n",
        sw.tcti()
    );
    let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
    let identity = TpmX509::from_section(cfg.section("x509").unwrap()).unwrap();
    assert_eq!(identity.common_name().unwrap(), "tpm-tls-device");

    let emu = Emulator::start(test_support::emulator::config(vec![Enrollment::X509Group {
        name: "tpm-group".into(),
        ca: vec![ca.der().clone()],
    }]))
    .unwrap();
    for versions in [
        tlsio_bridge::TlsVersions::Tls13Only,
        tlsio_bridge::TlsVersions::Tls12Only,
    ] {
        let agent = agent(&emu, Some(&identity), versions);
        let url = |path: &str| url(&emu, &format!("registrations/tpm-tls-device/{path}"));
        let (status, op) = send(
            agent.put(&url("register")),
            Some(&json!({"registrationId": "tpm-tls-device"})),
        );
        assert_eq!(status, 202, "{versions:?}: {op}");
        let op_id = op["operationId"].as_str().unwrap();
        let (status, assigned) = send(agent.get(&url(&format!("operations/{op_id}"))), None);
        assert_eq!(status, 200, "{assigned}");
        assert_eq!(assigned["registrationState"]["deviceId"], "tpm-tls-device");
    }
}
