//! The library over HTTPS against the emulator (x509 file keys, symmetric keys) and against a scripted
//! server that misbehaves (endless assigning, redirects, huge or garbage bodies, hangs, closes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::scripted::{Scripted, Step, json};
use common::*;
use dps_device::{Error, Options, ProvisioningClient, Transport};
use dps_emulator::Enrollment;
use serde_json::json;

#[tokio::test]
async fn x509_individual_file_key_is_assigned_with_payload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("individual root");
    let id = ca.file_identity(dir.path(), "device-x509", &[]);
    let emu = emulator(vec![Enrollment::X509Individual {
        registration_id: "device-x509".into(),
        certificate: vec![ca.der()],
    }]);
    let payload = json!({"modelId": "dtmi:example:thermostat;1", "n": 7});
    let a = https_client(&emu, options())
        .register(&x509(id), Some(payload.clone()))
        .await
        .unwrap();
    assert_assigned(&a, "device-x509");
    assert_eq!(a.payload, Some(payload));
    assert_eq!(a.state.device_id.as_deref(), Some("device-x509"));
}

#[tokio::test]
async fn x509_group_through_an_intermediate_is_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("group root");
    let intermediate = root.intermediate("group intermediate");
    let id = intermediate.file_identity(dir.path(), "group-device-7", &[&intermediate]);
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![root.der()],
    }]);
    let a = https_client(&emu, options()).register(&x509(id), None).await.unwrap();
    assert_assigned(&a, "group-device-7");
    assert_eq!(a.payload, None);
}

#[tokio::test]
async fn x509_untrusted_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let enrolled = Ca::root("enrolled root");
    let rogue = Ca::root("rogue root");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![enrolled.der()],
    }]);
    let id = rogue.file_identity(dir.path(), "device-1", &[]);
    assert_denied(
        https_client(&emu, options()).register(&x509(id), None).await,
        "does not verify to any enrollment: UnknownIssuer",
    );
}

#[tokio::test]
async fn x509_cn_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("root");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![ca.der()],
    }]);
    let id = ca.file_identity(dir.path(), "device-a", &[]);
    assert_denied(
        https_client(&emu, options())
            .register_as(&x509(id), Some("device-b"), None)
            .await,
        "certificate CN 'device-a' does not match registration id 'device-b'",
    );
}

#[tokio::test]
async fn symmetric_individual_and_group_are_assigned() {
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
    let client = https_client(&emu, options());
    assert_assigned(
        &client.register(&symmetric("symm-1", DEVICE_KEY), None).await.unwrap(),
        "symm-1",
    );
    let derived = hsm_core::sas::derive_device_key(GROUP_KEY, "group-device-1").unwrap();
    let derived = hsm_core::sas::encode_key(&derived);
    let a = client
        .register(&symmetric("group-device-1", &derived), None)
        .await
        .unwrap();
    assert_assigned(&a, "group-device-1");
}

#[tokio::test]
async fn symmetric_wrong_key_and_expired_token_are_refused() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "symm-1".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    assert_denied(
        https_client(&emu, options())
            .register(&symmetric("symm-1", GROUP_DEVICE_KEY), None)
            .await,
        "SAS signature does not match the primary or secondary key",
    );
    let expired = Options {
        sas_expiry: Some(now() - 60),
        ..options()
    };
    assert_denied(
        https_client(&emu, expired)
            .register(&symmetric("symm-1", DEVICE_KEY), None)
            .await,
        "SAS token expired",
    );
}

#[test]
fn blocking_facade_registers() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "symm-blocking".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let client = dps_device::blocking::ProvisioningClient::new(
        &emu.global_endpoint(),
        SCOPE,
        Transport::Https,
        roots(&emu.server_ca_pem()),
        options(),
    )
    .unwrap();
    let a = client.register(&symmetric("symm-blocking", DEVICE_KEY), None).unwrap();
    assert_assigned(&a, "symm-blocking");
}

#[tokio::test]
async fn a_payload_that_is_not_an_object_is_refused_before_connecting() {
    let client = ProvisioningClient::new("127.0.0.1:1", SCOPE, Transport::Https, roots_none(), options());
    let e = client
        .register(&symmetric("d", DEVICE_KEY), Some(json!([1])))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidRequest(ref m) if m.contains("payload")),
        "{e}"
    );
}

fn roots_none() -> rustls::RootCertStore {
    rustls::RootCertStore::empty()
}

fn scripted_client(server: &Scripted, options: Options) -> ProvisioningClient {
    ProvisioningClient::new(
        &server.endpoint,
        SCOPE,
        Transport::Https,
        roots(&server.ca_pem),
        options,
    )
}

const ASSIGNING: &str = r#"{"operationId":"op-1","status":"assigning"}"#;

#[tokio::test]
async fn endless_assigning_ends_in_the_timeout() {
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING)]);
    let opts = Options {
        timeout: Duration::from_secs(2),
        retry_floor: Duration::from_millis(100),
        ..options()
    };
    let started = Instant::now();
    let e = scripted_client(&server, opts)
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &e {
        Error::Timeout { detail, .. } => assert!(detail.contains("\"assigning\"") && detail.contains("op-1"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_secs(3), "{took:?}");
    let polls = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!((5..=25).contains(&polls), "the 100 ms floor bounds the polls: {polls}");
}

#[tokio::test]
async fn retry_after_has_a_floor_and_a_ceiling() {
    // Retry-After: 0 with a 1 s floor: one poll waits at least 1 s.
    let assigned = r#"{"operationId":"op-1","status":"assigned","registrationState":{"registrationId":"d","assignedHub":"h","deviceId":"d","status":"assigned"}}"#;
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING), json(200, None, assigned)]);
    let started = Instant::now();
    let opts = Options {
        retry_floor: Duration::from_secs(1),
        ..options()
    };
    let a = scripted_client(&server, opts)
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap();
    assert_eq!(a.assigned_hub, "h");
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());

    // Retry-After: 3600 with a 200 ms ceiling.
    let server = Scripted::start(vec![json(202, Some("3600"), ASSIGNING), json(200, None, assigned)]);
    let started = Instant::now();
    let opts = Options {
        retry_ceiling: Duration::from_millis(200),
        ..options()
    };
    scripted_client(&server, opts)
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Scripted::start(vec![Step::Raw(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://evil.example/\x1b[31m\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    )]);
    let e = scripted_client(&server, options())
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    match &e {
        Error::Protocol { message, .. } => {
            assert!(message.contains("307") && message.contains("not followed"), "{e}");
            assert!(!message.contains('\u{1b}'), "{message:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_huge_body_is_bounded() {
    let big = format!("{{\"message\":\"{}\"}}", "x".repeat(1024 * 1024));
    let server = Scripted::start(vec![json(200, None, &big)]);
    let e = scripted_client(&server, options())
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { message, .. } if message.contains("exceeds 131072 bytes")),
        "{e}"
    );
}

#[tokio::test]
async fn garbage_and_service_text_are_sanitized_and_truncated() {
    let server = Scripted::start(vec![json(200, None, "\u{1b}]0;owned\u{7}not json")]);
    let e = scripted_client(&server, options())
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    match &e {
        Error::Protocol { message, .. } => {
            assert!(
                message.contains("not a JSON object") && message.contains("not json"),
                "{e}"
            );
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
        other => panic!("{other:?}"),
    }

    let long = format!(
        r#"{{"errorCode":400004,"trackingId":"t-1","message":"bad\r\nthing {}"}}"#,
        "y".repeat(5000)
    );
    let server = Scripted::start(vec![json(400, None, &long)]);
    let e = service_error(
        scripted_client(&server, options())
            .register(&symmetric("d", DEVICE_KEY), None)
            .await,
    );
    assert_eq!(
        (e.status, e.error_code, e.tracking_id.as_deref()),
        (400, Some(400004), Some("t-1"))
    );
    assert!(
        e.message.starts_with("badthing yyy") && e.message.len() < 600,
        "{}",
        e.message.len()
    );
}

#[tokio::test]
async fn a_hanging_server_ends_in_the_timeout() {
    let server = Scripted::start(vec![Step::Hang(Duration::from_secs(30))]);
    let opts = Options {
        timeout: Duration::from_secs(1),
        ..options()
    };
    let started = Instant::now();
    let e = scripted_client(&server, opts)
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_server_closing_mid_operation_is_a_transport_error() {
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING), Step::Close]);
    let e = scripted_client(&server, options())
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                transport: Transport::Https,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_untrusted_server_is_a_tls_error() {
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING)]);
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let client = ProvisioningClient::new(
        &server.endpoint,
        SCOPE,
        Transport::Https,
        roots(&other.cert.pem()),
        options(),
    );
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(&e, Error::Tls { message, .. } if message.contains("invalid peer certificate")),
        "{e:?}"
    );
}
