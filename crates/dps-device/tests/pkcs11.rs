//! Keys that never leave a SoftHSM2 token, over HTTPS, MQTT and AMQP: an x509 identity whose TLS signatures are
//! made on the token, and a symmetric key whose SAS is an HMAC computed on the token; each then connects to the
//! emulator's IoT Hub with the same key (`dps_device::hub`) and sends a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use dps_device::Attestation;
use dps_emulator::Enrollment;
use hsm_core::config::Config;
use hsm_core::{Curve, KeyAlgorithm};
use hsm_pkcs11::{Pkcs11Secret, Pkcs11Symmetric, Pkcs11Uri, Pkcs11X509, tools};
use test_support::softhsm;

fn fixture() -> &'static softhsm::Fixture {
    softhsm::fixture()
}

fn uri(object: &str) -> String {
    fixture().uri(&format!("object={object}"))
}

/// Connect to the assigned hub with the identity that was assigned, send one message at QoS 1, and see it
/// where the service reads it.
async fn send_over_the_hub(
    emu: &dps_emulator::Emulator,
    assignment: &dps_device::Assignment,
    attestation: &Attestation,
) {
    use rumqttc::{Event, Packet, QoS};
    let mut hub_options = dps_device::hub::HubOptions::new(roots(&emu.server_ca_pem()));
    hub_options.endpoint = Some(emu.mqtt_endpoint());
    let hub = dps_device::hub::HubConnection::new(assignment, attestation, hub_options)
        .await
        .unwrap();
    let (client, mut events) = rumqttc::AsyncClient::new(hub.mqtt_options().await.unwrap(), 10);
    client
        .publish(hub.topics().telemetry(""), QoS::AtLeastOnce, false, "from the token")
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match events.poll().await.expect("the hub connection failed") {
                Event::Incoming(Packet::PubAck(_)) => break,
                _ => continue,
            }
        }
    })
    .await
    .expect("no PUBACK within 20 s");
    client.disconnect().await.unwrap();
    let kept = emu.hub_messages(Some(&assignment.device_id));
    assert!(kept.iter().any(|m| m.body == b"from the token"), "{kept:?}");
}

#[tokio::test]
async fn x509_key_on_softhsm_is_assigned() {
    let f = fixture();
    let key_uri = tools::generate_key_pair(&uri("device-hsm"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let signer = hsm_pkcs11::open_signer(&key_uri.to_token_string()).unwrap();
    let ca = Ca::root("hsm root");
    let public = hsm_core::csr::SubjectKey::of(signer.as_ref()).unwrap();
    assert_eq!(
        rcgen::PublicKeyData::subject_public_key_info(&public),
        signer.public_key_spki().unwrap()
    );
    let leaf = ca.certify(test_support::pki::leaf_params("device-hsm"), &public);
    let cert = f.hsm.path().join("device-hsm.pem");
    std::fs::write(&cert, hsm_core::pem::certificates_to_pem(&[leaf])).unwrap();
    let cfg = Config::from_toml(
        &format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\ncertificate_file = \"{}\"\n",
            key_uri.to_token_string(),
            cert.display()
        ),
        "test.toml",
        f.hsm.path(),
    )
    .unwrap();
    let identity = Arc::new(Pkcs11X509::from_section(cfg.section("x509").unwrap()).unwrap());

    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]);
    let attestation = Attestation::X509(identity);
    for client in [
        https_client(&emu, options()),
        mqtt_client(&emu, options()),
        amqp_client(&emu, options()),
    ] {
        let assignment = client.register(&attestation, None).await.unwrap();
        assert_assigned(&assignment, "device-hsm");
        send_over_the_hub(&emu, &assignment, &attestation).await;
    }
}

#[tokio::test]
async fn symmetric_key_on_softhsm_signs_the_sas() {
    let key = hsm_core::sas::derive_device_key(GROUP_KEY, "hsm-symm").unwrap();
    let secret_uri = tools::import_secret(&uri("hsm-symm-key"), &key).unwrap();
    let secret = Pkcs11Secret::open(&Pkcs11Uri::parse(&secret_uri.to_token_string()).unwrap()).unwrap();
    let identity = Arc::new(Pkcs11Symmetric::new("hsm-symm".into(), secret));
    assert!(
        hsm_core::SymmetricIdentity::symmetric_key(identity.as_ref()).is_err(),
        "the key stays on the token"
    );
    let emu = emulator(vec![Enrollment::SymmetricGroup {
        name: "fleet".into(),
        primary_key: GROUP_KEY.into(),
        secondary_key: None,
    }]);
    let attestation = Attestation::SymmetricKey(identity);
    for client in [
        https_client(&emu, options()),
        mqtt_client(&emu, options()),
        amqp_client(&emu, options()),
    ] {
        let assignment = client.register(&attestation, None).await.unwrap();
        assert_assigned(&assignment, "hsm-symm");
        send_over_the_hub(&emu, &assignment, &attestation).await;
    }
}
