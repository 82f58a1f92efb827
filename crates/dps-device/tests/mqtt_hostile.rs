//! A scripted MQTT "DPS" (a real TLS server speaking MQTT through rumqttc's codec): a server that
//! closes mid-operation and one that answers `assigning` forever each end in a clear error within the
//! overall timeout; an answer that comes together with the end of the connection counts; a client that
//! got its answer leaves with DISCONNECT. (Garbage and silence, for every transport: `hostile.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mqtt_server::{Answer, MqttServer, rid};
use common::*;
use dps_device::{Error, ProvisioningClient, Transport};

#[derive(Clone, Copy)]
enum Mode {
    /// Accept the connection and the subscription, read the register request, then close.
    CloseAfterRegister,
    /// Answer every request with 202 assigning (retry-after 1).
    EndlessAssigning,
}

/// Starts the server; returns its endpoint and the PEM of its (self-signed) certificate.
fn serve(mode: Mode) -> (String, String) {
    let server = MqttServer::start(
        false,
        Arc::new(move |p, _| match mode {
            Mode::CloseAfterRegister => Answer::Close,
            _ => Answer::Send(vec![(
                format!("$dps/registrations/res/202/?$rid={}&retry-after=1", rid(&p.topic)),
                br#"{"operationId":"4.op","status":"assigning"}"#.to_vec(),
            )]),
        }),
    );
    (server.endpoint, server.ca_pem)
}

/// A client of the scripted server at `endpoint` with an overall `timeout`.
fn client(endpoint: &str, ca_pem: &str, timeout: Duration) -> ProvisioningClient {
    client_to(endpoint, ca_pem, Transport::Mqtt, timeout_after(timeout))
}

#[tokio::test]
async fn a_server_closing_mid_operation_is_a_transport_error() {
    let (endpoint, ca) = serve(Mode::CloseAfterRegister);
    let (e, took) = failed_registration(&client(&endpoint, &ca, Duration::from_secs(20))).await;
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_transport_error(&e, Transport::Mqtt);
}

#[tokio::test]
async fn endless_assigning_ends_in_the_timeout() {
    let (endpoint, ca) = serve(Mode::EndlessAssigning);
    let (e, took) = failed_registration(&client(&endpoint, &ca, Duration::from_secs(4))).await;
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("assigning"), "{e}");
}

const ASSIGNED: &[u8] = br#"{"operationId":"4.op","status":"assigned","registrationState":{"registrationId":"d","assignedHub":"h","deviceId":"d","status":"assigned"}}"#;

/// A server that answers the registration with its assignment, and at once closes the connection when
/// `then_close`; the device `d` registers with it, assigned to hub `h`.
async fn assigned_by(then_close: bool) -> MqttServer {
    let server = MqttServer::start(
        false,
        Arc::new(move |p, _| {
            let answer = vec![(
                format!("$dps/registrations/res/200/?$rid={}", rid(&p.topic)),
                ASSIGNED.to_vec(),
            )];
            if then_close {
                Answer::SendThenClose(answer)
            } else {
                Answer::Send(answer)
            }
        }),
    );
    let a = client(&server.endpoint, &server.ca_pem, Duration::from_secs(20))
        .register(&symmetric("d", DEVICE_KEY), None)
        .await
        .unwrap();
    assert_eq!(a.assigned_hub, "h");
    server
}

/// The assignment and the end of the connection come together (read in one go): the assignment counts.
/// (rumqttc keeps the packets it read before the connection ended in its event queue; they were lost.)
#[tokio::test]
async fn an_answer_read_together_with_the_end_of_the_connection_counts() {
    assigned_by(true).await;
}

#[tokio::test]
async fn the_client_sends_disconnect_after_the_assignment() {
    let server = assigned_by(false).await;
    assert!(
        server.wait_for_disconnect(Duration::from_secs(10)),
        "the server saw no DISCONNECT"
    );
}
