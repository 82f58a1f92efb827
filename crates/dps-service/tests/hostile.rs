//! The service client against a hostile (or merely newer) service: a local HTTPS server that
//! redirects, throttles, repeats or never ends its continuation tokens, and sends fields we do not
//! model. Each test fails on the client before these fixes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dps_service::models::{ProvisioningStatus, SymmetricKeyAttestation};
use dps_service::{ApiVersion, ClientOptions, ConnectionString, Error, ServiceClient};
use serde_json::{Value, json};
use test_support::https_server::{Answer, Request, Server, answer};

const KEY: &str = "b3duZXIta2V5LWZvci10aGUtZHBzLXNlcnZpY2UtdGVzdHM=";

fn client(server: &Server, options: ClientOptions) -> ServiceClient {
    let cs = ConnectionString::parse(&format!(
        "HostName={};SharedAccessKeyName=owner;SharedAccessKey={KEY}",
        server.endpoint
    ))
    .unwrap();
    let cas = hsm_core::pem::parse_certificates("test server", server.ca_pem.as_bytes()).unwrap();
    ServiceClient::new(
        cs,
        ClientOptions {
            trusted_cas: Some(cas),
            ..options
        },
    )
    .unwrap()
}

fn enrollment_json(id: &str) -> Value {
    json!({"registrationId": id, "attestation": {"type": "symmetricKey"}, "etag": "\"1\""})
}

fn ok_json(v: &Value) -> Answer {
    answer(200, &[], &v.to_string())
}

#[test]
fn every_redirect_is_an_error_and_is_not_followed() {
    for status in [301, 302, 307, 308] {
        // The 3xx carries a body that would read as an enrollment: the old client took it as one.
        let body = enrollment_json("elsewhere").to_string();
        let server = Server::start(move |_, _| answer(status, &[("Location", "http://127.0.0.1:1/x")], &body));
        let c = client(&server, ClientOptions::default());
        let e = c.delete_enrollment("dev-1", None).unwrap_err();
        assert!(matches!(e, Error::Redirect { status: s, .. } if s == status), "{e}");
        assert!(e.to_string().contains("redirect"), "{e}");
        let e = c.get_enrollment("dev-1").unwrap_err();
        assert!(matches!(e, Error::Redirect { .. }), "{e}");
        let e = c.delete_registration("dev-1", None).unwrap_err();
        assert!(matches!(e, Error::Redirect { .. }), "{e}");
        assert_eq!(server.requests().len(), 3, "one request per call, none followed");
    }
}

#[test]
fn throttling_is_retried_after_the_services_retry_after() {
    let server = Server::start(|n, _| match n {
        0 => answer(
            429,
            &[("Retry-After", "1")],
            r#"{"errorCode":429001,"message":"slow down"}"#,
        ),
        // The body's info.retryAfter when the header is absent.
        1 => answer(503, &[], r#"{"errorCode":503001,"info":{"retryAfter":"1"}}"#),
        _ => ok_json(&enrollment_json("dev-1")),
    });
    let c = client(&server, ClientOptions::default());
    let e = c.get_enrollment("dev-1").unwrap();
    assert_eq!(e.registration_id, "dev-1");
    let r = server.requests();
    assert_eq!(r.len(), 3);
    for pair in r.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "sent again after {gap:?}, before Retry-After"
        );
        assert!(gap < Duration::from_secs(5), "{gap:?}");
    }
}

#[test]
fn a_retry_after_beyond_the_bound_ends_the_call_with_it() {
    let server = Server::start(|_, _| answer(429, &[("Retry-After", "600")], r#"{"errorCode":429001}"#));
    let c = client(&server, ClientOptions::default());
    let started = std::time::Instant::now();
    let e = c.get_enrollment("dev-1").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(600)), "{e}");
    assert_eq!((e.status(), e.error_code()), (Some(429), Some(429001)));
    assert_eq!(server.requests().len(), 1);
}

/// A query server: each page one item and `token(n)` as its continuation; after `give_up`
/// requests it answers 400, so a client that never stops (the old one) still ends, with the wrong error.
fn paging_server(token: fn(usize) -> String, give_up: usize, delay: Duration) -> Server {
    Server::start(move |n, r: &Request| {
        assert_eq!(r.path(), "/enrollments/query");
        if n >= give_up {
            return answer(400, &[], r#"{"errorCode":400000,"message":"enough"}"#);
        }
        // The server's own pace (a slow service), not a wait for an event.
        std::thread::sleep(delay);
        let t = token(n);
        answer(
            200,
            &[("x-ms-continuation", &t)],
            &json!([enrollment_json(&format!("dev-{n}"))]).to_string(),
        )
    })
}

fn paging_error(items: Vec<dps_service::Result<dps_service::IndividualEnrollment>>) -> (usize, String) {
    let ok = items.iter().filter(|i| i.is_ok()).count();
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert!(matches!(last, Error::Paging { .. }), "ended with {last}");
    (ok, last.to_string())
}

#[test]
fn a_repeated_continuation_token_ends_the_query_with_an_error() {
    // The same token every time, then a loop of two.
    for token in [(|_| "same".to_string()) as fn(usize) -> String, |n| {
        format!("t{}", n % 2)
    }] {
        let server = paging_server(token, 1000, Duration::ZERO);
        let c = client(&server, ClientOptions::default());
        let items: Vec<_> = c.query_enrollments("SELECT * FROM enrollments", Some(1)).collect();
        let (ok, message) = paging_error(items);
        assert!(message.contains("continuation token it had sent before"), "{message}");
        let requests = server.requests().len();
        assert!(requests <= 3, "{requests} requests");
        assert_eq!(ok, requests, "every page's item is yielded before the error");
        assert_eq!(
            server.requests()[1].header("x-ms-continuation"),
            Some(token(0).as_str())
        );
    }
}

#[test]
fn an_endless_listing_stops_at_the_page_cap_or_the_deadline() {
    let server = paging_server(|n| format!("token-{n}"), 1000, Duration::ZERO);
    let capped = ClientOptions {
        max_query_pages: 5,
        ..ClientOptions::default()
    };
    let c = client(&server, capped);
    let (ok, message) = paging_error(c.query_enrollments("SELECT *", None).collect());
    assert_eq!((ok, server.requests().len()), (5, 5));
    assert!(message.contains("page cap (max_query_pages)"), "{message}");

    let server = paging_server(|n| format!("token-{n}"), 1000, Duration::from_millis(20));
    let deadline = ClientOptions {
        query_timeout: Some(Duration::from_secs(1)),
        ..ClientOptions::default()
    };
    let c = client(&server, deadline);
    let started = std::time::Instant::now();
    let (_, message) = paging_error(c.query_enrollments("SELECT *", None).collect());
    assert!(message.contains("deadline of 1 s (query_timeout)"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// An enrollment as a newer service sends it: fields and values this version does not model, at
/// every level.
fn newer_enrollment() -> Value {
    json!({
        "registrationId": "dev-1",
        "deviceId": "d1",
        "attestation": {
            "type": "x509",
            "x509": {
                "clientCertificates": {"primary": {"certificate": "LS0t", "info": {"subjectName": "CN=d", "version": 3, "keyAlgorithm": "ecdsa"}}},
                "futureX509": true
            },
            "attestationPolicy": "strict"
        },
        "etag": "\"7\"",
        "provisioningStatus": "enabled",
        "allocationPolicy": "nearestRegion",
        "capabilities": {"iotEdge": false, "iotGateway": true},
        "initialTwin": {"tags": {"site": "f7"}, "properties": {"desired": {"rate": 5}}, "future": 1},
        "credentialPolicyName": "issuance-1",
        "certificateAuthorityName": "ca-1",
        "registrationState": {"registrationId": "dev-1", "status": "quarantined", "connectionProfile": "mqttV5", "geo": "eu"},
        "serviceSideSetting": {"retention": "P30D"},
        "lifecycle": "managed"
    })
}

#[test]
fn get_then_put_keeps_every_field_we_do_not_model() {
    let server = Server::start(|_, r: &Request| match r.method.as_str() {
        "GET" => ok_json(&newer_enrollment()),
        _ => answer(200, &[], std::str::from_utf8(&r.body).unwrap()),
    });
    let c = client(&server, ClientOptions::default());
    let mut e = c.get_enrollment("dev-1").unwrap();
    e.common.provisioning_status = Some(ProvisioningStatus::Disabled);
    c.put_enrollment(&e).unwrap();
    let put = &server.requests()[1];
    assert_eq!((put.method.as_str(), put.header("if-match")), ("PUT", Some("\"7\"")));
    let mut expected = newer_enrollment();
    expected["provisioningStatus"] = json!("disabled");
    assert_eq!(put.json(), expected, "the PUT lost or changed a field");
}

#[test]
fn attestation_mechanisms_are_read_with_a_post() {
    let server = Server::start(|_, _| {
        ok_json(
            &json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": "cHJpbWFyeQ==", "secondaryKey": "c2Vjb25k"}}),
        )
    });
    let c = client(
        &server,
        ClientOptions {
            api_version: ApiVersion::parse("2026-04-01").unwrap(),
            ..ClientOptions::default()
        },
    );
    let a = c.get_enrollment_attestation("dev 1").unwrap();
    let keys: &SymmetricKeyAttestation = a.symmetric_key.as_ref().unwrap();
    assert_eq!(keys.primary_key.as_deref().map(String::as_str), Some("cHJpbWFyeQ=="));
    assert!(!format!("{a:?}").contains("cHJpbWFyeQ=="), "a key in Debug");
    c.get_group_attestation("fleet").unwrap();
    let r = server.requests();
    assert_eq!(
        (r[0].method.as_str(), r[0].path()),
        ("POST", "/enrollments/dev%201/attestationmechanism")
    );
    assert_eq!(
        (r[1].method.as_str(), r[1].path()),
        ("POST", "/enrollmentGroups/fleet/attestationmechanism")
    );
    assert_eq!(r[0].header("content-length"), Some("0"));
    assert_eq!(r[0].query(), "api-version=2026-04-01");
}

#[test]
fn error_answers_keep_the_tracking_id_and_error_code() {
    let server = Server::start(|n, _| match n {
        0 => answer(
            404,
            &[],
            r#"{"errorCode":404201,"trackingId":"t-42","message":"not here","timestampUtc":"2026-01-01T00:00:00Z"}"#,
        ),
        _ => answer(409, &[("x-ms-error-code", "409201")], ""),
    });
    let c = client(&server, ClientOptions::default());
    let e = c.get_enrollment("dev-1").unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!((e.tracking_id(), e.error_code()), (Some("t-42"), Some(404201)));
    assert!(
        e.to_string().contains("trackingId t-42") && e.to_string().contains("404201"),
        "{e}"
    );
    let e = c.delete_group("g", None).unwrap_err();
    assert_eq!((e.status(), e.error_code()), (Some(409), Some(409201)), "{e}");
    assert_eq!(server.requests()[0].query(), "api-version=2021-10-01");
}
