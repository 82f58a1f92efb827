//! A misbehaving HTTPS "DPS": answers each request with the next scripted step (the last one repeats).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub enum Step {
    /// Raw bytes written as the answer (status line, headers, body).
    Raw(Vec<u8>),
    /// Read the request, then say nothing for this long.
    Hang(Duration),
    /// Read the request, then close the connection.
    Close,
}

/// A JSON answer with `status`, optional Retry-After and `body`.
pub fn json(status: u16, retry_after: Option<&str>, body: &str) -> Step {
    let retry = retry_after.map_or(String::new(), |r| format!("Retry-After: {r}\r\n"));
    Step::Raw(
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

pub struct Scripted {
    pub endpoint: String,
    pub ca_pem: String,
    pub requests: Arc<AtomicUsize>,
    /// The request line of every request, in order.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    /// The request lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn start(steps: Vec<Step>) -> Scripted {
        let (config, ca_pem) = super::loopback_server_config();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = lines.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let (config, steps, counter, log) = (config.clone(), steps.clone(), counter.clone(), log.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    loop {
                        let Some(line) = read_request(&mut tls) else {
                            return;
                        };
                        log.lock().unwrap().push(line);
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        let step = steps.get(n).or(steps.last()).cloned().unwrap_or(Step::Close);
                        match step {
                            Step::Raw(bytes) => {
                                if tls.write_all(&bytes).and_then(|()| tls.flush()).is_err() {
                                    return;
                                }
                            }
                            Step::Hang(d) => {
                                std::thread::sleep(d);
                                return;
                            }
                            Step::Close => return,
                        }
                    }
                });
            }
        });
        Scripted {
            endpoint,
            ca_pem,
            requests,
            lines,
        }
    }
}

/// Read one request (head and Content-Length body): its request line; None when the peer closed.
fn read_request(r: &mut impl Read) -> Option<String> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match r.read(&mut byte) {
            Ok(1) => data.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&data).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).ok()?;
    Some(head.lines().next().unwrap_or_default().to_string())
}
