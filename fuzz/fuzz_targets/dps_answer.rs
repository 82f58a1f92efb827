//! The device library's reading of service answers (dps-device, HTTPS and MQTT, through the dps-wire
//! types): any status and body, any MQTT topic, never panics, and no error it makes carries a control
//! character from the server (its text is sanitized before a terminal sees it). Issued chains (DPS
//! `issuedCertificateChain`, IoT Hub `$iothub/credentials` certificates) go through `verify_issued_chain`
//! with the body as the CSR. Whatever body decodes into a wire type encodes back to JSON that decodes
//! to the same value (nothing is lost or changed by a read-modify-write).
#![no_main]

use dps_device::Transport;
use dps_wire::ErrorDetails;
use dps_wire::device::credentials::{CredentialsError, CredentialsResponse};
use dps_wire::device::{DeviceRegistration, DeviceRegistrationResult, RegistrationOperationStatus, TpmChallenge};
use dps_device::fuzzing::{read_answer, read_credentials_answer, read_credentials_topic, read_response_topic};
use libfuzzer_sys::fuzz_target;

fn clean(e: &dps_device::Error) {
    let shown = e.to_string();
    assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
}

/// Decoded, encoded and decoded again: the same value.
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(first) = serde_json::from_slice::<T>(body) {
        let text = serde_json::to_vec(&first).expect("a decoded wire value encodes");
        let again: T = serde_json::from_slice(&text).expect("an encoded wire value decodes");
        assert_eq!(first, again);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]);
    let body = &data[2..];
    round_trips::<RegistrationOperationStatus>(body);
    round_trips::<DeviceRegistrationResult>(body);
    round_trips::<DeviceRegistration>(body);
    round_trips::<TpmChallenge>(body);
    round_trips::<ErrorDetails>(body);
    round_trips::<CredentialsResponse>(body);
    round_trips::<CredentialsError>(body);
    for t in [Transport::Https, Transport::Mqtt] {
        match read_answer(t, status, body) {
            Ok(Some(a)) => {
                assert_eq!(a.state.assigned_hub.as_deref(), Some(a.assigned_hub.as_str()));
                if let Some(chain) = &a.issued_certificate_chain {
                    if let Err(e) = dps_device::verify_issued_chain(chain, body, &a.registration_id) {
                        clean(&e);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => clean(&e),
        }
    }
    match read_credentials_answer(status, body) {
        Ok(chain) => {
            if let Err(e) = dps_device::verify_issued_chain(&chain, body, "device") {
                clean(&e);
            }
        }
        Err(e) => clean(&e),
    }
    if let Ok(topic) = std::str::from_utf8(body) {
        if let Some(Err(e)) = read_response_topic(topic) {
            clean(&e);
        }
        if let Some(Err(e)) = read_credentials_topic(topic) {
            clean(&e);
        }
    }
});
