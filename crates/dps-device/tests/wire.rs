//! What the device sends and accepts on the wire: the api-version of each request, the answer size
//! bound, redirects refused on every call, the registration status lookup (against the emulator),
//! and the IoT Hub renewal request (QoS 1, the error body's `retryAfter` and `info`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mqtt_server::{Answer, MqttServer, rid};
use common::scripted::{ASSIGNED, ASSIGNING, Scripted, Step, json};
use common::*;
use dps_device::{ApiVersion, Error, MAX_BODY, Options, ProvisioningClient, RenewalOptions, Transport};
use dps_emulator::Enrollment;
use rumqttc::mqttbytes::QoS;

fn p384_csr(cn: &str) -> Vec<u8> {
    test_support::pki::csr(cn, KeyType::P384).0
}

/// The api-version of the one request `options` and `csr` make.
async fn api_version_sent(options: Options, csr: Option<&[u8]>) -> String {
    let server = Scripted::start(vec![json(200, None, ASSIGNED)]);
    let client = server.https_client(options);
    let attestation = symmetric("d", DEVICE_KEY);
    let _ = match csr {
        Some(csr) => client.register_with_csr(&attestation, None, None, csr).await,
        None => client.register(&attestation, None).await,
    };
    let lines = server.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let query = lines[0].split("api-version=").nth(1).unwrap();
    query.split([' ', '&']).next().unwrap().to_string()
}

#[tokio::test]
async fn the_api_version_is_stable_and_follows_the_csr_unless_set() {
    assert_eq!(api_version_sent(options(), None).await, "2021-10-01");
    let csr = p384_csr("d");
    assert_eq!(api_version_sent(options(), Some(&csr)).await, "2026-04-01");
    let set = Options {
        api_version: Some(ApiVersion::parse("2025-07-01-preview").unwrap()),
        ..options()
    };
    assert_eq!(api_version_sent(set.clone(), Some(&csr)).await, "2025-07-01-preview");
    assert_eq!(api_version_sent(set, None).await, "2025-07-01-preview");
}

/// An assigned answer padded with spaces to exactly `len` bytes.
fn padded(len: usize) -> String {
    let mut body = ASSIGNED.to_string();
    body.push_str(&" ".repeat(len - body.len()));
    body
}

#[tokio::test]
async fn answers_up_to_128_kib_are_read_and_larger_ones_refused_over_https() {
    let server = Scripted::start(vec![json(200, None, &padded(MAX_BODY))]);
    let a = server.register(options()).await.unwrap();
    assert_eq!(a.assigned_hub, "h");

    let server = Scripted::start(vec![json(200, None, &padded(MAX_BODY + 1))]);
    let e = server.register(options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { message, .. } if message.contains("exceeds 131072 bytes")),
        "{e}"
    );
}

#[tokio::test]
async fn statuses_are_typed_and_a_value_this_version_does_not_know_is_kept() {
    use dps_device::{AssignedDeviceSubstatus as Sub, EnrollmentStatus};
    let assigned = |substatus: &str| {
        format!(
            r#"{{"operationId":"o","status":"assigned","registrationState":{{"registrationId":"d","assignedHub":"h","deviceId":"d","status":"assigned","substatus":"{substatus}"}}}}"#
        )
    };
    for (text, typed) in [
        ("deviceDataMigrated", Sub::DeviceDataMigrated),
        (
            "reprovisionedToInitialAssignment",
            Sub::ReprovisionedToInitialAssignment,
        ),
        ("movedByANewerService", Sub::Other("movedByANewerService".into())),
    ] {
        let server = Scripted::start(vec![json(200, None, &assigned(text))]);
        let a = server.register(options()).await.unwrap();
        assert_eq!(a.status, EnrollmentStatus::Assigned);
        assert_eq!(a.substatus.as_ref(), Some(&typed), "{text}");
        assert_eq!(a.substatus.as_ref().map(Sub::as_str), Some(text));
    }
    let failed = r#"{"operationId":"o","status":"failed","registrationState":{"registrationId":"d","status":"failed","errorCode":400207,"errorMessage":"custom allocation failed"}}"#;
    let server = Scripted::start(vec![json(200, None, failed)]);
    match server.register(options()).await {
        Err(Error::NotAssigned { status, error_code, .. }) => {
            assert_eq!((status, error_code), (EnrollmentStatus::Failed, Some(400207)));
        }
        other => panic!("expected a failed registration, got {other:?}"),
    }
}

fn mqtt_answering(body: String) -> MqttServer {
    MqttServer::start(
        false,
        Arc::new(move |p, _| {
            Answer::Send(vec![(
                format!("$dps/registrations/res/200/?$rid={}", rid(&p.topic)),
                body.clone().into_bytes(),
            )])
        }),
    )
}

fn mqtt(server: &MqttServer) -> ProvisioningClient {
    client_to(&server.endpoint, &server.ca_pem, Transport::Mqtt, options())
}

#[tokio::test]
async fn answers_up_to_128_kib_are_read_and_larger_ones_refused_over_mqtt() {
    let server = mqtt_answering(padded(MAX_BODY));
    let a = mqtt(&server).register(&symmetric("d", DEVICE_KEY), None).await.unwrap();
    assert_eq!(a.assigned_hub, "h");

    let server = mqtt_answering(padded(MAX_BODY + 4096));
    let e = mqtt(&server)
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { message, .. } if message.contains("131072 bytes")),
        "{e}"
    );
}

fn assert_redirect(e: Error, status: &str) {
    match &e {
        Error::Protocol { message, .. } => {
            assert!(message.contains(status) && message.contains("not followed"), "{e}")
        }
        other => panic!("expected a redirect error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_is_an_error_on_every_call() {
    let redirect = |status: u16| {
        Step::Raw(
            format!("HTTP/1.1 {status} Moved\r\nLocation: https://elsewhere.example/\r\nContent-Length: 0\r\n\r\n")
                .into_bytes(),
        )
    };
    // HTTPS: the register request, a poll, the status lookup.
    for (steps, status) in [
        (vec![redirect(301)], "301"),
        (vec![json(202, Some("0"), ASSIGNING), redirect(302)], "302"),
    ] {
        let server = Scripted::start(steps);
        let e = server.register(options()).await.unwrap_err();
        assert_redirect(e, status);
    }
    let server = Scripted::start(vec![redirect(307)]);
    let e = server
        .https_client(options())
        .registration_status(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert_redirect(e, "307");

    // MQTT: a 3xx status in the response topic.
    let server = MqttServer::start(
        false,
        Arc::new(|p, _| {
            Answer::Send(vec![(
                format!("$dps/registrations/res/302/?$rid={}", rid(&p.topic)),
                b"{}".to_vec(),
            )])
        }),
    );
    let e = mqtt(&server)
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert_redirect(e, "302");

    // IoT Hub renewal.
    let server = MqttServer::start(
        false,
        Arc::new(|p, _| {
            Answer::Send(vec![(
                format!("$iothub/credentials/res/303/?$rid={}", rid(&p.topic)),
                b"{}".to_vec(),
            )])
        }),
    );
    let e = renew(&server, RenewalOptions::default()).await.unwrap_err();
    assert_redirect(e, "303");
}

async fn renew(server: &MqttServer, options: RenewalOptions) -> Result<Vec<Vec<u8>>, Error> {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("renewal test CA");
    let identity = ca.file_identity(dir.path(), "renew-me", &[]);
    dps_device::renew_certificate(
        "hub.example.test",
        &server.endpoint,
        "renew-me",
        identity,
        roots(&server.ca_pem),
        &p384_csr("renew-me"),
        &options,
    )
    .await
}

#[tokio::test]
async fn renewal_is_sent_at_qos_1_and_honours_the_bodys_retry_after_and_shows_info() {
    // 429 whose only retry-after is the body's info; then a 400 whose info explains it.
    let server = MqttServer::start(
        false,
        Arc::new(|p, n| {
            let (status, body) = match n {
                0 => (
                    429,
                    r#"{"errorCode":429002,"message":"throttled","info":{"retryAfter":"2"}}"#,
                ),
                _ => (
                    400,
                    r#"{"errorCode":400037,"message":"Unable to complete the certificate request","trackingId":"t","timestampUtc":"2026-01-31T00:49:39Z","info":{"credentialMessage":"CSR did not pass verification","credentialError":"400000"}}"#,
                ),
            };
            Answer::Send(vec![(
                format!("$iothub/credentials/res/{status}/?$rid={}", rid(&p.topic)),
                body.as_bytes().to_vec(),
            )])
        }),
    );
    let options = RenewalOptions {
        timeout: Duration::from_secs(20),
        retry_floor: Duration::ZERO,
        ..RenewalOptions::default()
    };
    let started = Instant::now();
    let e = renew(&server, options).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    let Error::Service(s) = &e else { panic!("{e:?}") };
    assert_eq!((s.status, s.error_code), (400, Some(400037)), "{e}");
    assert!(
        s.info.contains(&(
            "credentialMessage".to_string(),
            "CSR did not pass verification".to_string()
        )),
        "{e}"
    );
    assert!(e.to_string().contains("credentialError=400000"), "{e}");
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.qos == QoS::AtLeastOnce), "{received:?}");
}

fn emulated(id: &str) -> dps_emulator::Emulator {
    emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: id.into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }])
}

#[tokio::test]
async fn the_registration_status_lookup_reads_what_dps_holds() {
    let emu = emulated("lookup-me");
    let client = https_client(&emu, options());
    let attestation = symmetric("lookup-me", DEVICE_KEY);
    let a = client.register(&attestation, None).await.unwrap();
    let state = client.registration_status(&attestation, None).await.unwrap();
    assert_eq!(state.registration_id.as_deref(), Some("lookup-me"));
    assert_eq!(state.assigned_hub.as_deref(), Some(HUB));
    assert_eq!(state.device_id.as_deref(), Some(a.device_id.as_str()));
    assert_eq!(state.status, Some(dps_wire::device::EnrollmentStatus::Assigned));
    assert_eq!(state.etag, a.etag);

    // A wrong key is the service's refusal.
    let wrong = symmetric("lookup-me", GROUP_DEVICE_KEY);
    assert_eq!(
        service_error_of(client.registration_status(&wrong, None).await).status,
        401
    );

    // MQTT has no such call.
    let e = mqtt_client(&emu, options())
        .registration_status(&attestation, None)
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::InvalidRequest(m) if m.contains("HTTPS")), "{e}");
}

#[test]
fn the_blocking_client_looks_the_status_up_too() {
    let emu = emulated("lookup-blocking");
    let client = dps_device::blocking::ProvisioningClient::new(
        &emu.global_endpoint(),
        SCOPE,
        Transport::Https,
        roots(&emu.server_ca_pem()),
        options(),
    )
    .unwrap();
    let attestation = symmetric("lookup-blocking", DEVICE_KEY);
    client.register(&attestation, None).unwrap();
    let state = client
        .registration_status(&attestation, Some("lookup-blocking"))
        .unwrap();
    assert_eq!(state.assigned_hub.as_deref(), Some(HUB));
}

fn service_error_of<T: std::fmt::Debug>(r: Result<T, Error>) -> dps_device::ServiceError {
    match r {
        Err(Error::Service(e)) => e,
        other => panic!("expected a service error, got {other:?}"),
    }
}
