//! A local HTTPS server for hostile-service tests (also used by hsmctl's tests through `#[path]`):
//! every request (method, target, headers, body, arrival time) is recorded and answered by the
//! test's handler, which may misbehave as it likes (redirects, repeated continuation tokens,
//! throttling, fields we do not model).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An answer: status, extra headers, body (Content-Length is added).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    Answer {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.to_string(),
    }
}

type Handler = dyn Fn(usize, &Request) -> Answer + Send + Sync;

pub struct Server {
    /// `127.0.0.1:port`.
    pub endpoint: String,
    /// The server's self-signed certificate, to trust.
    pub ca_pem: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Serve HTTPS on 127.0.0.1; `handler(n, request)` answers the `n`th request (from 0).
    pub fn start(handler: impl Fn(usize, &Request) -> Answer + Send + Sync + 'static) -> Server {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(hsm_core::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der())),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let (config, handler, log) = (config.clone(), handler.clone(), log.clone());
                std::thread::spawn(move || serve(tcp, config, &*handler, &log));
            }
        });
        Server {
            endpoint,
            ca_pem: cert.cert.pem(),
            requests,
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    while let Some(request) = read_request(&mut tls) {
        let n = {
            let mut log = log.lock().unwrap();
            log.push(request.clone());
            log.len() - 1
        };
        let a = handler(n, &request);
        let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", a.status, a.body.len());
        if !a.body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (name, value) in &a.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let out = tls.get_mut();
        if out.write_all(head.as_bytes()).is_err() || out.write_all(a.body.as_bytes()).is_err() || out.flush().is_err()
        {
            return;
        }
    }
}

/// One request (head and Content-Length body); None when the peer closed.
fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok().filter(|n| *n > 0)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
        at,
    })
}
