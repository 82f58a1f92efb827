//! `hsmctl provision` against a hostile DPS: a real HTTPS server on 127.0.0.1 that redirects to plain HTTP,
//! sends huge, endless, slow or garbage answers, keeps a registration `assigning` and asks for `Retry-After: 0`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Ca, ca, provision_command};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";
const ASSIGNING: &str = r#"{"operationId":"4.op","status":"assigning"}"#;

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// What the server does with the `n`th request (0: the registration PUT) on its TLS stream.
type Behaviour = dyn Fn(usize, &mut Tls) + Send + Sync;

/// A TLS server on 127.0.0.1 answering every request with `behaviour`; counts the requests it reads.
struct Hostile {
    port: u16,
    requests: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
    server_ca: PathBuf,
    device: PathBuf,
}

fn server_identity(ca: &Ca) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let id = ca.server(&["127.0.0.1"]);
    (id.chain.clone(), id.key.clone_key())
}

/// Read one request (head and Content-Length body); false when the peer is gone.
fn read_request(tls: &mut Tls) -> bool {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&data).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).is_ok()
}

fn hostile(behaviour: impl Fn(usize, &mut Tls) + Send + Sync + 'static) -> Hostile {
    let _ = rustls::crypto::CryptoProvider::clone(&tlsio_bridge::provider()).install_default();
    let dir = tempfile::tempdir().unwrap();
    let root = ca("hostile root");
    let (chain, key) = server_identity(&root);
    let config = Arc::new(
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let behaviour: Arc<Behaviour> = Arc::new(behaviour);
    let counter = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (config, behaviour, counter) = (config.clone(), behaviour.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), stream);
                while read_request(&mut tls) {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    behaviour(n, &mut tls);
                }
            });
        }
    });
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, root.pem()).unwrap();
    let device = dir.path().join("device.toml");
    std::fs::write(
        &device,
        format!(
            "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"device-sym\"\nsymmetric_key = \"{DEVICE_KEY}\"\n"
        ),
    )
    .unwrap();
    Hostile {
        port,
        requests,
        _dir: dir,
        server_ca,
        device,
    }
}

impl Hostile {
    fn provision(&self, timeout_s: u64) -> (Output, Duration) {
        let started = Instant::now();
        let endpoint = format!("127.0.0.1:{}", self.port);
        let out = provision_command(None, &endpoint, &self.server_ca, &self.device)
            .args(["--timeout", &timeout_s.to_string()])
            .output()
            .unwrap();
        (out, started.elapsed())
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Write a whole answer; the client may have gone, which is fine.
fn answer(tls: &mut Tls, status: &str, headers: &str, body: &[u8]) {
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n{headers}\r\n", body.len());
    let _ = tls.write_all(head.as_bytes());
    let _ = tls.write_all(body);
    let _ = tls.flush();
}

/// The command failed with a message containing every needle, short and free of terminal controls.
fn failed(out: &Output, needles: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "should have failed; stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stdout.contains("assigned hub"), "printed an assignment: {stdout}");
    for needle in needles {
        assert!(stderr.contains(needle), "no {needle:?} in: {stderr}");
    }
    assert!(stderr.len() < 2048, "{} bytes of stderr: {stderr}", stderr.len());
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal: {stderr:?}"
    );
    stderr
}

#[test]
fn a_redirect_to_plain_http_is_not_followed() {
    // What a forged answer would come from: a plain HTTP server that counts its visitors.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    let visits = Arc::new(AtomicUsize::new(0));
    let v = visits.clone();
    std::thread::spawn(move || {
        for mut s in plain.incoming().flatten() {
            v.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"operationId":"4.op","status":"assigned","registrationState":{"assignedHub":"forged.example","deviceId":"d","status":"assigned"}}"#;
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        }
    });
    let server = hostile(move |n, tls| {
        if n == 0 {
            answer(tls, "202 Accepted", "Retry-After: 1\r\n", ASSIGNING.as_bytes());
        } else {
            let location = format!("Location: http://127.0.0.1:{plain_port}/forged\r\n");
            answer(tls, "302 Found", &location, b"");
        }
    });
    let (out, _) = server.provision(20);
    failed(
        &out,
        &["302", &format!("http://127.0.0.1:{plain_port}/forged"), "not followed"],
    );
    assert_eq!(visits.load(Ordering::SeqCst), 0, "the plain HTTP server was visited");
}

#[test]
fn a_huge_body_is_refused_after_128_kib() {
    // No Content-Length: the body ends when the connection closes, after 10 MB.
    let server = hostile(|_, tls| {
        let _ = tls.write_all(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\n");
        let chunk = vec![b'\x1b'; 64 * 1024];
        for _ in 0..160 {
            if tls.write_all(&chunk).is_err() {
                return;
            }
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let (out, _) = server.provision(20);
    failed(&out, &["exceeds 131072 bytes"]);

    // With a Content-Length: refused before reading.
    let server = hostile(|_, tls| {
        let _ = tls.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 10485760\r\n\r\n");
        let _ = tls.write_all(&vec![b'a'; 1024 * 1024]);
    });
    let (out, _) = server.provision(20);
    failed(&out, &["exceeds 131072 bytes"]);
}

#[test]
fn a_slow_loris_server_is_cut_off_by_the_overall_timeout() {
    let server = hostile(|_, tls| {
        let _ = tls.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 1000\r\n\r\n");
        let _ = tls.flush();
        for _ in 0..60 {
            if tls.write_all(b" ").and_then(|()| tls.flush()).is_err() {
                return;
            }
            // Pacing: the slow server under test.
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let (out, elapsed) = server.provision(3);
    failed(&out, &[]);
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");

    // Headers dribbled a byte at a time.
    let server = hostile(|_, tls| {
        for b in b"HTTP/1.1 202 Accepted\r\nX-Slow: ".iter().chain(&[b'x'; 60]) {
            if tls.write_all(&[*b]).and_then(|()| tls.flush()).is_err() {
                return;
            }
            // Pacing: the slow server under test.
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let (out, elapsed) = server.provision(3);
    failed(&out, &[]);
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
}

#[test]
fn garbage_and_escape_sequences_are_shown_sanitized_and_truncated() {
    // Not JSON, with escape sequences (clear screen, set title, 8-bit CSI) and 4 KiB long.
    let body = format!("\x1b[2J\x1b]0;pwned\x07\u{9b}31m{}", "x".repeat(4096));
    let server = hostile(move |_, tls| answer(tls, "202 Accepted", "", body.as_bytes()));
    let (out, _) = server.provision(20);
    let stderr = failed(&out, &["202", "not a JSON object", "[2J", "more characters"]);
    assert!(!stderr.contains("pwned\u{7}"));

    // A service message in JSON, with escapes.
    let message = serde_json::json!({"errorCode": 401002, "message": format!("\x1b[31mdenied{}", "y".repeat(4096))});
    let server = hostile(move |_, tls| answer(tls, "401 Unauthorized", "", message.to_string().as_bytes()));
    let (out, _) = server.provision(20);
    failed(&out, &["401", "[31mdenied", "more characters"]);

    // Not HTTP at all.
    let server = hostile(|_, tls| {
        let _ = tls.write_all(b"\x1b[2J\x1b]0;pwned\x07 garbage\r\n\r\n");
        let _ = tls.flush();
    });
    let (out, _) = server.provision(20);
    failed(&out, &["connection failed"]);

    // An assignment whose fields carry escape sequences: printed escaped.
    let state = serde_json::json!({"operationId": "4.op", "status": "assigned", "registrationState": {
        "registrationId": "device-sym", "status": "assigned", "assignedHub": "hub\u{1b}]0;pwned\u{7}", "deviceId": "d\u{9b}2J"}});
    let server = hostile(move |_, tls| answer(tls, "200 OK", "", state.to_string().as_bytes()));
    let (out, _) = server.provision(20);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("assigned hub: hub\\u{1b}]0;pwned\\u{7}"), "{stdout}");
    assert!(stdout.contains("device id: d\\u{9b}2J"), "{stdout}");
    assert!(!stdout.chars().any(|c| c.is_control() && c != '\n'), "{stdout:?}");
}

#[test]
fn an_endless_assigning_ends_at_the_overall_timeout() {
    let server = hostile(|_, tls| answer(tls, "202 Accepted", "Retry-After: 1\r\n", ASSIGNING.as_bytes()));
    let (out, elapsed) = server.provision(4);
    failed(&out, &["within 4s", "assigning"]);
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    assert!(server.requests() >= 3, "{} requests", server.requests());
}

#[test]
fn retry_after_zero_polls_no_faster_than_once_a_second() {
    let server = hostile(|_, tls| answer(tls, "202 Accepted", "Retry-After: 0\r\n", ASSIGNING.as_bytes()));
    let (out, _) = server.provision(4);
    failed(&out, &["within 4s"]);
    // The PUT and at most one poll a second.
    let n = server.requests();
    assert!((2..=5).contains(&n), "{n} requests in 4 s");
}
