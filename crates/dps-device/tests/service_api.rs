//! Enrollments created through the emulator's service API are used by the device library at once, over
//! HTTPS and MQTT; a disabled one ends the registration `disabled`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::*;
use dps_device::Error;
use dps_emulator::{Emulator, ServerOptions, ServicePolicy};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtc2VydmljZS1hcGktdGVzdHM=";

fn start() -> Emulator {
    Emulator::start_with(
        test_support::emulator::config(vec![]),
        0,
        ServerOptions {
            retry_after: std::time::Duration::ZERO,
            service_policies: vec![ServicePolicy::owner("owner", OWNER_KEY)],
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

/// `PUT {path}` on the service API with a service SAS token; the answer's status and body.
fn put(emu: &Emulator, path: &str, body: Value) -> (u16, Value) {
    let host = emu.global_endpoint();
    let sr = hsm_core::sas::url_encode(&host);
    let se = now() + 600;
    let sig = hsm_core::sas::hmac_sha256(&B64.decode(OWNER_KEY).unwrap(), format!("{sr}\n{se}").as_bytes());
    let auth = format!(
        "SharedAccessSignature sr={sr}&sig={}&se={se}&skn=owner",
        hsm_core::sas::url_encode(&B64.encode(sig))
    );
    let tls = rustls::ClientConfig::builder_with_provider(hsm_core::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&emu.server_ca_pem()))
        .with_no_client_auth();
    let agent = ureq::AgentBuilder::new().tls_config(Arc::new(tls)).build();
    match agent
        .put(&format!("https://{host}{path}?api-version=2021-10-01"))
        .set("Authorization", &auth)
        .send_json(body)
    {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn api_created_enrollments_register_over_https_and_mqtt() {
    let emu = start();
    // Not enrolled yet: refused.
    assert_denied(
        https_client(&emu, options())
            .register(&symmetric("api-sym", DEVICE_KEY), None)
            .await,
        "no symmetric key enrollment",
    );
    let (s, b) = put(
        &emu,
        "/enrollments/api-sym",
        json!({"registrationId": "api-sym", "attestation": {"type": "symmetricKey",
               "symmetricKey": {"primaryKey": DEVICE_KEY}}}),
    );
    assert_eq!(s, 200, "{b}");
    let a = https_client(&emu, options())
        .register(&symmetric("api-sym", DEVICE_KEY), None)
        .await
        .unwrap();
    assert_assigned(&a, "api-sym");
    let a = mqtt_client(&emu, options())
        .register(&symmetric("api-sym", DEVICE_KEY), None)
        .await
        .unwrap();
    assert_assigned(&a, "api-sym");

    // An x509 group created through the API admits a device over both transports.
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("api group root");
    let (s, b) = put(
        &emu,
        "/enrollmentGroups/api-x509",
        json!({"enrollmentGroupId": "api-x509", "attestation": {"type": "x509",
               "x509": {"signingCertificates": {"primary": {"certificate": root.issuer.pem()}}}}}),
    );
    assert_eq!(s, 200, "{b}");
    let id = root.file_identity(dir.path(), "api-x509-device", &[]);
    assert_assigned(
        &https_client(&emu, options())
            .register(&x509(id.clone()), None)
            .await
            .unwrap(),
        "api-x509-device",
    );
    assert_assigned(
        &mqtt_client(&emu, options()).register(&x509(id), None).await.unwrap(),
        "api-x509-device",
    );
}

#[tokio::test]
async fn a_disabled_api_enrollment_is_refused_over_https_and_mqtt() {
    let emu = start();
    let (s, b) = put(
        &emu,
        "/enrollmentGroups/off",
        json!({"enrollmentGroupId": "off", "provisioningStatus": "disabled",
               "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY}}}),
    );
    assert_eq!(s, 200, "{b}");
    let derived = B64.encode(
        hsm_core::sas::derive_device_key(GROUP_KEY, "group-device")
            .unwrap()
            .as_slice(),
    );
    for client in [https_client(&emu, options()), mqtt_client(&emu, options())] {
        match client.register(&symmetric("group-device", &derived), None).await {
            Err(Error::NotAssigned { status, message, .. }) => {
                assert_eq!(status, dps_device::EnrollmentStatus::Disabled);
                assert!(message.contains("disabled"), "{message}");
            }
            other => panic!("expected a disabled registration, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_api_created_tpm_enrollment_is_attested_on_swtpm() {
    use hsm_core::TpmIdentity;
    let swtpm = hsm_tpm::testing::Swtpm::start().unwrap();
    let t: Box<dyn TpmIdentity> = Box::new(hsm_tpm::Tpm::open(hsm_tpm::TpmOptions::new(swtpm.tcti())).unwrap());
    let ek = t.endorsement_key().unwrap();
    let registration_id = hsm_tpm::registration_id(&ek);
    let attestation = dps_device::Attestation::Tpm(Arc::new(std::sync::Mutex::new(t)));
    let emu = start();
    let (s, b) = put(
        &emu,
        &format!("/enrollments/{registration_id}"),
        json!({"registrationId": registration_id, "attestation": {"type": "tpm",
               "tpm": {"endorsementKey": B64.encode(&ek)}}}),
    );
    assert_eq!(s, 200, "{b}");
    let a = https_client(&emu, options())
        .register(&attestation, None)
        .await
        .unwrap();
    assert_tpm_assigned(&a, &registration_id);
}
