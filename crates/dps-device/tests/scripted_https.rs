//! A scripted HTTPS server that misbehaves, against HTTPS (endless assigning, Retry-After floor and
//! ceiling, redirects, huge or garbage bodies, hangs, closes, an untrusted certificate) and against the
//! WebSocket upgrade of MQTT over WebSockets (a refused upgrade, a close instead of the 101). The
//! well-behaved emulator over every transport: `transports.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::scripted::{ASSIGNED, ASSIGNING, Scripted, Step, json};
use common::*;
use dps_device::{Error, Options, ProvisioningClient, Transport};

#[tokio::test]
async fn endless_assigning_ends_in_the_timeout() {
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING)]);
    let opts = Options {
        timeout: Duration::from_secs(2),
        retry_floor: Duration::from_millis(100),
        ..options()
    };
    let started = Instant::now();
    let e = server.register(opts).await.unwrap_err();
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
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING), json(200, None, ASSIGNED)]);
    let started = Instant::now();
    let opts = Options {
        retry_floor: Duration::from_secs(1),
        ..options()
    };
    let a = server.register(opts).await.unwrap();
    assert_eq!(a.assigned_hub, "h");
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());

    // Retry-After: 3600 with a 200 ms ceiling.
    let server = Scripted::start(vec![json(202, Some("3600"), ASSIGNING), json(200, None, ASSIGNED)]);
    let started = Instant::now();
    let opts = Options {
        retry_ceiling: Duration::from_millis(200),
        ..options()
    };
    server.register(opts).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Scripted::start(vec![Step::Raw(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://evil.example/\x1b[31m\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    )]);
    let e = server.register(options()).await.unwrap_err();
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
    let e = server.register(options()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Protocol { message, .. } if message.contains("exceeds 131072 bytes")),
        "{e}"
    );
}

#[tokio::test]
async fn garbage_and_service_text_are_sanitized_and_truncated() {
    let server = Scripted::start(vec![json(200, None, "\u{1b}]0;owned\u{7}not json")]);
    let e = server.register(options()).await.unwrap_err();
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
    let e = service_error(server.register(options()).await);
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
    let e = server.register(opts).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.is_timeout() && e.is_retryable() && !e.is_connect(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_server_closing_mid_operation_is_a_transport_error() {
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING), Step::Close]);
    let e = server.register(options()).await.unwrap_err();
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
async fn an_untrusted_scripted_server_is_a_tls_error() {
    let server = Scripted::start(vec![json(202, Some("0"), ASSIGNING)]);
    let other = test_support::pki::self_signed_server(&["127.0.0.1"]);
    let client = ProvisioningClient::new(
        &server.endpoint,
        SCOPE,
        Transport::Https,
        roots(&other.cert_pem()),
        options(),
    );
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(&e, Error::Tls { message, .. } if message.contains("invalid peer certificate")),
        "{e:?}"
    );
}

#[tokio::test]
async fn mqtt_ws_a_refused_upgrade_names_the_path_and_the_status() {
    let body = "no such endpoint";
    let server = Scripted::start(vec![Step::Raw(
        format!(
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )]);
    let client = client_to(&server.endpoint, &server.ca_pem, Transport::MqttWs, options());
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            &e,
            Error::Transport {
                transport: Transport::MqttWs,
                ..
            }
        ) && text.contains("/$iothub/websocket")
            && text.contains("404"),
        "{e:?}"
    );
}

#[tokio::test]
async fn mqtt_ws_a_server_closing_after_the_upgrade_request_is_a_transport_error_in_bounded_time() {
    // A TLS server that reads the upgrade request and closes: no 101, no MQTT.
    let server = Scripted::start(vec![Step::Close]);
    let client = client_to(&server.endpoint, &server.ca_pem, Transport::MqttWs, options());
    let started = std::time::Instant::now();
    let e = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Transport {
                transport: Transport::MqttWs,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}
