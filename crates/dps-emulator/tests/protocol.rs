//! The REST surface: routing, bad requests, TPM seam, robustness and concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dps_emulator::{Emulator, Enrollment};
use serde_json::json;

const KEY: &str = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLTAxMjM0NTY3ODk=";

fn emulator() -> Emulator {
    Emulator::start(config(vec![Enrollment::SymmetricIndividual {
        registration_id: "sym-device".into(),
        primary_key: KEY.into(),
        secondary_key: None,
    }]))
    .unwrap()
}

fn token() -> String {
    sas("sym-device", KEY, now() + 3600)
}

fn assert_error((status, body): (u16, serde_json::Value), expected: u16, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert!(body["errorCode"].is_u64(), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}

#[test]
fn unknown_id_scope_is_404() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let r = agent
        .put(&register_url(&emu, "0ne99999999", "sym-device"))
        .set("Authorization", &token())
        .send_json(json!({"registrationId": "sym-device"}));
    assert_error(outcome(r), 404, "unknown id scope '0ne99999999'");
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let url = format!("https://{}/{SCOPE}/devices/x", emu.global_endpoint());
    assert_error(
        outcome(agent.get(&url).call()),
        404,
        "no such resource: /0ne00000A0A/devices/x",
    );
    let r = agent.get(&register_url(&emu, SCOPE, "sym-device")).call();
    match r {
        Err(ureq::Error::Status(405, resp)) => {
            assert_eq!(resp.header("Allow"), Some("PUT"));
            let body: serde_json::Value = resp.into_json().unwrap();
            assert!(
                body["message"].as_str().unwrap().contains("method GET is not allowed"),
                "{body}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_bodies_are_400() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let url = register_url(&emu, SCOPE, "sym-device");
    let put = || agent.put(&url).set("Authorization", &token());
    assert_error(
        outcome(put().send_string("{not json")),
        400,
        "request body is not valid JSON",
    );
    assert_error(outcome(put().call()), 400, "missing request body");
    assert_error(
        outcome(put().send_json(json!(["sym-device"]))),
        400,
        "request body must be a JSON object",
    );
    assert_error(
        outcome(put().send_json(json!({"payload": {}}))),
        400,
        "request body has no string field registrationId",
    );
    assert_error(
        outcome(put().send_json(json!({"registrationId": "other"}))),
        400,
        "registrationId 'other' in the body does not match 'sym-device' in the path",
    );
}

#[test]
fn missing_api_version_is_400() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let url = format!(
        "https://{}/{SCOPE}/registrations/sym-device/register",
        emu.global_endpoint()
    );
    let r = agent
        .put(&url)
        .set("Authorization", &token())
        .send_json(json!({"registrationId": "sym-device"}));
    assert_error(outcome(r), 400, "missing query parameter api-version");
}

#[test]
fn payload_is_accepted() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let r = agent
        .put(&register_url(&emu, SCOPE, "sym-device"))
        .set("Authorization", &token())
        .send_json(json!({"registrationId": "sym-device", "payload": {"model": "x"}}));
    let (status, body) = outcome(r);
    assert_eq!(status, 202, "{body}");
}

#[test]
fn tpm_registration_without_enrollment_is_refused() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let r = agent.put(&register_url(&emu, SCOPE, "tpm-device")).send_json(json!({
        "registrationId": "tpm-device",
        "tpm": {"endorsementKey": "AAAA", "storageRootKey": "AAAA"}
    }));
    assert_denied(outcome(r), "no TPM enrollment for registration id 'tpm-device'");
}

#[test]
fn unknown_operation_is_404() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let r = agent
        .get(&operation_url(&emu, "sym-device", "4.nope"))
        .set("Authorization", &token())
        .call();
    assert_error(
        outcome(r),
        404,
        "unknown operation id '4.nope' for registration id 'sym-device'",
    );
}

#[test]
fn responses_carry_json_content_type() {
    let emu = emulator();
    let agent = agent(&emu, None, Tls::Any);
    let r = agent
        .put(&register_url(&emu, SCOPE, "sym-device"))
        .set("Authorization", &token())
        .send_json(json!({"registrationId": "sym-device"}))
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.header("Content-Type"), Some("application/json; charset=utf-8"));
    assert!(r.header("Content-Length").is_some());
}

#[test]
fn silent_and_broken_clients_do_not_hurt_the_server() {
    let emu = emulator();
    let addr = emu.global_endpoint();
    // Connects and closes at once.
    drop(TcpStream::connect(&addr).unwrap());
    // Sends garbage instead of a ClientHello.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    // Sends half a ClientHello and leaves.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    drop(s);
    // Connects and says nothing (stays open while others are served).
    let idle = TcpStream::connect(&addr).unwrap();
    let agent = agent(&emu, None, Tls::Any);
    assert_assigned(&provision(&agent, &emu, "sym-device", Some(&token())), "sym-device");
    drop(idle);
    // Shutdown with an idle connection still open must not hang.
    let idle = TcpStream::connect(&addr).unwrap();
    test_support::wait::accepted(addr.as_str());
    emu.shutdown();
    drop(idle);
    assert!(TcpStream::connect(&addr).is_err(), "listener still open after shutdown");
}

#[test]
fn eight_concurrent_registrations() {
    let ca = Ca::root("fleet root");
    let emu = Emulator::start(config(vec![
        Enrollment::SymmetricGroup {
            name: "group".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
        Enrollment::X509Group {
            name: "fleet".into(),
            ca: vec![ca.der()],
        },
    ]))
    .unwrap();
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (emu, ca, barrier) = (&emu, &ca, &barrier);
                s.spawn(move || {
                    let id = format!("concurrent-{i}");
                    barrier.wait();
                    if i % 2 == 0 {
                        let device_key = hsm_core::sas::derive_device_key(GROUP_KEY, &id).unwrap();
                        let key_b64 = hsm_core::sas::encode_key(&device_key);
                        let token = sas(&id, &key_b64, now() + 3600);
                        let agent = agent(emu, None, Tls::Any);
                        provision(&agent, emu, &id, Some(&token))
                    } else {
                        let agent = agent(emu, Some(&ca.leaf(&id)), Tls::Any);
                        provision(&agent, emu, &id, None)
                    }
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_assigned(&h.join().unwrap(), &format!("concurrent-{i}"));
        }
    });
}

/// Reads one HTTP response (head and Content-Length body) from a stream.
fn read_response(stream: &mut impl Read) -> (String, serde_json::Value) {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed in the head");
        data.push(byte[0]);
    }
    let head = String::from_utf8(data).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (head, serde_json::from_slice(&body).unwrap())
}

#[test]
fn keep_alive_serves_register_and_poll_on_one_connection_like_the_c_sdk() {
    let emu = emulator();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut emu.server_ca_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(emu.global_endpoint()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let token = token();
    let body = r#"{"registrationId":"sym-device"}"#;
    // Headers as the C SDK's HTTP transport sends them.
    let put = format!(
        "PUT /{SCOPE}/registrations/sym-device/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\n\
         UserAgent: prov_device_client/1.0\r\nAccept: application/json\r\nConnection: keep-alive\r\n\
         Content-Type: application/json; charset=utf-8\r\nAuthorization: {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(put.as_bytes()).unwrap();
    let (head, json) = read_response(&mut tls);
    assert!(head.starts_with("HTTP/1.1 202 Accepted\r\n"), "{head}");
    assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
    assert!(head.contains("Retry-After: 2\r\n"), "{head}");
    let op = json["operationId"].as_str().unwrap();
    // The C SDK URL-encodes the operation id: '.' may arrive as %2e.
    let encoded = op.replace('.', "%2e");
    assert_ne!(encoded, op);
    let get = format!(
        "GET /{SCOPE}/registrations/sym-device/operations/{encoded}?api-version=2021-06-01 HTTP/1.1\r\n\
         Host: localhost\r\nConnection: keep-alive\r\nAuthorization: {token}\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(get.as_bytes()).unwrap();
    let (head, json) = read_response(&mut tls);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(json["operationId"], op);
    assert_eq!(json["registrationState"]["assignedHub"], HUB);
    // A last request asking to close: answered with Connection: close, then close_notify.
    let close = get.replace("Connection: keep-alive", "Connection: close");
    tls.write_all(close.as_bytes()).unwrap();
    let (head, _) = read_response(&mut tls);
    assert!(head.contains("Connection: close\r\n"), "{head}");
    let mut rest = Vec::new();
    assert_eq!(tls.read_to_end(&mut rest).unwrap(), 0);
}
