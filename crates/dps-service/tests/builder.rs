//! `ServiceClient::builder`: a client from a connection string with a PEM trust file against the
//! emulator, and the errors a program branches on (`is_connect`, `is_timeout`, `is_retryable`,
//! `is_not_found`, `is_conflict`) with their causes as `source()` chains, each from a real peer: the
//! emulator, a closed port, a listener that never answers, a server that never answers HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::error::Error as _;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use dps_service::models::SymmetricKeyAttestation;
use dps_service::{Attestation, Error, IndividualEnrollment, ServiceClient, TransportKind};

fn connection_string(host: &str) -> String {
    format!("HostName={host};SharedAccessKeyName={OWNER};SharedAccessKey={OWNER_KEY}")
}

/// The error's causes, each as text, and whether one of them is a `T`.
fn causes(e: &Error) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = e.source();
    while let Some(c) = next {
        out.push(c.to_string());
        next = c.source();
    }
    out
}

fn has_cause<T: std::error::Error + 'static>(e: &Error) -> bool {
    let mut next = e.source();
    while let Some(c) = next {
        if c.is::<T>() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<T>())
        {
            return true;
        }
        next = c.source();
    }
    false
}

/// `get_enrollment` of a client of `host` with the `timeout` (the default trust roots): its error.
fn failure_at(host: &str, timeout: Duration) -> Error {
    let client = ServiceClient::builder(&connection_string(host))
        .timeout(timeout)
        .build()
        .unwrap();
    client.get_enrollment("any").unwrap_err()
}

/// `e` is a transport error of `kind` (its causes shown when not).
fn assert_transport(e: &Error, kind: TransportKind) {
    assert!(
        matches!(e, Error::Transport { kind: k, .. } if *k == kind),
        "expected {kind:?}: {e} / {:?}",
        causes(e)
    );
}

fn symmetric(id: &str) -> IndividualEnrollment {
    IndividualEnrollment::new(id, Attestation::symmetric_key(SymmetricKeyAttestation::new(None, None)))
}

#[test]
fn a_builder_with_a_pem_trust_file_does_crud_and_says_not_found_and_conflict() {
    let emu = start();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("emulator-ca.pem");
    std::fs::write(&ca, emu.server_ca_pem()).unwrap();
    let client = ServiceClient::builder(&connection_string(&emu.global_endpoint()))
        .trust_pem_file(&ca)
        .timeout(Duration::from_secs(10))
        .retries(1)
        .build()
        .unwrap();
    let shown = format!("{client:?}");
    assert!(shown.contains("ServiceClient") && !shown.contains(OWNER_KEY), "{shown}");

    let created = client.put_enrollment(&symmetric("built-1")).unwrap();
    assert!(created.common.etag.is_some());
    let e = client.get_enrollment("missing-1").unwrap_err();
    assert!(
        e.is_not_found() && !e.is_conflict() && !e.is_retryable() && !e.is_connect(),
        "{e}"
    );

    // Someone else updates it: the first copy's etag is stale.
    let mut fresh = client.get_enrollment("built-1").unwrap();
    fresh.device_id = Some("other".into());
    client.put_enrollment(&fresh).unwrap();
    let e = client.put_enrollment(&created).unwrap_err();
    assert!(e.is_conflict() && !e.is_not_found() && !e.is_retryable(), "{e}");
    assert_eq!(e.status(), Some(412));

    client.delete_enrollment("built-1", None).unwrap();
    assert!(client.get_enrollment("built-1").unwrap_err().is_not_found());
}

#[test]
fn the_default_mozilla_roots_refuse_the_emulator_as_a_tls_connect_error() {
    let emu = start();
    let client = ServiceClient::from_connection_string(&connection_string(&emu.global_endpoint())).unwrap();
    let e = client.get_enrollment("any").unwrap_err();
    assert_transport(&e, TransportKind::Tls);
    assert!(e.is_connect() && !e.is_timeout() && !e.is_retryable(), "{e}");
    assert!(
        has_cause::<rustls::Error>(&e),
        "the rustls error is in the chain: {:?}",
        causes(&e)
    );
}

#[test]
fn a_closed_port_is_a_retryable_connect_error_with_the_os_error_as_cause() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = failure_at(&format!("127.0.0.1:{port}"), Duration::from_secs(5));
    assert_transport(&e, TransportKind::Connect);
    assert!(e.is_connect() && e.is_retryable() && !e.is_timeout(), "{e}");
    assert!(has_cause::<std::io::Error>(&e), "{:?}", causes(&e));
    assert!(
        causes(&e).iter().any(|c| c.to_lowercase().contains("refused")),
        "{:?}",
        causes(&e)
    );
}

#[test]
fn a_listener_that_never_answers_the_handshake_is_a_connect_timeout() {
    // The kernel accepts the connection into the backlog; nobody ever reads the ClientHello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let e = failure_at(&format!("127.0.0.1:{port}"), Duration::from_millis(300));
    assert_transport(&e, TransportKind::ConnectTimeout);
    assert!(e.is_timeout() && e.is_connect() && e.is_retryable(), "{e}");
    drop(silent);
}

#[test]
fn a_server_that_never_answers_the_request_is_a_timeout_not_a_connect_error() {
    let (release, held) = mpsc::channel::<()>();
    let held = Mutex::new(held);
    // The handler holds the request until the test has its error (or 10 s pass).
    let srv = test_support::https_server::Server::start(move |_, _| {
        let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(10));
        test_support::https_server::answer(200, &[], "{}")
    });
    let client = ServiceClient::builder(&connection_string(&srv.endpoint))
        .trust_pem(srv.ca_pem.as_bytes())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let e = client.get_enrollment("any").unwrap_err();
    release.send(()).unwrap();
    assert_transport(&e, TransportKind::Timeout);
    assert!(e.is_timeout() && !e.is_connect() && e.is_retryable(), "{e}");
}

#[test]
fn a_host_that_does_not_resolve_is_a_dns_connect_error() {
    let e = failure_at("no-such-host.invalid", Duration::from_secs(5));
    assert_transport(&e, TransportKind::Dns);
    assert!(e.is_connect() && !e.is_timeout(), "{e}");
}

#[test]
fn build_reports_a_bad_connection_string_and_unreadable_trust_roots_with_their_cause() {
    let e = ServiceClient::builder("HostName=h;SharedAccessKeyName=p")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::ConnectionString(_)), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = ServiceClient::builder(&connection_string("h.example"))
        .trust_pem_file(&missing)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Trust { .. }), "{e}");
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    let e = ServiceClient::builder(&connection_string("h.example"))
        .trust_pem("no certificate here")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Trust { .. }) && e.source().is_some(), "{e}");
}

#[test]
fn system_roots_load_from_the_operating_system_store() {
    // The machine's store (ca-certificates): the builder reads it without error and the client
    // then refuses the emulator's private CA, which no system store holds.
    let emu = start();
    let client = ServiceClient::builder(&connection_string(&emu.global_endpoint()))
        .system_roots()
        .build()
        .unwrap();
    let e = client.get_enrollment("any").unwrap_err();
    assert_transport(&e, TransportKind::Tls);
}
