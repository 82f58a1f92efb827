#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The SDK's calls are FFI calls: this test makes them as the C SDK does.
#![allow(unsafe_code)]
//! The C SDK's TPM call sequence through hsm-abi's exported interface (feature `tpm`), against
//! swtpm and the DPS emulator: tpm_interface, create, get_ek (twice), get_srk, the 401
//! challenge, activate_identity_key, sign_with_identity (SAS), register, poll,
//! activate_identity_key with the key returned at assignment, destroy.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::sdk_tpm::SdkTpm;
use common::{Swtpm, agent, send, url};
use dps_emulator::{Emulator, Enrollment};
use hsm_core::sas::Audience;
use serde_json::json;
use tlsio_bridge::TlsVersions;

use test_support::emulator::SCOPE;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[test]
fn the_sdk_tpm_sequence_through_the_c_abi() {
    let sw = Swtpm::start();
    let sdk = SdkTpm::open(&sw.tcti());

    let ek = sdk.ek();
    assert_eq!(sdk.ek(), ek);
    let srk = sdk.srk();
    let reg = hsm_tpm::registration_id(&ek);

    let emu = Emulator::start(test_support::emulator::config(vec![Enrollment::TpmIndividual {
        registration_id: reg.clone(),
        endorsement_key: B64.encode(&ek),
    }]))
    .unwrap();
    let agent = agent(&emu, None, TlsVersions::Both);
    let url = |path: &str| url(&emu, &format!("registrations/{reg}/{path}"));
    let body = json!({
        "registrationId": reg,
        "tpm": {"endorsementKey": B64.encode(&ek), "storageRootKey": B64.encode(&srk)},
    });

    let (status, challenge) = send(agent.put(&url("register")), Some(&body));
    assert_eq!(status, 401, "{challenge}");
    let blob = B64.decode(challenge["authenticationKey"].as_str().unwrap()).unwrap();
    // A truncated blob is refused and nothing is imported.
    assert_ne!(sdk.activate(&blob[..blob.len() - 3]), 0);
    assert_eq!(sdk.activate(&blob), 0);

    let audience = Audience::Dps {
        id_scope: SCOPE.into(),
        registration_id: reg.clone(),
    };
    let expiry = hsm_core::sas::expiry_in(Duration::from_secs(3600));
    let token = audience.token(&sdk.sign(audience.string_to_sign(expiry).as_bytes()), expiry);
    let (status, op) = send(agent.put(&url("register")).set("Authorization", &token), Some(&body));
    assert_eq!(status, 202, "{op}");
    let op_id = op["operationId"].as_str().unwrap();
    let (status, assigned) = send(
        agent
            .get(&url(&format!("operations/{op_id}")))
            .set("Authorization", &token),
        None,
    );
    assert_eq!(status, 200, "{assigned}");
    let hub_blob = B64
        .decode(
            assigned["registrationState"]["tpm"]["authenticationKey"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(sdk.activate(&hub_blob), 0);
    // The hub key replaced the DPS key: a token signed now no longer verifies for DPS.
    let token = audience.token(&sdk.sign(audience.string_to_sign(expiry).as_bytes()), expiry);
    let (status, _) = send(
        agent
            .get(&url(&format!("operations/{op_id}")))
            .set("Authorization", &token),
        None,
    );
    assert_eq!(status, 401);
}
