//! A DPS device client over HTTPS: register, then poll the operation until it is assigned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hsm_core::sas::{Audience, url_encode};
use hsm_core::{SymmetricIdentity, TpmIdentity, X509Identity};
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
    /// A SAS token already signed (TPM attestation signs it inside the TPM).
    Token(String),
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
            Credential::Sas { .. } | Credential::Token(_) => None,
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
            Credential::Token(t) => Ok(req.set("Authorization", t)),
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
        let (reply, retry) = send(req.set("Content-Type", "application/json; charset=utf-8"), Some(&body))?.ok()?;
        self.poll(registration_id, credential, reply, retry)
    }

    /// TPM attestation, the SDK's sequence: send EK and SRK, activate the identity key the
    /// service answers with (401 + authenticationKey), register with a SAS token signed inside
    /// the TPM, poll, and activate the key returned at assignment.
    pub fn register_tpm(
        &self,
        registration_id: &str,
        tpm: &mut dyn TpmIdentity,
        expiry: u64,
        payload: Option<Value>,
    ) -> Result<Assignment, CliError> {
        let mut body = json!({
            "registrationId": registration_id,
            "tpm": {
                "endorsementKey": B64.encode(tpm.endorsement_key()?),
                "storageRootKey": B64.encode(tpm.storage_root_key()?),
            },
        });
        if let Some(p) = payload {
            body["payload"] = p;
        }
        let url = self.url(registration_id, "register");
        let json_type = ("Content-Type", "application/json; charset=utf-8");
        let challenge = send(self.agent.put(&url).set(json_type.0, json_type.1), Some(&body))?;
        if challenge.status != 401 {
            challenge.ok()?;
            return Err(CliError::Protocol(
                "the service registered a TPM device without the activation challenge".into(),
            ));
        }
        let blob = challenge.json["authenticationKey"]
            .as_str()
            .ok_or_else(|| challenge.clone().into_error())?;
        let blob = B64
            .decode(blob)
            .map_err(|e| CliError::Protocol(format!("authenticationKey is not base64: {e}")))?;
        tpm.activate_identity_key(&blob)?;

        let aud = Audience::Dps {
            id_scope: self.id_scope.clone(),
            registration_id: registration_id.to_string(),
        };
        let token = aud.token(&tpm.sign_with_identity(aud.string_to_sign(expiry).as_bytes())?, expiry);
        let credential = Credential::Token(token);
        let req = self.authorize(self.agent.put(&url), registration_id, &credential)?;
        let (reply, retry) = send(req.set(json_type.0, json_type.1), Some(&body))?.ok()?;
        let assignment = self.poll(registration_id, &credential, reply, retry)?;
        if let Some(key) = assignment.state["tpm"]["authenticationKey"].as_str() {
            let blob = B64
                .decode(key)
                .map_err(|e| CliError::Protocol(format!("the assigned authenticationKey is not base64: {e}")))?;
            tpm.activate_identity_key(&blob)?;
        }
        Ok(assignment)
    }

    fn poll(
        &self,
        registration_id: &str,
        credential: &Credential<'_>,
        mut reply: Value,
        mut retry: Duration,
    ) -> Result<Assignment, CliError> {
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
            (reply, retry) = send(self.authorize(req, registration_id, credential)?, None)?.ok()?;
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

/// An HTTP answer: status, JSON body (Null when there is none) and the polling delay.
#[derive(Clone)]
struct Reply {
    status: u16,
    json: Value,
    text: String,
    retry: Duration,
}

impl Reply {
    /// The body of a 2xx answer, or the service's error.
    fn ok(self) -> Result<(Value, Duration), CliError> {
        if (200..300).contains(&self.status) {
            if self.json.is_null() {
                return Err(CliError::Protocol(format!("response is not JSON: {:?}", self.text)));
            }
            Ok((self.json, self.retry))
        } else {
            Err(self.into_error())
        }
    }

    fn into_error(self) -> CliError {
        let message = self.json["message"].as_str().map(str::to_string).unwrap_or_else(|| {
            if self.text.is_empty() {
                "(no message)".into()
            } else {
                self.text.clone()
            }
        });
        CliError::Service {
            status: self.status,
            error_code: self.json["errorCode"].as_i64(),
            message,
        }
    }
}

/// Send a request and read the answer, whatever its status.
fn send(req: ureq::Request, body: Option<&Value>) -> Result<Reply, CliError> {
    let url = req.url().to_string();
    let res = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(CliError::Transport(format!("{url}: {t}"))),
    };
    let status = resp.status();
    let retry = resp
        .header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(30)))
        .unwrap_or(Duration::from_secs(1));
    let text = resp
        .into_string()
        .map_err(|e| CliError::Transport(format!("{url}: reading the response: {e}")))?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        json,
        text,
        retry,
    })
}
