//! The AMQP client (issue 23) against a scripted fe2o3 server (`common/amqp_server.rs`) that challenges
//! SASL without end, never answers a link attach, or answers without an operation id. Each registration
//! ends within its bound with a clear error. A server that settles a request only after its answer is
//! answered. (Garbage, a frame claiming gigabytes and silence, which the MQTT client meets too, are the
//! table of `hostile.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use dps_device::{Error, Transport};

/// Registers against the scripted server with an overall `timeout`: the error and how long it took.
async fn fails_against(server: &amqp_server::AmqpServer, timeout: Duration) -> (Error, Duration) {
    failed_registration(&client_to(
        &server.endpoint,
        &server.ca_pem,
        Transport::Amqp,
        timeout_after(timeout),
    ))
    .await
}

#[tokio::test]
async fn endless_sasl_challenges_end_at_the_first() {
    let server = amqp_server::start(amqp_server::Script::EndlessChallenges).await;
    let (e, took) = fails_against(&server, Duration::from_secs(20)).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // PLAIN has no challenge: the first one ends the exchange.
    assert_eq!(server.challenges.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        matches!(&e, Error::Transport { transport: Transport::Amqp, message, .. }
            if message.contains("opening the AMQP connection") && message.contains("SASL Challenge is not implemented")),
        "{e:?}"
    );
    assert!(!e.is_timeout(), "{e:?}");
}

#[tokio::test]
async fn a_link_that_never_attaches_ends_at_the_overall_timeout() {
    let server = amqp_server::start(amqp_server::Script::NeverAttach).await;
    let (e, took) = fails_against(&server, Duration::from_secs(2)).await;
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(
        matches!(&e, Error::Timeout { detail, .. } if detail.contains("the service did not answer over AMQP")),
        "{e:?}"
    );
    assert!(e.is_timeout() && e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn an_answer_without_an_operation_id_is_a_protocol_error() {
    let server = amqp_server::start(amqp_server::Script::NoOperationId).await;
    let (e, took) = fails_against(&server, Duration::from_secs(20)).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        matches!(&e, Error::Protocol { transport: Transport::Amqp, message } if message.contains("missing field `operationId`")),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "{e:?}");
}

/// The client closes as the C SDK does (the `close` frame, then the stream shut down) without waiting
/// for the server's answers: a server whose answers to the detach, end and close never leave does not
/// hold the registration up. Before, the client waited for the server's `close` (fe2o3's close,
/// spinning on a CPU meanwhile) until the 1 s close grace ended.
#[tokio::test]
async fn the_close_does_not_wait_for_the_server() {
    let server = amqp_server::start(amqp_server::Script::AssignedThenMute).await;
    let assignment = client_to(
        &server.endpoint,
        &server.ca_pem,
        Transport::Amqp,
        timeout_after(Duration::from_secs(20)),
    )
    .register(&symmetric("d", DEVICE_KEY), None)
    .await
    .unwrap();
    let returned = Instant::now();
    assert_eq!(assignment.device_id, "d");
    let mut muted = server.muted.clone();
    let muted = tokio::time::timeout(Duration::from_secs(10), muted.wait_for(|m| m.is_some()))
        .await
        .expect("the server read the client's frames after its answer")
        .unwrap()
        .unwrap();
    let after = returned.saturating_duration_since(muted);
    assert!(
        after < Duration::from_millis(900),
        "the registration ended {after:?} after the answer"
    );
}

/// The client reads the answer while its request's outcome (the server's disposition) is still to
/// come, as the C SDK does: a server that settles the request only once its answer is settled is
/// answered at once. Before, the client awaited the outcome first, and the two waited on each other
/// until the registration's timeout.
#[tokio::test]
async fn the_answer_is_read_before_the_request_is_settled() {
    let server = amqp_server::start(amqp_server::Script::OutcomeAfterAnswer).await;
    let started = Instant::now();
    let assignment = client_to(
        &server.endpoint,
        &server.ca_pem,
        Transport::Amqp,
        timeout_after(Duration::from_secs(10)),
    )
    .register(&symmetric("d", DEVICE_KEY), None)
    .await
    .unwrap();
    assert_eq!(assignment.device_id, "d");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
