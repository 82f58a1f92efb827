//! A real HTTPS client (ureq on rustls/ring) for the emulator, and the device API's requests and
//! answers; PKIs, configuration and waiting come from `test_support`.
#![allow(dead_code, unused_imports)]

pub mod amqp;
pub mod mqtt;

use std::sync::Arc;
use std::time::Duration;

use dps_emulator::Emulator;
use rustls::ClientConfig;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

pub use test_support::emulator::{GROUP_DEVICE_KEY, GROUP_KEY, HUB, SCOPE, config, now, sas};
pub use test_support::pki::{Ca, Identity, KeyType};
pub use test_support::tls::provider;
pub use test_support::wait::closed as until_closed;

/// Which TLS versions a client offers.
#[derive(Clone, Copy)]
pub enum Tls {
    Any,
    Only12,
}

pub fn client_builder(
    server_ca_pem: &str,
    tls: Tls,
) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    let roots = test_support::tls::roots(server_ca_pem);
    let versions: &[&rustls::SupportedProtocolVersion] = match tls {
        Tls::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Tls::Only12 => &[&rustls::version::TLS12],
    };
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
}

/// A ureq agent trusting the emulator's CA, optionally presenting a client certificate.
pub fn agent(emu: &Emulator, device: Option<&Identity>, tls: Tls) -> ureq::Agent {
    let builder = client_builder(&emu.server_ca_pem(), tls);
    let config = match device {
        Some(d) => builder
            .with_client_auth_cert(d.chain.clone(), d.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(20))
        .build()
}

/// Presents `chain` but signs the handshake with `key`, whatever it is (rustls' own consistency check is
/// bypassed on purpose: the server must catch the mismatch).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesClientCert for Fixed {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

pub fn agent_with_mismatched_key(
    emu: &Emulator,
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> ureq::Agent {
    let signing_key = provider().key_provider.load_private_key(key.clone_key()).unwrap();
    let config = client_builder(&emu.server_ca_pem(), Tls::Any)
        .with_client_cert_resolver(Arc::new(Fixed(Arc::new(CertifiedKey::new(chain, signing_key)))));
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(Duration::from_secs(20))
        .build()
}

pub fn register_url(emu: &Emulator, scope: &str, registration_id: &str) -> String {
    format!(
        "https://{}/{scope}/registrations/{registration_id}/register?api-version=2021-06-01",
        emu.global_endpoint()
    )
}

pub fn operation_url(emu: &Emulator, registration_id: &str, operation_id: &str) -> String {
    format!(
        "https://{}/{SCOPE}/registrations/{registration_id}/operations/{operation_id}?api-version=2021-06-01",
        emu.global_endpoint()
    )
}

/// Status and JSON body of a response, 4xx included; transport errors panic.
pub fn outcome(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

pub fn put_register(agent: &ureq::Agent, emu: &Emulator, registration_id: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = agent.put(&register_url(emu, SCOPE, registration_id));
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    outcome(req.send_json(json!({ "registrationId": registration_id })))
}

/// The whole device flow: PUT register (202 assigning), then poll until assigned; returns the final body.
pub fn provision(agent: &ureq::Agent, emu: &Emulator, registration_id: &str, auth: Option<&str>) -> Value {
    let (status, body) = put_register(agent, emu, registration_id, auth);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "assigning");
    let operation_id = body["operationId"].as_str().unwrap().to_string();
    assert!(!operation_id.is_empty());
    for _ in 0..10 {
        let mut req = agent.get(&operation_url(emu, registration_id, &operation_id));
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        let (status, body) = outcome(req.call());
        match status {
            202 => assert_eq!(body["status"], "assigning"),
            200 => {
                assert_eq!(body["operationId"], operation_id.as_str());
                return body;
            }
            other => panic!("poll answered {other}: {body}"),
        }
    }
    panic!("never assigned");
}

pub fn assert_assigned(body: &Value, registration_id: &str) {
    assert_eq!(body["status"], "assigned", "{body}");
    let state = &body["registrationState"];
    assert_eq!(state["registrationId"], registration_id);
    assert_eq!(state["deviceId"], registration_id);
    assert_eq!(state["assignedHub"], HUB);
    assert_eq!(state["status"], "assigned");
    assert_eq!(state["substatus"], "initialAssignment");
    for field in ["createdDateTimeUtc", "lastUpdatedDateTimeUtc", "etag"] {
        assert!(
            state[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {body}"
        );
    }
}

/// Asserts a 401 with errorCode 401002, a tracking id, and a message containing `needle`.
pub fn assert_denied((status, body): (u16, Value), needle: &str) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["errorCode"], 401002, "{body}");
    assert!(body["trackingId"].as_str().is_some_and(|s| s.len() >= 32), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}

/// A SAS token for `device_id` at the IoT hub `hub`, signed with the base64 key `key_b64`.
pub fn hub_sas(hub: &str, device_id: &str, key_b64: &str, expiry: u64) -> String {
    let key = hsm_core::sas::decode_key("test key", key_b64).unwrap();
    hsm_core::sas::Audience::Hub {
        host: hub.into(),
        device_id: device_id.into(),
    }
    .sign_with_key(&key, expiry)
}
