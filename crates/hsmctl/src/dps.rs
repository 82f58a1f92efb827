//! A DPS device client over HTTPS: register, then poll the operation until it is assigned.

use std::io::Read as _;
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

/// Polling is never faster than the C SDK polls (`PROV_GET_THROTTLE_TIME`, 1 s), whatever `Retry-After` says.
const MIN_POLL: Duration = Duration::from_secs(1);
/// Nor slower than the SDK's ceiling (`MAX_PROV_GET_THROTTLE_TIME`, 5 min); the overall timeout ends it sooner.
const MAX_POLL: Duration = Duration::from_secs(300);
/// The polling delay when the service gives none.
const DEFAULT_POLL: Duration = Duration::from_secs(2);
/// One request (connect, TLS, headers and body) may take this long, and never past the overall deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read; DPS answers are a few KiB.
const MAX_BODY: u64 = 64 * 1024;
/// Text from the service is shown at most this many characters long.
const MAX_SHOWN: usize = 512;

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
    /// The whole provisioning (every request and every wait) ends by then.
    deadline: Instant,
}

impl DpsClient {
    /// `endpoint` is `host[:port]`; `roots` verify the service; the whole provisioning ends within `timeout`.
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
        // No redirect is followed: a provisioning client talks to its endpoint only (a 3xx is an error).
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .redirects(0)
            .user_agent(concat!("hsmctl/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(DpsClient {
            agent,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            id_scope: id_scope.to_string(),
            timeout,
            deadline: Instant::now() + timeout,
        })
    }

    /// A request bounded by [`REQUEST_TIMEOUT`] and by the overall deadline.
    fn request(&self, method: &str, url: &str) -> Result<ureq::Request, CliError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(&format!("before {method} {url}")));
        }
        Ok(self.agent.request(method, url).timeout(left.min(REQUEST_TIMEOUT)))
    }

    fn timed_out(&self, what: &str) -> CliError {
        CliError::Protocol(format!(
            "provisioning did not finish within {}s (--timeout): {what}",
            self.timeout.as_secs()
        ))
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
        let req = self.request("PUT", &self.url(registration_id, "register"))?;
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
        let challenge = send(self.request("PUT", &url)?.set(json_type.0, json_type.1), Some(&body))?;
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
        let req = self.authorize(self.request("PUT", &url)?, registration_id, &credential)?;
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
        loop {
            let status = reply["status"].as_str().unwrap_or_default().to_string();
            match status.as_str() {
                "assigning" | "unassigned" => {}
                "assigned" | "failed" | "disabled" => return Ok(assignment(registration_id, reply)),
                other => {
                    return Err(CliError::Protocol(format!(
                        "unexpected registration status {} in {}",
                        shown(&format!("{other:?}")),
                        shown(&reply.to_string())
                    )));
                }
            }
            let op = reply["operationId"]
                .as_str()
                .ok_or_else(|| CliError::Protocol(format!("no operationId in {}", shown(&reply.to_string()))))?
                .to_string();
            if Instant::now() + retry > self.deadline {
                return Err(self.timed_out(&format!("registration still {status:?} (operation {})", shown(&op))));
            }
            std::thread::sleep(retry);
            let req = self.request(
                "GET",
                &self.url(registration_id, &format!("operations/{}", url_encode(&op))),
            )?;
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
                return Err(CliError::Protocol(format!(
                    "{} response is not JSON: {}",
                    self.status,
                    shown(&self.text)
                )));
            }
            Ok((self.json, self.retry))
        } else {
            Err(self.into_error())
        }
    }

    fn into_error(self) -> CliError {
        let message = match self.json["message"].as_str() {
            Some(m) => shown(m),
            None if self.text.is_empty() => "(no message)".into(),
            None => shown(&self.text),
        };
        CliError::Service {
            status: self.status,
            error_code: self.json["errorCode"].as_i64(),
            message,
        }
    }
}

/// Send a request and read the answer, whatever its status. A redirect is an error; the body is read up to
/// [`MAX_BODY`] bytes.
fn send(req: ureq::Request, body: Option<&Value>) -> Result<Reply, CliError> {
    let url = req.url().to_string();
    let res = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(CliError::Transport(format!("{url}: {}", shown(&t.to_string())))),
    };
    let status = resp.status();
    if (300..400).contains(&status) {
        return Err(CliError::Protocol(format!(
            "{url}: the service answered {status} (redirect to {}); a provisioning client follows no redirect",
            resp.header("Location").map_or_else(|| "no Location".to_string(), shown)
        )));
    }
    let retry = resp
        .header("Retry-After")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_POLL, Duration::from_secs)
        .clamp(MIN_POLL, MAX_POLL);
    if let Some(length) = resp.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok()) {
        if length > MAX_BODY {
            return Err(too_big(&url, status));
        }
    }
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            CliError::Transport(format!(
                "{url}: reading the {status} response: {}",
                shown(&e.to_string())
            ))
        })?;
    if bytes.len() as u64 > MAX_BODY {
        return Err(too_big(&url, status));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply {
        status,
        json,
        text,
        retry,
    })
}

fn too_big(url: &str, status: u16) -> CliError {
    CliError::Protocol(format!(
        "{url}: the {status} response body exceeds {} KiB",
        MAX_BODY / 1024
    ))
}

/// Text from the service made safe for a terminal: control characters (escape sequences, C1 controls,
/// bidirectional overrides) shown as `\u{..}` escapes, at most [`MAX_SHOWN`] characters.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_SHOWN {
            out.push_str(&format!("... ({} more characters)", text.chars().count() - MAX_SHOWN));
            break;
        }
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Pretty JSON whose strings hold no character a terminal acts on: serde_json escapes C0 controls, this
/// escapes the rest (DEL, C1 controls, bidirectional overrides) the same JSON way. The result parses to the
/// same value.
pub(crate) fn json_for_terminal(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c != '\n' && (c.is_control() || is_bidi_control(c)) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_controls_and_truncates() {
        assert_eq!(
            shown("hub\u{1b}[31m\u{9b}2J\u{202e}x\n"),
            "hub\\u{1b}[31m\\u{9b}2J\\u{202e}x\\u{a}"
        );
        let long = "a".repeat(2000);
        let s = shown(&long);
        assert!(s.starts_with(&"a".repeat(MAX_SHOWN)));
        assert!(s.ends_with("... (1488 more characters)"), "{s}");
        assert_eq!(shown("plain text, é"), "plain text, é");
    }

    #[test]
    fn json_for_terminal_escapes_and_round_trips() {
        let value = json!({"assignedHub": "a\u{1b}]0;x\u{7}\u{9b}2J\u{202e}b"});
        let text = json_for_terminal(&value);
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && (c.is_control() || is_bidi_control(c))),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }
}
