//! DPS answers 429 (throttled) and 5xx as an everyday answer for a fleet coming online: the client
//! sends again after the service's `retry-after` (HTTP header, MQTT topic property, or the error
//! body's `info.retryAfter`), within the overall timeout. Scripted servers: HTTPS and MQTT.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::mqtt_server::{Answer, MqttServer, rid};
use common::scripted::{ASSIGNED, ASSIGNING, Scripted, json};
use common::*;
use dps_device::{Error, Options, Transport};

const THROTTLED: &str = r#"{"errorCode":429001,"trackingId":"t-429","message":"throttled"}"#;
const THROTTLED_INFO: &str = r#"{"errorCode":429001,"message":"throttled","info":{"retryAfter":"1"}}"#;

#[tokio::test]
async fn https_429_twice_then_assigned() {
    // Retry-After header first, then only the body's info.retryAfter.
    let server = Scripted::start(vec![
        json(429, Some("1"), THROTTLED),
        json(429, None, THROTTLED_INFO),
        json(200, None, ASSIGNED),
    ]);
    let started = Instant::now();
    let a = server.register(options()).await.unwrap();
    assert_eq!(a.assigned_hub, "h");
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    let lines = server.lines();
    assert!(lines.iter().all(|l| l.starts_with("put ")), "{lines:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "each retry-after (1 s) was honoured: {took:?}"
    );
}

#[tokio::test]
async fn https_5xx_while_polling_is_polled_again() {
    let server = Scripted::start(vec![
        json(202, Some("0"), ASSIGNING),
        json(503, None, r#"{"errorCode":503001,"message":"unavailable"}"#),
        json(500, None, ""),
        json(200, None, ASSIGNED),
    ]);
    let opts = Options {
        retry_ceiling: Duration::from_millis(100),
        ..options()
    };
    let a = server.register(opts).await.unwrap();
    assert_eq!(a.device_id, "d");
    let lines = server.lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.starts_with("get ") && l.contains("/operations/op-1"))
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_ends_at_once_with_the_service_error() {
    let server = Scripted::start(vec![json(429, Some("30"), THROTTLED)]);
    let opts = Options {
        timeout: Duration::from_secs(5),
        ..options()
    };
    let started = Instant::now();
    let e = server.register(opts).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    match &e {
        Error::Timeout { detail, .. } => {
            assert!(
                detail.contains("429") && detail.contains("throttled") && detail.contains("30s"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_4xx_other_than_429_is_not_retried() {
    let server = Scripted::start(vec![json(401, None, r#"{"errorCode":401002,"message":"no"}"#)]);
    let e = service_error(server.register(options()).await);
    assert_eq!(e.status, 401);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn mqtt_429_twice_then_assigned() {
    // 429 with retry-after in the topic, 429 with it only in the body, 202, a 503 poll, 200.
    let server = MqttServer::start(
        false,
        Arc::new(|p, n| {
            let rid = rid(&p.topic);
            let (status, extra, body) = match n {
                0 => (429, "&retry-after=1", THROTTLED),
                1 => (429, "", THROTTLED_INFO),
                2 => (202, "&retry-after=0", ASSIGNING),
                3 => (503, "&retry-after=0", r#"{"errorCode":503001,"message":"unavailable"}"#),
                _ => (200, "", ASSIGNED),
            };
            Answer::Send(vec![(
                format!("$dps/registrations/res/{status}/?$rid={rid}{extra}"),
                body.as_bytes().to_vec(),
            )])
        }),
    );
    let client = client_to(&server.endpoint, &server.ca_pem, Transport::Mqtt, options());
    let started = Instant::now();
    let a = client.register(&symmetric("d", DEVICE_KEY), None).await.unwrap();
    assert_eq!(a.assigned_hub, "h");
    let topics: Vec<String> = server.received().into_iter().map(|r| r.topic).collect();
    assert_eq!(topics.len(), 5, "{topics:?}");
    assert!(
        topics[..3].iter().all(|t| t.contains("/PUT/iotdps-register/")),
        "{topics:?}"
    );
    assert!(topics[3..].iter().all(|t| t.contains("operationId=op-1")), "{topics:?}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
}
