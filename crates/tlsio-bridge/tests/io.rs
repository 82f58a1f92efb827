//! The non-blocking TLS IO against real rustls servers on 127.0.0.1: event order, mutual TLS
//! with the key behind `hsm_core::SigningKey`, and the failures the SDK must see as callbacks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_core::file::FileKey;
use rcgen::KeyPair;
use rustls::server::WebPkiClientVerifier;
use test_support::pki::{Ca, KeyType, named_params};
use tlsio_bridge::io::TcpTransport;
use tlsio_bridge::io::options::{self, KeyResolver};
use tlsio_bridge::io::{Event, OpenResult, Phase, SendResult, TlsIo};

fn ca(name: &str) -> Ca {
    Ca::root(name)
}

fn leaf(ca: &Ca, cn: &str, sans: &[&str]) -> (String, KeyPair) {
    let id = ca.issue(named_params(cn, sans), KeyType::P256.generate());
    (id.cert_pem(), id.into_key_pair())
}

fn resolver() -> KeyResolver {
    Arc::new(|s: &str| {
        let key: Arc<dyn hsm_core::SigningKey> = Arc::new(FileKey::from_pem("test key", s.as_bytes())?);
        Ok(key)
    })
}

/// What the test server does with one connection.
#[derive(Clone, Copy)]
enum Server {
    /// Require a client certificate from `client_ca`, echo one message back in upper case.
    Echo,
    /// Accept the TCP connection, read the ClientHello, close.
    CloseMidHandshake,
}

struct Pki {
    server_ca: Ca,
    client_ca: Ca,
    server_chain: String,
    server_key: KeyPair,
    client_chain: String,
    client_key: KeyPair,
}

fn pki(server_sans: &[&str]) -> Pki {
    let server_ca = ca("server root");
    let client_ca = ca("device root");
    let (server_chain, server_key) = leaf(&server_ca, "server", server_sans);
    let (client_chain, client_key) = leaf(&client_ca, "device-1", &[]);
    Pki {
        server_ca,
        client_ca,
        server_chain,
        server_key,
        client_chain,
        client_key,
    }
}

/// Serve one connection on a free port; the thread's result says what the server saw.
fn serve(
    p: &Pki,
    mode: Server,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
) -> (u16, std::thread::JoinHandle<Result<String, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let provider = tlsio_bridge::provider();
    let client_roots = tlsio_bridge::roots_from_pem("client CA", p.client_ca.pem().as_bytes()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
        .build()
        .unwrap();
    let chain = hsm_core::pem::parse_certificates("server", p.server_chain.as_bytes()).unwrap();
    let key = hsm_core::pem::parse_private_key("server key", p.server_key.serialize_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let handle = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        match mode {
            Server::CloseMidHandshake => {
                let mut buf = [0u8; 5];
                tcp.read_exact(&mut buf).map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            Server::Echo => {
                let conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 64];
                let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
                let cn = tls
                    .conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| hsm_core::pem::common_name(c).unwrap())
                    .unwrap_or_default();
                tls.write_all(&buf[..n].to_ascii_uppercase())
                    .map_err(|e| e.to_string())?;
                tls.flush().map_err(|e| e.to_string())?;
                tls.conn.send_close_notify();
                let _ = tls.flush();
                Ok(cn)
            }
        }
    });
    (port, handle)
}

type Io = TlsIo<TcpTransport, u32>;

static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn new_io(host: &str, port: u16, p: &Pki, with_client_cert: bool) -> Io {
    let mut io = Io::new(host, port, TcpTransport::new(), resolver()).unwrap();
    io.set_option_str(options::OPTION_TRUSTED_CERTS, &p.server_ca.pem())
        .unwrap();
    if with_client_cert {
        io.set_option_str(options::OPTION_X509_ECC_CERT, &p.client_chain)
            .unwrap();
        io.set_option_str(options::OPTION_X509_ECC_KEY, &p.client_key.serialize_pem())
            .unwrap();
    }
    io
}

/// Run dowork until `until` holds for the events seen so far (10 s at most).
fn pump(io: &mut Io, events: &mut Vec<Event<u32>>, until: impl Fn(&[Event<u32>]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(e) = io.next_event() {
            events.push(e);
        }
        if until(events) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out; events so far: {events:?}");
        io.dowork();
        // The pace of the SDK's dowork loop (it polls the IO, as the C SDK does).
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn has_open(events: &[Event<u32>]) -> bool {
    events.iter().any(|e| matches!(e, Event::OpenComplete(_)))
}

#[test]
fn mutual_tls_echo_in_sdk_order_on_both_versions() {
    static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    for (versions, expect) in [
        (TLS13, rustls::ProtocolVersion::TLSv1_3),
        (TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let p = pki(&["localhost"]);
        let (port, server) = serve(&p, Server::Echo, versions);
        let mut io = new_io("localhost", port, &p, true);
        io.open().unwrap();
        assert!(
            matches!(io.phase(), Phase::Connecting | Phase::Handshaking),
            "{:?}",
            io.phase()
        );
        assert_eq!(io.next_event(), None, "the open completes in dowork, never inside open");
        assert!(io.open().is_err(), "a second open while opening is refused");
        let mut ev = Vec::new();
        pump(&mut io, &mut ev, has_open);
        assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Ok)], "{:?}", io.last_error());
        assert_eq!(io.connection().unwrap().protocol_version(), Some(expect));
        io.send(b"hello", 7).unwrap();
        pump(&mut io, &mut ev, |e| e.iter().any(|e| matches!(e, Event::Error)));
        let received: Vec<u8> = ev
            .iter()
            .filter_map(|e| match e {
                Event::BytesReceived(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(received, b"HELLO");
        assert_eq!(ev[1], Event::SendComplete(7, SendResult::Ok));
        // The server closed after answering: reported as an error, as the SDK's socket layer does.
        assert_eq!(ev.last(), Some(&Event::Error));
        io.close();
        assert_eq!(io.next_event(), Some(Event::CloseComplete));
        assert_eq!(io.phase(), Phase::NotOpen);
        assert_eq!(server.join().unwrap().unwrap(), "device-1");
    }
}

#[test]
fn untrusted_server_fails_the_open() {
    let p = pki(&["localhost"]);
    let (port, server) = serve(&p, Server::Echo, TLS13);
    let mut io = Io::new("localhost", port, TcpTransport::new(), resolver()).unwrap();
    io.set_option_str(options::OPTION_TRUSTED_CERTS, &ca("other root").pem())
        .unwrap();
    io.open().unwrap();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, has_open);
    assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Error)]);
    assert!(
        io.last_error().unwrap().contains("UnknownIssuer"),
        "{:?}",
        io.last_error()
    );
    assert_eq!(io.phase(), Phase::NotOpen);
    assert!(server.join().unwrap().is_err());
}

#[test]
fn wrong_hostname_fails_the_open() {
    let p = pki(&["device.example"]);
    let (port, server) = serve(&p, Server::Echo, TLS13);
    let mut io = new_io("127.0.0.1", port, &p, true);
    io.open().unwrap();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, has_open);
    assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Error)]);
    assert!(
        io.last_error().unwrap().contains("not valid for name"),
        "{:?}",
        io.last_error()
    );
    assert!(server.join().unwrap().is_err());
}

#[test]
fn server_closing_mid_handshake_fails_the_open() {
    let p = pki(&["localhost"]);
    let (port, server) = serve(&p, Server::CloseMidHandshake, TLS13);
    let mut io = new_io("127.0.0.1", port, &p, true);
    io.open().unwrap();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, has_open);
    assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Error)]);
    let e = io.last_error().unwrap();
    assert!(e.contains("closed") || e.contains("reset"), "{e}");
    server.join().unwrap().unwrap();
}

#[test]
fn tls13_client_certificate_rejection_arrives_after_open_as_an_error() {
    let p = pki(&["localhost"]);
    let (port, server) = serve(&p, Server::Echo, TLS13);
    let mut io = Io::new("localhost", port, TcpTransport::new(), resolver()).unwrap();
    io.set_option_str(options::OPTION_TRUSTED_CERTS, &p.server_ca.pem())
        .unwrap();
    // A certificate from a CA the server does not trust.
    let (chain, key) = leaf(&ca("rogue root"), "device-1", &[]);
    io.set_option_str(options::OPTION_X509_CERT, &chain).unwrap();
    io.set_option_str(options::OPTION_X509_KEY, &key.serialize_pem())
        .unwrap();
    io.open().unwrap();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, |e| e.len() >= 2);
    assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Ok), Event::Error]);
    assert!(io.last_error().unwrap().contains("alert"), "{:?}", io.last_error());
    assert_eq!(io.phase(), Phase::Error);
    assert!(io.send(b"x", 1).is_err());
    io.close();
    assert_eq!(io.next_event(), Some(Event::CloseComplete));
    assert!(server.join().unwrap().is_err());
}

#[test]
fn close_while_opening_cancels_then_completes() {
    let p = pki(&["localhost"]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut io = new_io("127.0.0.1", port, &p, false);
    io.open().unwrap();
    io.dowork();
    io.close();
    assert_eq!(io.next_event(), Some(Event::OpenComplete(OpenResult::Cancelled)));
    assert_eq!(io.next_event(), Some(Event::CloseComplete));
    assert_eq!(io.next_event(), None);
    // Closed twice: nothing more.
    io.close();
    assert_eq!(io.next_event(), None);
}

#[test]
fn connection_refused_and_unresolvable_keys_fail_the_open() {
    let p = pki(&["localhost"]);
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut io = new_io("127.0.0.1", port, &p, true);
    // Refused at once (an error from open, the event queued too) or in a later dowork.
    let _ = io.open();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, has_open);
    assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Error)]);
    assert!(io.is_closed());

    let failing: KeyResolver = Arc::new(|_: &str| Err(hsm_core::Error::invalid("token", "no such key")));
    let mut io = Io::new("127.0.0.1", port, TcpTransport::new(), failing).unwrap();
    io.set_option_str(options::OPTION_TRUSTED_CERTS, &p.server_ca.pem())
        .unwrap();
    io.set_option_str(options::OPTION_X509_CERT, &p.client_chain).unwrap();
    io.set_option_str(options::OPTION_X509_KEY, "pkcs11:token=none;object=none")
        .unwrap();
    // A failure inside open: open says so AND the open callback's event is queued (the SDK's
    // convention; its MQTT transport waits forever when such an open returns success).
    let e = io.open().unwrap_err().to_string();
    assert!(e.contains("no such key"), "{e}");
    assert_eq!(io.next_event(), Some(Event::OpenComplete(OpenResult::Error)));
    assert_eq!(io.next_event(), None);
    let e = io.last_error().unwrap();
    assert!(
        e.contains("pkcs11:token=none;object=none") && e.contains("no such key"),
        "{e}"
    );
    assert_eq!(io.phase(), Phase::NotOpen);
}

#[test]
fn tls_version_13_against_a_tls12_server_fails_the_open() {
    static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let p = pki(&["localhost"]);
    let (port, server) = serve(&p, Server::Echo, TLS12);
    let mut io = new_io("localhost", port, &p, true);
    io.set_option_int(options::OPTION_TLS_VERSION, 13).unwrap();
    io.open().unwrap();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, has_open);
    assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Error)]);
    assert!(server.join().unwrap().is_err());
}

#[test]
fn without_trusted_certs_the_system_store_is_used() {
    // The system store does not hold this test's private CA: the server is not trusted.
    let p = pki(&["localhost"]);
    let (port, server) = serve(&p, Server::Echo, TLS13);
    let mut io = Io::new("localhost", port, TcpTransport::new(), resolver()).unwrap();
    io.open().unwrap();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, has_open);
    assert_eq!(ev, vec![Event::OpenComplete(OpenResult::Error)]);
    let e = io.last_error().unwrap();
    assert!(e.contains("UnknownIssuer"), "{e}");
    assert!(server.join().unwrap().is_err());
}

/// One mutual-TLS echo through a new IO with the trust anchor and client certificate of `p` and
/// `token` as its key, against a server of `server`'s PKI; the open's result.
fn echo_with_token(server: &Pki, p: &Pki, token: &str, resolver: &KeyResolver) -> OpenResult {
    let (port, server) = serve(server, Server::Echo, TLS13);
    let mut io = Io::new("localhost", port, TcpTransport::new(), resolver.clone()).unwrap();
    io.set_option_str(options::OPTION_TRUSTED_CERTS, &p.server_ca.pem())
        .unwrap();
    io.set_option_str(options::OPTION_X509_CERT, &p.client_chain).unwrap();
    io.set_option_str(options::OPTION_X509_KEY, token).unwrap();
    io.open().unwrap();
    let mut ev = Vec::new();
    pump(&mut io, &mut ev, has_open);
    let Event::OpenComplete(result) = ev[0] else {
        panic!("{ev:?}")
    };
    if result == OpenResult::Ok {
        io.send(b"hi", 1).unwrap();
        pump(&mut io, &mut ev, |e| e.iter().any(|e| matches!(e, Event::Error)));
        assert!(ev.contains(&Event::BytesReceived(b"HI".to_vec())), "{ev:?}");
        assert_eq!(server.join().unwrap().unwrap(), "device-1");
    }
    io.close();
    result
}

#[test]
fn a_device_key_token_is_resolved_once_across_ios_and_again_after_a_failed_open() {
    let p = pki(&["localhost"]);
    let resolved = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let key_pem = p.client_key.serialize_pem();
    let counting: KeyResolver = {
        let resolved = resolved.clone();
        Arc::new(move |_: &str| {
            resolved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let key: Arc<dyn hsm_core::SigningKey> = Arc::new(FileKey::from_pem("test key", key_pem.as_bytes())?);
            Ok(key)
        })
    };
    let count = || resolved.load(std::sync::atomic::Ordering::SeqCst);
    // A key in a device (`pkcs11:`): resolved by the first IO, kept for the next ones.
    let device = "pkcs11:token=cache-test;object=device-key";
    assert_eq!(echo_with_token(&p, &p, device, &counting), OpenResult::Ok);
    assert_eq!(count(), 1);
    assert_eq!(echo_with_token(&p, &p, device, &counting), OpenResult::Ok);
    assert_eq!(echo_with_token(&p, &p, device, &counting), OpenResult::Ok);
    assert_eq!(count(), 1, "the second and third IO reuse the first one's signer");
    // A key whose material would stay in this process (`file:`, inline PEM): never kept.
    let file = "file:/nonexistent/only-the-resolver-reads-this.pem";
    assert_eq!(echo_with_token(&p, &p, file, &counting), OpenResult::Ok);
    assert_eq!(echo_with_token(&p, &p, file, &counting), OpenResult::Ok);
    assert_eq!(count(), 3);
    assert_eq!(echo_with_token(&p, &p, &key_pem_of(&p), &counting), OpenResult::Ok);
    assert_eq!(count(), 4);
    // A failed handshake with the kept configuration (a server the device does not trust):
    // the entry is dropped and the next IO resolves the token again.
    let stranger = pki(&["localhost"]);
    assert_eq!(echo_with_token(&stranger, &p, device, &counting), OpenResult::Error);
    assert_eq!(count(), 4, "the failing open used the kept configuration");
    assert_eq!(echo_with_token(&p, &p, device, &counting), OpenResult::Ok);
    assert_eq!(count(), 5, "resolved again after the failed open");
    assert_eq!(echo_with_token(&p, &p, device, &counting), OpenResult::Ok);
    assert_eq!(count(), 5);
}

fn key_pem_of(p: &Pki) -> String {
    p.client_key.serialize_pem()
}
