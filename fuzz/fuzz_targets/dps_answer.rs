//! The device library's reading of service answers (dps-device, HTTPS and MQTT): any status and
//! body, any MQTT topic, never panics, and no error it makes carries a control character from the
//! server (its text is sanitized before a terminal sees it). Issued chains (DPS `issuedCertificateChain`,
//! IoT Hub `$iothub/credentials` certificates) go through `verify_issued_chain` with the body as the CSR.
#![no_main]

use dps_device::Transport;
use dps_device::fuzzing::{read_answer, read_credentials_answer, read_credentials_topic, read_response_topic};
use libfuzzer_sys::fuzz_target;

fn clean(e: &dps_device::Error) {
    let shown = e.to_string();
    assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{shown:?}");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]);
    let body = &data[2..];
    for t in [Transport::Https, Transport::Mqtt] {
        match read_answer(t, status, body) {
            Ok(Some(a)) => {
                assert!(!a.assigned_hub.is_empty() || a.raw.is_object());
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
