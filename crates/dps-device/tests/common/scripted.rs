//! A misbehaving HTTPS "DPS": answers each request with the next scripted step (the last one repeats),
//! over the loopback HTTPS server of `test_support`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dps_device::{Assignment, Error, Options, ProvisioningClient, Transport};
use test_support::https_server::{Reply, Server};

/// DPS's answers for the device `d` in the operation `op-1`: still assigning; assigned to the hub `h`.
pub const ASSIGNING: &str = r#"{"operationId":"op-1","status":"assigning"}"#;
pub const ASSIGNED: &str = r#"{"operationId":"op-1","status":"assigned","registrationState":{"registrationId":"d","assignedHub":"h","deviceId":"d","status":"assigned"}}"#;

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
    /// The request line of every request, in order, in lower case.
    pub lines: Arc<Mutex<Vec<String>>>,
    _server: Server,
}

impl Scripted {
    /// A client of this server over HTTPS.
    pub fn https_client(&self, options: Options) -> ProvisioningClient {
        super::client_to(&self.endpoint, &self.ca_pem, Transport::Https, options)
    }

    /// Registers the symmetric-key device `d` with this server over HTTPS.
    pub async fn register(&self, options: Options) -> Result<Assignment, Error> {
        let device = super::symmetric("d", super::DEVICE_KEY);
        self.https_client(options).register(&device, None).await
    }

    /// The request lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn start(steps: Vec<Step>) -> Scripted {
        let requests = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (counter, log) = (requests.clone(), lines.clone());
        let server = Server::start(move |_, request| {
            log.lock()
                .unwrap()
                .push(format!("{} {} http/1.1", request.method, request.target).to_lowercase());
            let n = counter.fetch_add(1, Ordering::SeqCst);
            match steps.get(n).or(steps.last()).cloned().unwrap_or(Step::Close) {
                Step::Raw(bytes) => Reply::Raw(bytes),
                Step::Hang(d) => Reply::Hang(d),
                Step::Close => Reply::Close,
            }
        });
        Scripted {
            endpoint: server.endpoint.clone(),
            ca_pem: server.ca_pem.clone(),
            requests,
            lines,
            _server: server,
        }
    }
}
