//! An x509 identity from the software DICE engine (hsm-riot): the Alias key signs the TLS
//! handshake, the DeviceID certificate is enrolled individually; over each transport.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::*;
use dps_device::{Attestation, Transport};
use dps_emulator::Enrollment;
use hsm_core::config::Config;

#[tokio::test]
async fn a_dice_identity_is_assigned_over_https_mqtt_and_mqtt_ws() {
    let dir = tempfile::tempdir().unwrap();
    let uds = dir.path().join("uds.bin");
    std::fs::write(&uds, (0u8..48).map(|i| i.wrapping_mul(37) ^ 0x5a).collect::<Vec<u8>>()).unwrap();
    std::fs::set_permissions(&uds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let toml = format!(
        "[x509]\nbackend = \"dice\"\nuds_file = \"uds.bin\"\nfirmware_digest = \"{}\"\nregistration_id = \"dice-device\"\n",
        "ab".repeat(32)
    );
    let config = Config::from_toml(&toml, "dice.toml", dir.path()).unwrap();
    let dice = Arc::new(hsm_riot::DiceX509::from_section(config.section("x509").unwrap()).unwrap());
    let emu = emulator(vec![Enrollment::X509Individual {
        registration_id: "dice-device".into(),
        certificate: vec![dice.chain().device_id.clone()],
    }]);
    for (transport, client) in [
        (Transport::Https, https_client(&emu, options())),
        (Transport::Mqtt, mqtt_client(&emu, options())),
    ] {
        let a = client
            .register(&Attestation::X509(dice.clone()), None)
            .await
            .unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        assert_assigned(&a, "dice-device");
    }
    let ws = dps_device::ProvisioningClient::new(
        &emu.global_endpoint(),
        SCOPE,
        Transport::MqttWs,
        roots(&emu.server_ca_pem()),
        options(),
    );
    let a = ws.register(&Attestation::X509(dice), None).await.unwrap();
    assert_assigned(&a, "dice-device");
}
