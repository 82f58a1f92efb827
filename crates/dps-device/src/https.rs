//! The HTTPS connect module: `PUT {scope}/registrations/{id}/register`, `GET .../operations/{opId}`, `POST
//! {scope}/registrations/{id}` (status lookup), with ureq on tokio's
//! blocking pool. Each request carries the time left before the overall deadline as its timeout; redirects
//! are not followed; bodies are read up to [`crate::MAX_BODY`].

use std::io::Read as _;
use std::time::Duration;

use hsm_core::sas::url_encode;
use tokio::time::Instant;

use dps_wire::device::DeviceRegistration;

use crate::error::sanitize;
use crate::session::{Call, Connect, Connection};
use crate::{Error, MAX_BODY, Reply, Transport, blocking_task};

const T: Transport = Transport::Https;
/// How long a request may outlive the overall deadline (its thread ends then).
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

pub(crate) struct Https {
    agent: ureq::Agent,
    /// `https://{endpoint}/{scope}/registrations/{id}`
    base: String,
    /// The `api-version` query parameter (URL-encoded).
    api_version: String,
}

impl Https {
    /// An agent for `c`'s endpoint (with its proxy); nothing is sent until the first call.
    pub(crate) fn connect(c: &Connect<'_>) -> Result<Self, Error> {
        let (endpoint, tls, user_agent, proxy) = (c.endpoint, c.tls.clone(), c.user_agent, c.proxy);
        let mut agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .redirects(0)
            .user_agent(user_agent);
        if let Some(p) = proxy {
            let credentials = p
                .credentials
                .as_ref()
                .map(|(user, password)| format!("{user}:{password}@"))
                .unwrap_or_default();
            let proxy = ureq::Proxy::new(format!("http://{credentials}{}:{}", p.host, p.port))
                .map_err(|_| Error::InvalidRequest(format!("proxy {}:{}: not a usable proxy", p.host, p.port)))?;
            agent = agent.proxy(proxy);
        }
        let agent = agent.build();
        Ok(Https {
            agent,
            // No port in the endpoint: the scheme's, which is [`Transport::default_port`].
            base: format!(
                "{}://{endpoint}/{}/registrations/{}",
                T.scheme(),
                url_encode(c.id_scope),
                url_encode(c.registration_id)
            ),
            api_version: url_encode(c.api_version),
        })
    }

    async fn register(&self, body: &DeviceRegistration, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error> {
        let url = format!("{}/register?api-version={}", self.base, self.api_version);
        self.send("PUT", url, auth, Some(encode(body)?), deadline).await
    }

    /// The device registration status lookup.
    async fn status(&self, body: &DeviceRegistration, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error> {
        let url = format!("{}?api-version={}", self.base, self.api_version);
        self.send("POST", url, auth, Some(encode(body)?), deadline).await
    }

    async fn operation(&self, operation_id: &str, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error> {
        let url = format!(
            "{}/operations/{}?api-version={}",
            self.base,
            url_encode(operation_id),
            self.api_version
        );
        self.send("GET", url, auth, None, deadline).await
    }

    async fn send(
        &self,
        method: &'static str,
        url: String,
        auth: Option<&str>,
        body: Option<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Reply, Error> {
        // A little past the overall deadline: the caller's timer ends the registration at the deadline
        // with a timeout (naming what the last answer was), not ureq's read error racing it.
        let timeout = deadline.saturating_duration_since(Instant::now()) + DEADLINE_GRACE;
        let mut req = self.agent.request(method, &url).timeout(timeout);
        if let Some(a) = auth {
            req = req.set("Authorization", a);
        }
        blocking_task(move || send(req, body)).await
    }
}

impl Connection for Https {
    async fn call(&mut self, call: Call<'_>, auth: Option<&str>, deadline: Instant) -> Result<Reply, Error> {
        match call {
            Call::Register(body) => self.register(body, auth, deadline).await,
            Call::Operation(op) => self.operation(op, auth, deadline).await,
            Call::Status(body) => self.status(body, auth, deadline).await,
        }
    }

    /// Nothing to say on leaving: the agent's pooled connection closes when it is dropped.
    async fn close(self, _deadline: Instant) -> Result<(), Error> {
        Ok(())
    }
}

pub(crate) fn encode(body: &DeviceRegistration) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body).map_err(|e| Error::Internal(format!("encoding the registration: {e}")))
}

fn send(req: ureq::Request, body: Option<Vec<u8>>) -> Result<Reply, Error> {
    let result = match body {
        Some(b) => req
            .set("Content-Type", "application/json; charset=utf-8")
            .send_bytes(&b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(transport_error(t)),
    };
    let status = resp.status();
    if (300..400).contains(&status) {
        return Err(crate::answer::redirect(T, status, resp.header("Location")));
    }
    let retry_after = resp.header("Retry-After").and_then(|v| v.trim().parse::<u64>().ok());
    let mut buf = Vec::new();
    resp.into_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::transport_from(T, format!("reading the response: {}", sanitize(&e.to_string())), e))?;
    if buf.len() > MAX_BODY {
        return Err(Error::Protocol {
            transport: T,
            message: format!("the response body exceeds {MAX_BODY} bytes (the most this client accepts)"),
        });
    }
    Ok(Reply {
        status,
        body: buf,
        retry_after,
    })
}

/// A TLS failure when a rustls error is in the cause chain, else a transport failure; ureq's error is
/// the source either way.
fn transport_error(t: ureq::Transport) -> Error {
    let message = match t.kind() {
        ureq::ErrorKind::ProxyUnauthorized => "the proxy refused the CONNECT: proxy authentication required \
                                               (missing or wrong proxy credentials)"
            .to_string(),
        ureq::ErrorKind::ProxyConnect => format!("the proxy did not open a tunnel: {}", sanitize(&t.to_string())),
        _ => match tls_cause(&t) {
            Some(tls) => return Error::tls_from(T, tls, t),
            None => sanitize(&t.to_string()),
        },
    };
    Error::transport_from(T, message, t)
}

/// The text of a rustls error in `t`'s cause chain (also inside an I/O error).
fn tls_cause(t: &ureq::Transport) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = cause {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Some(sanitize(&tls.to_string()));
            }
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_implies_the_default_port() {
        let url = url::Url::parse(&format!("{}://dps.example/", T.scheme())).unwrap();
        assert_eq!(url.port_or_known_default(), Some(T.default_port()));
    }
}
