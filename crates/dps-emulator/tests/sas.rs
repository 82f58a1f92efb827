//! Symmetric-key attestation: SAS tokens for individual and group enrollments, and every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dps_emulator::{Emulator, Enrollment};

const PRIMARY: &str = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLTAxMjM0NTY3ODk=";
const SECONDARY: &str = "c2Vjb25kYXJ5LWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc=";
const WRONG: &str = "d3Jvbmcta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5YWI=";

fn emulator() -> Emulator {
    Emulator::start(config(vec![
        Enrollment::SymmetricIndividual {
            registration_id: "sym-device".into(),
            primary_key: PRIMARY.into(),
            secondary_key: Some(SECONDARY.into()),
        },
        Enrollment::SymmetricGroup {
            name: "test-vector-group".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
    ]))
    .unwrap()
}

#[test]
fn individual_primary_and_secondary_keys() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    for key in [PRIMARY, SECONDARY] {
        let token = sas("sym-device", key, now() + 3600);
        assert_assigned(&provision(&agent, &emu, "sym-device", Some(&token)), "sym-device");
    }
}

#[test]
fn group_key_from_the_test_vectors() {
    let emu = emulator();
    // The device key derived from the group key, as given in shared/test-vectors.md.
    let token = sas("device-0001", GROUP_DEVICE_KEY, now() + 3600);
    let agent = agent(&emu, None, Tls::Only12);
    assert_assigned(&provision(&agent, &emu, "device-0001", Some(&token)), "device-0001");
}

#[test]
fn wrong_individual_key_is_refused() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let token = sas("sym-device", WRONG, now() + 3600);
    assert_denied(
        put_register(&agent, &emu, "sym-device", Some(&token)),
        "SAS signature does not match the primary or secondary key of enrollment symmetric-individual 'sym-device'",
    );
}

#[test]
fn group_key_itself_is_not_a_device_key() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let token = sas("device-0001", GROUP_KEY, now() + 3600);
    assert_denied(
        put_register(&agent, &emu, "device-0001", Some(&token)),
        "SAS signature does not match a key derived for 'device-0001' from any symmetric-group enrollment \
         (tried 'test-vector-group')",
    );
}

#[test]
fn expired_token_is_refused() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let token = sas("sym-device", PRIMARY, 1_600_000_000);
    assert_denied(
        put_register(&agent, &emu, "sym-device", Some(&token)),
        "SAS token expired at 2020-09-13T12:26:40Z (se=1600000000",
    );
}

#[test]
fn token_for_another_registration_is_refused() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    // Validly signed for device-0001 (group-derived key), presented for sym-device.
    let token = sas("device-0001", GROUP_DEVICE_KEY, now() + 3600);
    assert_denied(
        put_register(&agent, &emu, "sym-device", Some(&token)),
        "SAS token resource (sr) '0ne00000A0A%2fregistrations%2fdevice-0001' does not match \
         '0ne00000A0A%2fregistrations%2fsym-device'",
    );
}

#[test]
fn resource_comparison_ignores_case_after_decoding() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let key = hsm_core::sas::decode_key("key", PRIMARY).unwrap();
    let expiry = now() + 3600;
    // Upper-case escapes and an upper-case scope, signed as sent.
    let sr = "0NE00000A0A%2Fregistrations%2Fsym-device";
    let sig = hsm_core::sas::hmac_sha256(&key, format!("{sr}\n{expiry}").as_bytes());
    let token = format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn=registration",
        hsm_core::sas::url_encode(&base64_encode(&sig))
    );
    assert_assigned(&provision(&agent, &emu, "sym-device", Some(&token)), "sym-device");
}

#[test]
fn a_malformed_token_and_a_foreign_skn_are_refused_a_missing_skn_is_accepted() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    assert_denied(
        put_register(&agent, &emu, "sym-device", Some("Bearer abc")),
        "malformed SAS token: cannot parse SAS token: it must start with `SharedAccessSignature `",
    );
    let token = sas("sym-device", PRIMARY, now() + 3600).replace("&skn=registration", "&skn=owner");
    assert_denied(
        put_register(&agent, &emu, "sym-device", Some(&token)),
        "SAS token key name (skn) must be 'registration' or absent, found 'owner'",
    );
    // The Python SDK's token has no skn, and DPS accepts it: over HTTPS and as the MQTT password.
    let token = sas("sym-device", PRIMARY, now() + 3600).replace("&skn=registration", "");
    let body = provision(&agent, &emu, "sym-device", Some(&token));
    assert_assigned(&body, "sym-device");
}

#[test]
fn unknown_registration_without_groups_is_refused() {
    let emu = Emulator::start(config(vec![Enrollment::SymmetricIndividual {
        registration_id: "sym-device".into(),
        primary_key: PRIMARY.into(),
        secondary_key: None,
    }]))
    .unwrap();
    let agent = agent(&emu, None, Tls::Any);
    let token = sas("stranger", PRIMARY, now() + 3600);
    assert_denied(
        put_register(&agent, &emu, "stranger", Some(&token)),
        "no symmetric key enrollment for registration id 'stranger'",
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
