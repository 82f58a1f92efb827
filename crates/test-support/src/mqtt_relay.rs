//! A loopback MQTT-over-TLS relay between a device under test and a real server (the emulator's
//! MQTT listener): it terminates the device's TLS, opens its own TLS connection upstream with the
//! device's identity, forwards the bytes both ways, and reads the topics of the PUBLISH packets
//! the server sends, so that a test can wait for an answer to reach the device (the event), not
//! for time to pass. When either side ends, it closes both.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, ServerConnection, StreamOwned};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

type Topics = Arc<(Mutex<Vec<String>>, Condvar)>;

pub struct Relay {
    /// `127.0.0.1:port` for the device.
    pub endpoint: String,
    /// The relay's self-signed certificate, for the device to trust.
    pub ca_pem: String,
    topics: Topics,
}

impl Relay {
    /// Relay the connections made to it to `upstream` (`host:port`, trusting `upstream_ca_pem`),
    /// presenting `chain` and `key` upstream.
    pub fn start(
        upstream: &str,
        upstream_ca_pem: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Relay {
        let (server_config, ca_pem) = crate::tls::loopback_server_config();
        let client_config = Arc::new(
            ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .expect("the provider supports the default versions")
                .with_root_certificates(crate::tls::roots(upstream_ca_pem))
                .with_client_auth_cert(chain, key)
                .expect("the device's chain and key match"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let endpoint = listener.local_addr().expect("the bound address").to_string();
        let topics: Topics = Arc::default();
        let (seen, upstream) = (topics.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for device in listener.incoming() {
                let Ok(device) = device else { return };
                let (server_config, client_config, seen) = (server_config.clone(), client_config.clone(), seen.clone());
                let upstream = upstream.clone();
                std::thread::spawn(move || relay(device, &upstream, server_config, client_config, &seen));
            }
        });
        Relay {
            endpoint,
            ca_pem,
            topics,
        }
    }

    /// Until the server has sent (and the relay passed on) a PUBLISH whose topic satisfies
    /// `wanted`; that topic.
    pub fn wait_for_publish(&self, what: &str, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let (topics, arrived) = &*self.topics;
        let deadline = Instant::now() + limit;
        let mut seen = topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(t) = seen.iter().find(|t| wanted(t)) {
                return t.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "waited {limit:?} for {what}; topics relayed: {seen:?}");
            seen = arrived
                .wait_timeout(seen, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

fn relay(
    device: TcpStream,
    upstream: &str,
    server_config: Arc<rustls::ServerConfig>,
    client_config: Arc<ClientConfig>,
    seen: &Topics,
) {
    let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h).to_string();
    let (Ok(up_tcp), Ok(name), Ok(down_conn)) = (
        TcpStream::connect(upstream),
        ServerName::try_from(host),
        ServerConnection::new(server_config),
    ) else {
        return;
    };
    let Ok(up_conn) = ClientConnection::new(client_config, name) else {
        return;
    };
    let mut down = StreamOwned::new(down_conn, device);
    let mut up = StreamOwned::new(up_conn, up_tcp);
    // Short read timeouts let one thread serve both directions.
    for s in [&down.sock, &up.sock] {
        if s.set_read_timeout(Some(Duration::from_millis(5))).is_err() {
            return;
        }
    }
    let mut from_server = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match pass(&mut down, &mut up, &mut buf) {
            Some(0) => break,
            Some(_) | None => {}
        }
        match up.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                from_server.extend_from_slice(&buf[..n]);
                record_publishes(&mut from_server, seen);
                if down.write_all(&buf[..n]).and_then(|()| down.flush()).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = down.sock.shutdown(Shutdown::Both);
    let _ = up.sock.shutdown(Shutdown::Both);
}

/// Device to server: Some(0) when the device is gone, None when it said nothing yet.
fn pass(
    down: &mut StreamOwned<ServerConnection, TcpStream>,
    up: &mut StreamOwned<ClientConnection, TcpStream>,
    buf: &mut [u8],
) -> Option<usize> {
    match down.read(buf) {
        Ok(0) => Some(0),
        Ok(n) => match up.write_all(&buf[..n]).and_then(|()| up.flush()) {
            Ok(()) => Some(n),
            Err(_) => Some(0),
        },
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(_) => Some(0),
    }
}

/// Take the whole MQTT packets off the front of `stream`, recording each PUBLISH's topic.
fn record_publishes(stream: &mut Vec<u8>, seen: &Topics) {
    loop {
        // Fixed header: type and flags, then the remaining length (1 to 4 bytes, 7 bits each).
        let (mut length, mut shift, mut at) = (0usize, 0u32, 1usize);
        let complete = loop {
            let Some(&b) = stream.get(at) else { break false };
            length |= usize::from(b & 0x7F) << shift;
            at += 1;
            if b & 0x80 == 0 {
                break true;
            }
            shift += 7;
        };
        if !complete || stream.len() < at + length {
            return;
        }
        if stream[0] >> 4 == 3 && length >= 2 {
            let topic_len = usize::from(u16::from_be_bytes([stream[at], stream[at + 1]]));
            if let Some(topic) = stream.get(at + 2..at + 2 + topic_len) {
                let (topics, arrived) = &**seen;
                topics
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(String::from_utf8_lossy(topic).into_owned());
                arrived.notify_all();
            }
        }
        stream.drain(..at + length);
    }
}
