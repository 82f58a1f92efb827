//! A DPS device client over HTTPS: register, then poll the operation until it is assigned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hsm_core::sas::{Audience, url_encode};
use hsm_core::{SymmetricIdentity, X509Identity};
use serde_json::{Value, json};

use crate::CliError;

/// The REST API version this client speaks.
pub const API_VERSION: &str = "2021-06-01";

/// How the device proves its identity.
pub enum Credential<'a> {
    /// TLS client certificate; every signature made by the backend key.
    X509(&'a dyn X509Identity),
    /// SAS token signed with the identity's HMAC (the key itself is never read).
    Sas {
        identity: &'a dyn SymmetricIdentity,
        expiry: u64,
    },
}

/// The outcome of a registration.
#[derive(Debug)]
pub struct Assignment {
    pub registration_id: String,
    pub status: String,
    pub assigned_hub: Option<String>,
    pub device_id: Option<String>,
    pub state: Value,
}

pub struct DpsClient {
    agent: ureq::Agent,
    endpoint: String,
    id_scope: String,
    timeout: Duration,
}

impl DpsClient {
    /// `endpoint` is `host[:port]`; `roots` verify the service.
    pub fn new(
        endpoint: &str,
        id_scope: &str,
        roots: rustls::RootCertStore,
        credential: &Credential<'_>,
        timeout: Duration,
    ) -> Result<Self, CliError> {
        let identity = match credential {
            Credential::X509(id) => Some(*id),
            Credential::Sas { .. } => None,
        };
        let tls = tlsio_bridge::client_config(roots, identity, tlsio_bridge::TlsVersions::Both)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("hsmctl/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(DpsClient {
            agent,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            id_scope: id_scope.to_string(),
            timeout,
        })
    }

    fn url(&self, registration_id: &str, tail: &str) -> String {
        format!(
            "https://{}/{}/registrations/{}/{tail}?api-version={API_VERSION}",
            self.endpoint,
            url_encode(&self.id_scope),
            url_encode(registration_id)
        )
    }

    fn authorize(
        &self,
        req: ureq::Request,
        registration_id: &str,
        credential: &Credential<'_>,
    ) -> Result<ureq::Request, CliError> {
        match credential {
            Credential::X509(_) => Ok(req),
            Credential::Sas { identity, expiry } => {
                let aud = Audience::Dps {
                    id_scope: self.id_scope.clone(),
                    registration_id: registration_id.to_string(),
                };
                let mac = identity.hmac_sha256(aud.string_to_sign(*expiry).as_bytes())?;
                Ok(req.set("Authorization", &aud.token(&mac, *expiry)))
            }
        }
    }

    /// Register and wait for the assignment.
    pub fn register(
        &self,
        registration_id: &str,
        credential: &Credential<'_>,
        payload: Option<Value>,
    ) -> Result<Assignment, CliError> {
        let mut body = json!({ "registrationId": registration_id });
        if let Some(p) = payload {
            body["payload"] = p;
        }
        let req = self.agent.put(&self.url(registration_id, "register"));
        let req = self.authorize(req, registration_id, credential)?;
        let (mut reply, mut retry) = call(req.set("Content-Type", "application/json; charset=utf-8"), Some(&body))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let status = reply["status"].as_str().unwrap_or_default().to_string();
            match status.as_str() {
                "assigning" | "unassigned" => {}
                "assigned" | "failed" | "disabled" => return Ok(assignment(registration_id, reply)),
                other => {
                    return Err(CliError::Protocol(format!(
                        "unexpected registration status {other:?} in {reply}"
                    )));
                }
            }
            let op = reply["operationId"]
                .as_str()
                .ok_or_else(|| CliError::Protocol(format!("no operationId in {reply}")))?
                .to_string();
            if Instant::now() + retry > deadline {
                return Err(CliError::Protocol(format!(
                    "registration still {status:?} after {}s (operation {op})",
                    self.timeout.as_secs()
                )));
            }
            std::thread::sleep(retry);
            let req = self
                .agent
                .get(&self.url(registration_id, &format!("operations/{}", url_encode(&op))));
            (reply, retry) = call(self.authorize(req, registration_id, credential)?, None)?;
        }
    }
}

fn assignment(registration_id: &str, reply: Value) -> Assignment {
    let state = reply.get("registrationState").cloned().unwrap_or(Value::Null);
    let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_string);
    Assignment {
        registration_id: text("registrationId").unwrap_or_else(|| registration_id.to_string()),
        status: text("status")
            .or_else(|| reply["status"].as_str().map(str::to_string))
            .unwrap_or_default(),
        assigned_hub: text("assignedHub"),
        device_id: text("deviceId"),
        state,
    }
}

/// Send a request; a non-2xx answer becomes [`CliError::Service`] with the service's message.
fn call(req: ureq::Request, body: Option<&Value>) -> Result<(Value, Duration), CliError> {
    let url = req.url().to_string();
    let res = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(status, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = parsed["message"].as_str().map(str::to_string).unwrap_or_else(|| {
                if text.is_empty() {
                    "(no message)".into()
                } else {
                    text.clone()
                }
            });
            return Err(CliError::Service {
                status,
                error_code: parsed["errorCode"].as_i64(),
                message,
            });
        }
        Err(ureq::Error::Transport(t)) => return Err(CliError::Transport(format!("{url}: {t}"))),
    };
    let retry = resp
        .header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(30)))
        .unwrap_or(Duration::from_secs(1));
    let text = resp
        .into_string()
        .map_err(|e| CliError::Transport(format!("{url}: reading the response: {e}")))?;
    let value = serde_json::from_str(&text)
        .map_err(|e| CliError::Protocol(format!("{url}: response is not JSON ({e}): {text}")))?;
    Ok((value, retry))
}
