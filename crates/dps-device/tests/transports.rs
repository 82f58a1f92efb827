//! The library against the emulator over every transport, written once as a table over
//! `Transport::ALL` (the rows: `tests/common/mod.rs`, `endpoint` and `assert_auth_refused`): x509 and
//! symmetric keys assigned, the refusals (untrusted chain, CN mismatch, wrong key, expired token), the
//! blocking facade, what each transport refuses before connecting (a payload that is no object, TPM
//! where DPS has none, the status lookup where DPS has none), a stopped emulator and an untrusted server.
//! The misbehaving servers: `scripted_https.rs` and `mqtt_hostile.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use dps_device::{Attestation, Error, Options, ProvisioningClient, Transport};
use dps_emulator::Enrollment;
use serde_json::json;

#[tokio::test]
async fn x509_individual_file_key_is_assigned_with_payload() {
    for t in Transport::ALL {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::root("individual root");
        let id = ca.file_identity(dir.path(), "device-x509", &[]);
        let emu = emulator(vec![Enrollment::X509Individual {
            registration_id: "device-x509".into(),
            certificate: vec![ca.der()],
        }]);
        let payload = json!({"modelId": "dtmi:example:thermostat;1", "n": 7, "over": t.name()});
        let a = client(&emu, t, options())
            .register(&x509(id), Some(payload.clone()))
            .await
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_assigned(&a, "device-x509");
        assert_eq!(a.payload, Some(payload), "{t}");
        assert_eq!(a.state.device_id.as_deref(), Some("device-x509"), "{t}");
    }
}

#[tokio::test]
async fn x509_group_through_an_intermediate_is_assigned() {
    for t in Transport::ALL {
        let dir = tempfile::tempdir().unwrap();
        let root = Ca::root("group root");
        let intermediate = root.intermediate("group intermediate");
        let id = intermediate.file_identity(dir.path(), "group-device-7", &[&intermediate]);
        let emu = emulator(vec![Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![root.der()],
        }]);
        let a = client(&emu, t, options())
            .register(&x509(id), None)
            .await
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_assigned(&a, "group-device-7");
        assert_eq!(a.payload, None, "{t}");
    }
}

#[tokio::test]
async fn x509_untrusted_chain_and_cn_mismatch_are_refused() {
    for t in Transport::ALL {
        let dir = tempfile::tempdir().unwrap();
        let enrolled = Ca::root("enrolled root");
        let rogue = Ca::root("rogue root");
        let emu = emulator(vec![Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![enrolled.der()],
        }]);
        let client = client(&emu, t, options());
        assert_auth_refused(
            t,
            client
                .register(&x509(rogue.file_identity(dir.path(), "device-r", &[])), None)
                .await,
            "does not verify to any enrollment: UnknownIssuer",
        );
        let good = enrolled.file_identity(dir.path(), "device-a", &[]);
        assert_auth_refused(
            t,
            client.register_as(&x509(good.clone()), Some("device-b"), None).await,
            "certificate CN 'device-a' does not match registration id 'device-b'",
        );
        // The same identity under its own name is admitted: the refusals were about the chain and CN.
        assert_assigned(&client.register(&x509(good), None).await.unwrap(), "device-a");
    }
}

#[tokio::test]
async fn symmetric_individual_and_group_are_assigned() {
    for t in Transport::ALL {
        let emu = emulator(vec![
            Enrollment::SymmetricIndividual {
                registration_id: "symm-1".into(),
                primary_key: DEVICE_KEY.into(),
                secondary_key: None,
            },
            Enrollment::SymmetricGroup {
                name: "fleet".into(),
                primary_key: GROUP_KEY.into(),
                secondary_key: None,
            },
        ]);
        let client = client(&emu, t, options());
        let a = client.register(&symmetric("symm-1", DEVICE_KEY), None).await;
        assert_assigned(&a.unwrap_or_else(|e| panic!("{t}: {e}")), "symm-1");
        let derived =
            hsm_core::sas::encode_key(&hsm_core::sas::derive_device_key(GROUP_KEY, "group-device-1").unwrap());
        let a = client.register(&symmetric("group-device-1", &derived), None).await;
        assert_assigned(&a.unwrap_or_else(|e| panic!("{t}: {e}")), "group-device-1");
    }
}

#[tokio::test]
async fn symmetric_wrong_key_and_expired_token_are_refused() {
    for t in Transport::ALL {
        let emu = emulator(vec![Enrollment::SymmetricIndividual {
            registration_id: "symm-1".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        }]);
        assert_auth_refused(
            t,
            client(&emu, t, options())
                .register(&symmetric("symm-1", GROUP_DEVICE_KEY), None)
                .await,
            "SAS signature does not match the primary or secondary key",
        );
        let expired = Options {
            sas_expiry: Some(now() - 60),
            ..options()
        };
        assert_auth_refused(
            t,
            client(&emu, t, expired)
                .register(&symmetric("symm-1", DEVICE_KEY), None)
                .await,
            "SAS token expired",
        );
        // The right key and a live token are admitted: the refusals were about the key and the expiry.
        let a = client(&emu, t, options())
            .register(&symmetric("symm-1", DEVICE_KEY), None)
            .await;
        assert_assigned(&a.unwrap_or_else(|e| panic!("{t}: {e}")), "symm-1");
    }
}

#[test]
fn the_blocking_facade_registers() {
    for t in Transport::ALL {
        let emu = emulator(vec![Enrollment::SymmetricIndividual {
            registration_id: "symm-blocking".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        }]);
        let client = dps_device::blocking::ProvisioningClient::new(
            &endpoint(&emu, t),
            SCOPE,
            t,
            roots(&emu.server_ca_pem()),
            options(),
        )
        .unwrap();
        let a = client.register(&symmetric("symm-blocking", DEVICE_KEY), None);
        assert_assigned(&a.unwrap_or_else(|e| panic!("{t}: {e}")), "symm-blocking");
    }
}

/// A client of `t` for a port nothing listens on: a connection attempt would be a transport error.
fn unreachable(t: Transport) -> ProvisioningClient {
    ProvisioningClient::new("127.0.0.1:1", SCOPE, t, rustls::RootCertStore::empty(), options())
}

#[tokio::test]
async fn a_payload_that_is_not_an_object_is_refused_before_connecting() {
    for t in Transport::ALL {
        let e = unreachable(t)
            .register(&symmetric("d", DEVICE_KEY), Some(json!([1])))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidRequest(ref m) if m.contains("payload")),
            "{t}: {e}"
        );
    }
}

#[tokio::test]
async fn tpm_is_refused_before_any_connection_where_dps_has_no_tpm() {
    let without: Vec<Transport> = Transport::ALL.into_iter().filter(|t| !t.supports_tpm()).collect();
    assert!(!without.is_empty());
    for t in without {
        let tpm: Box<dyn hsm_core::TpmIdentity> = Box::new(NoTpm);
        let e = unreachable(t)
            .register_as(&Attestation::Tpm(Arc::new(Mutex::new(tpm))), Some("tpm-1"), None)
            .await
            .unwrap_err();
        let wanted = format!(
            "TPM attestation is not supported over {t}: this client takes it over HTTPS, AMQP, AMQP over WebSockets only"
        );
        assert!(matches!(&e, Error::InvalidRequest(m) if *m == wanted), "{t}: {e:?}");
    }
}

/// The TPM row, on a real swtpm: over HTTPS the challenge is a 401, over AMQP and AMQP-WS it is the SASL
/// `TPM` mechanism; either way the key is activated in the TPM, the token signed in it, the assignment's
/// hub key activated again; another TPM under the same registration id is refused.
#[tokio::test]
async fn tpm_attestation_is_assigned_where_dps_takes_it_and_another_tpm_is_refused() {
    use base64::Engine as _;
    let with: Vec<Transport> = Transport::ALL.into_iter().filter(|t| t.supports_tpm()).collect();
    assert_eq!(with, [Transport::Https, Transport::Amqp, Transport::AmqpWs]);
    let swtpm = hsm_tpm::testing::Swtpm::start().unwrap();
    let other = hsm_tpm::testing::Swtpm::start().unwrap();
    let (attestation, ek) = swtpm_attestation(&swtpm);
    let registration_id = hsm_tpm::registration_id(&ek);
    for t in with {
        let emu = emulator(vec![Enrollment::TpmIndividual {
            registration_id: registration_id.clone(),
            endorsement_key: base64::engine::general_purpose::STANDARD.encode(&ek),
        }]);
        let client = client(&emu, t, options());
        let a = client
            .register(&attestation, None)
            .await
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_assigned(&a, &registration_id);
        assert!(
            a.state
                .tpm
                .as_ref()
                .and_then(|k| k.authentication_key.as_ref())
                .is_some(),
            "{t}: {:?}",
            a.state
        );
        let refused = client
            .register_as(&swtpm_attestation(&other).0, Some(&registration_id), None)
            .await;
        match t {
            Transport::Https => assert_denied(refused, "endorsementKey does not match"),
            _ => assert!(
                matches!(&refused, Err(e @ Error::ConnectionRefused { transport, code: 5, reason, .. })
                    if *transport == t && reason.contains("refused the TPM attestation (outcome auth")
                        && !e.is_retryable()),
                "{t}: {refused:?}"
            ),
        }
    }
}

#[tokio::test]
async fn the_emulator_refuses_a_tpm_enrolled_device_where_dps_has_no_tpm() {
    let ek = ek_b64();
    for t in Transport::ALL.into_iter().filter(|t| !t.supports_tpm()) {
        let emu = emulator(vec![Enrollment::TpmIndividual {
            registration_id: "tpm-device".into(),
            endorsement_key: ek.clone(),
        }]);
        assert_auth_refused(
            t,
            client(&emu, t, options())
                .register(&symmetric("tpm-device", DEVICE_KEY), None)
                .await,
            "",
        );
    }
}

#[tokio::test]
async fn the_status_lookup_is_refused_before_connecting_where_dps_has_none() {
    for t in Transport::ALL.into_iter().filter(|t| !t.supports_status_lookup()) {
        let e = unreachable(t)
            .registration_status(&symmetric("d", DEVICE_KEY), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::InvalidRequest(m) if m.contains("registration status lookup is an HTTPS call")),
            "{t}: {e:?}"
        );
    }
}

#[tokio::test]
async fn a_stopped_emulator_is_a_transport_error() {
    for t in Transport::ALL {
        let emu = emulator(vec![]);
        let client = client(&emu, t, options());
        drop(emu);
        let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
        assert!(
            matches!(e, Error::Transport { transport, .. } if transport == t),
            "{t}: {e:?}"
        );
        assert!(e.is_connect() && e.is_retryable() && !e.is_timeout(), "{t}: {e:?}");
        let refused = causes(&e)
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        assert!(refused, "{t}: no refused connection in the source chain of {e:?}");
    }
}

#[tokio::test]
async fn an_untrusted_server_is_a_tls_error() {
    for t in Transport::ALL {
        let emu = emulator(vec![]);
        let other = emulator(vec![]);
        // Trusting another emulator's CA: the server certificate does not verify.
        let client = ProvisioningClient::new(&endpoint(&emu, t), SCOPE, t, roots(&other.server_ca_pem()), options());
        let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
        assert!(
            matches!(&e, Error::Tls { transport, message, .. } if *transport == t && message.contains("invalid peer certificate")),
            "{t}: {e:?}"
        );
        assert!(e.is_connect() && !e.is_retryable() && !e.is_timeout(), "{t}: {e:?}");
        let rustls = causes(&e).any(|c| {
            c.downcast_ref::<rustls::Error>().is_some()
                || c.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
        });
        assert!(rustls, "{t}: no rustls error in the source chain of {e:?}");
    }
}

/// What a caller decides on: (is_connect, is_timeout, is_retryable).
fn classification(e: &Error) -> (bool, bool, bool) {
    (e.is_connect(), e.is_timeout(), e.is_retryable())
}

/// The same failure is classified alike on every transport (issue 23): a refused key or registration is
/// no retry (a refusal at connect where the transport authenticates there, else the service's 401), an
/// untrusted server a connect failure not to retry, nothing listening a connect failure to retry, a
/// server that never answers a timeout to retry.
#[tokio::test]
async fn the_same_failure_is_classified_alike_on_every_transport() {
    for t in Transport::ALL {
        let emu = emulator(vec![Enrollment::SymmetricIndividual {
            registration_id: "symm-1".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        }]);
        let refused = (t.authenticates_at_connect(), false, false);
        let wrong_key = client(&emu, t, options())
            .register(&symmetric("symm-1", GROUP_DEVICE_KEY), None)
            .await
            .unwrap_err();
        assert_eq!(classification(&wrong_key), refused, "{t}, wrong key: {wrong_key:?}");
        let unknown = client(&emu, t, options())
            .register(&symmetric("not-enrolled", DEVICE_KEY), None)
            .await
            .unwrap_err();
        assert_eq!(
            classification(&unknown),
            refused,
            "{t}, unknown registration: {unknown:?}"
        );

        let other = emulator(vec![]);
        let untrusted = ProvisioningClient::new(&endpoint(&emu, t), SCOPE, t, roots(&other.server_ca_pem()), options())
            .register(&symmetric("symm-1", DEVICE_KEY), None)
            .await
            .unwrap_err();
        assert!(matches!(untrusted, Error::Tls { .. }), "{t}: {untrusted:?}");
        assert_eq!(
            classification(&untrusted),
            (true, false, false),
            "{t}, untrusted server: {untrusted:?}"
        );

        let nothing = unreachable(t)
            .register(&symmetric("d", DEVICE_KEY), None)
            .await
            .unwrap_err();
        assert_eq!(
            classification(&nothing),
            (true, false, true),
            "{t}, nothing listening: {nothing:?}"
        );

        // A server that takes the TCP connection (the kernel's backlog) and never says a word.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let short = Options {
            timeout: std::time::Duration::from_secs(1),
            ..options()
        };
        let started = std::time::Instant::now();
        let timeout = ProvisioningClient::new(
            &silent.local_addr().unwrap().to_string(),
            SCOPE,
            t,
            roots(&emu.server_ca_pem()),
            short,
        )
        .register(&symmetric("symm-1", DEVICE_KEY), None)
        .await
        .unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{t}: took {:?}",
            started.elapsed()
        );
        assert!(matches!(timeout, Error::Timeout { .. }), "{t}: {timeout:?}");
        assert_eq!(
            classification(&timeout),
            (false, true, true),
            "{t}, no answer: {timeout:?}"
        );
        drop(silent);
    }
}

/// `e` and its sources.
fn causes(e: &Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |c| c.source())
}

/// A TPM identity that must never be used: the client refuses TPM before touching it.
struct NoTpm;

impl hsm_core::TpmIdentity for NoTpm {
    fn endorsement_key(&self) -> hsm_core::Result<Vec<u8>> {
        panic!("the TPM was used")
    }
    fn storage_root_key(&self) -> hsm_core::Result<Vec<u8>> {
        panic!("the TPM was used")
    }
    fn activate_identity_key(&self, _: &[u8]) -> hsm_core::Result<()> {
        panic!("the TPM was used")
    }
}

impl hsm_core::SasSigner for NoTpm {
    fn sign_with_identity(&self, _: &[u8]) -> hsm_core::Result<Vec<u8>> {
        panic!("the TPM was used")
    }
}

/// A TPM attestation on `swtpm`, and its EK.
fn swtpm_attestation(swtpm: &hsm_tpm::testing::Swtpm) -> (Attestation, Vec<u8>) {
    let tpm = hsm_tpm::Tpm::open(hsm_tpm::TpmOptions::new(swtpm.tcti())).unwrap();
    let ek = hsm_core::TpmIdentity::endorsement_key(&tpm).unwrap();
    let tpm: Box<dyn hsm_core::TpmIdentity> = Box::new(tpm);
    (Attestation::Tpm(Arc::new(Mutex::new(tpm))), ek)
}

/// The EK of a fresh swtpm, as the emulator's configuration wants it.
fn ek_b64() -> String {
    use base64::Engine as _;
    let swtpm = hsm_tpm::testing::Swtpm::start().unwrap();
    let tpm = hsm_tpm::Tpm::open(hsm_tpm::TpmOptions::new(swtpm.tcti())).unwrap();
    base64::engine::general_purpose::STANDARD.encode(hsm_core::TpmIdentity::endorsement_key(&tpm).unwrap())
}
