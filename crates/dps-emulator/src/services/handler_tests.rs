//! The request handler over the three services, driven with transport-neutral requests as each listener
//! makes them.

use std::sync::Arc;

use super::*;
use crate::config::{EmulatorConfig, Enrollment};
use crate::request::{Client, SESSION, Transport};

const SCOPE: &str = "0ne00000A0A";
const KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";

fn handler() -> RequestHandler {
    let config = EmulatorConfig {
        id_scope: SCOPE.into(),
        assigned_hub: "hub.example.test".into(),
        enrollments: vec![Enrollment::SymmetricIndividual {
            registration_id: "dev-1".into(),
            primary_key: KEY.into(),
            secondary_key: None,
        }],
    };
    let store = crate::store::Store::open(None).unwrap();
    let enrollments = Arc::new(crate::enrollments::Enrollments::new(&config, store).unwrap());
    let options = crate::ServerOptions::default();
    let issuer = Arc::new(crate::issuance::CertificateIssuer::new(&options.issuance).unwrap());
    crate::emulator::request_handler(enrollments, issuer, Default::default(), &options)
}

fn token(key_b64: &str) -> String {
    let audience = hsm_core::sas::Audience::Dps {
        id_scope: SCOPE.into(),
        registration_id: "dev-1".into(),
    };
    let key = hsm_core::sas::decode_key("key", key_b64).unwrap();
    audience.sign_with_key(&key, hsm_core::sas::expiry_in(std::time::Duration::from_secs(600)))
}

fn request(transport: Transport, method: &str, path: &str, authorization: Option<String>, body: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: "api-version=2021-06-01".into(),
        headers: authorization
            .map(|a| ("Authorization".to_string(), a))
            .into_iter()
            .collect(),
        body: body.as_bytes().to_vec(),
        client: Client { transport, chain: None },
    }
}

#[test]
fn a_session_is_admitted_by_the_credentials_a_request_needs() {
    let handler = handler();
    let path = format!("/{SCOPE}/registrations/dev-1");
    for transport in [Transport::Mqtt, Transport::MqttWs, Transport::Amqp, Transport::AmqpWs] {
        let admitted = handler.handle(&request(transport, SESSION, &path, Some(token(KEY)), ""));
        assert_eq!(admitted.status, 204, "{}", admitted.error_message());
        let wrong_key = handler.handle(&request(transport, SESSION, &path, Some(token("d3Jvbmcta2V5")), ""));
        assert_eq!(wrong_key.status, 401);
        assert!(
            wrong_key.error_message().contains("SAS signature does not match"),
            "{}",
            wrong_key.error_message()
        );
        let none = handler.handle(&request(transport, SESSION, &path, None, ""));
        assert_eq!(none.status, 401);
    }
    // HTTPS has no sessions: every request carries its credentials.
    let https = handler.handle(&request(Transport::Https, SESSION, &path, Some(token(KEY)), ""));
    assert_eq!(https.status, 405);
}

#[test]
fn the_same_registration_answers_over_every_transport() {
    let handler = handler();
    let path = format!("/{SCOPE}/registrations/dev-1/register");
    for transport in [
        Transport::Https,
        Transport::Mqtt,
        Transport::MqttWs,
        Transport::Amqp,
        Transport::AmqpWs,
    ] {
        let accepted = handler.handle(&request(
            transport,
            "PUT",
            &path,
            Some(token(KEY)),
            r#"{"registrationId":"dev-1"}"#,
        ));
        assert_eq!(accepted.status, 202, "{transport:?}: {}", accepted.error_message());
        assert_eq!(accepted.header("retry-after"), Some("2"));
        // TPM attestation only where DPS takes it: HTTPS and AMQP (through SASL TPM), not MQTT.
        let tpm = r#"{"registrationId":"dev-1","tpm":{"endorsementKey":"AA==","storageRootKey":"AA=="}}"#;
        let answer = handler.handle(&request(transport, "PUT", &path, None, tpm));
        match transport {
            Transport::Https | Transport::Amqp | Transport::AmqpWs => {
                assert_ne!(answer.status, 400, "{}", answer.error_message())
            }
            Transport::Mqtt | Transport::MqttWs => {
                assert_eq!(answer.status, 400);
                assert!(
                    answer
                        .error_message()
                        .contains(&format!("not supported over {}", transport.name())),
                    "{}",
                    answer.error_message()
                );
            }
        }
    }
}

#[test]
fn iot_hub_paths_are_not_served_over_https_and_unknown_paths_are_404() {
    let handler = handler();
    let mut hub = request(
        Transport::Https,
        "POST",
        "/devices/dev-1/credentials/issueCertificate",
        None,
        "{}",
    );
    hub.headers.push(("host".into(), "hub.example.test".into()));
    let answer = handler.handle(&hub);
    assert_eq!(answer.status, 404);
    assert!(
        answer.error_message().contains("no such resource"),
        "{}",
        answer.error_message()
    );
    // Over MQTT the hub answers, and refuses a device no registration was assigned.
    hub.client.transport = Transport::Mqtt;
    let refused = handler.handle(&hub);
    assert_eq!(refused.status, 401, "{}", refused.error_message());
    assert!(
        refused
            .error_message()
            .contains("does not contain the specified device 'dev-1'"),
        "{}",
        refused.error_message()
    );
    let unknown = handler.handle(&request(Transport::Mqtt, "GET", "/nowhere/at/all", None, ""));
    assert_eq!(unknown.status, 404);
}
