//! A loopback HTTPS server for tests of misbehaving services: every request (method, target,
//! headers, body, arrival time) is recorded and answered by the test's handler, which may answer
//! well, write raw bytes, hang, or close the connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (by Content-Length).
    pub body: Vec<u8>,
    /// When the request line arrived.
    pub at: Instant,
}

impl Request {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The query (after `?`), empty when there is none.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The first header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

/// A well-formed answer: status, extra headers, body (Content-Length, and a JSON Content-Type when
/// there is a body, are added).
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers, as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// An [`Answer`] from borrowed parts.
pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    Answer {
        status,
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        body: body.to_string(),
    }
}

/// What the server does with a request.
pub enum Reply {
    /// A well-formed answer.
    Answer(Answer),
    /// These bytes as the answer (status line, headers, body), as they are.
    Raw(Vec<u8>),
    /// Say nothing for this long, then close.
    Hang(Duration),
    /// Close the connection.
    Close,
}

impl From<Answer> for Reply {
    fn from(a: Answer) -> Reply {
        Reply::Answer(a)
    }
}

type Handler = dyn Fn(usize, &Request) -> Reply + Send + Sync;

/// The running server (stopped on drop).
pub struct Server {
    /// `127.0.0.1:port`.
    pub endpoint: String,
    /// The server's self-signed certificate, to trust.
    pub ca_pem: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Serve HTTPS on 127.0.0.1 until the test process ends; `handler(n, request)` answers the `n`th
    /// request (from 0, over all connections).
    pub fn start<R: Into<Reply>>(handler: impl Fn(usize, &Request) -> R + Send + Sync + 'static) -> Server {
        let (config, ca_pem) = crate::tls::loopback_server_config();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let endpoint = listener.local_addr().expect("the bound address").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(move |n, r: &Request| handler(n, r).into());
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
            ca_pem,
            requests,
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    while let Some(request) = read_request(&mut tls) {
        let n = {
            let mut log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            log.push(request.clone());
            log.len() - 1
        };
        let bytes = match handler(n, &request) {
            Reply::Answer(a) => {
                let mut head = format!("HTTP/1.1 {} X\r\nContent-Length: {}\r\n", a.status, a.body.len());
                if !a.body.is_empty() {
                    head.push_str("Content-Type: application/json\r\n");
                }
                for (name, value) in &a.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                head.push_str(&a.body);
                head.into_bytes()
            }
            Reply::Raw(bytes) => bytes,
            Reply::Hang(d) => {
                // The misbehaviour under test: a server that says nothing for `d`.
                std::thread::sleep(d);
                return;
            }
            Reply::Close => return,
        };
        let out = tls.get_mut();
        if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
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
        .map_or(Some(0), |(_, v)| v.parse::<usize>().ok())?;
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
