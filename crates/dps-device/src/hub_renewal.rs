//! Hub certificate renewal: renewal over IoT Hub MQTT (`$iothub/credentials`): connect to the hub with the current
//! (issued or onboarding) x509 identity, publish a CSR on
//! `$iothub/credentials/POST/issueCertificate/?$rid={rid}` as `{"id", "csr", "replace"?}`, and read the
//! answers on `$iothub/credentials/res/{status}/?$rid={rid}`: `202` (accepted; keep waiting), then `200`
//! `{"certificates": [...]}` (leaf first; base64 DER or PEM).
//!
//! The request is published at QoS 1 (the hub acknowledges it with a PUBACK, as Microsoft's client
//! expects); every message is built and read through `dps_wire::device::credentials`.
//!
//! Retries: 409005 (an operation is in progress) is sent again with `replace: "*"`; 429002, 429003 and
//! 503001 (throttled, unavailable) and 500001 are sent again after a back-off that honours the service's
//! `retry-after` (topic property, else the error body's `info.retryAfter`); 400040 (bad CSR), 412001 and
//! every other error are final, with the body's `info` in the error. A redirect (3xx) is an error. The
//! whole renewal has one deadline.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dps_wire::device::credentials::{CredentialsError, CredentialsRequest, CredentialsResponse};
use hsm_core::X509Identity;
use hsm_core::sas::url_encode;
use rumqttc::{MqttOptions, Packet, QoS};

use crate::error::sanitize;
use crate::mqtt::{MqttSession, client_error, split_endpoint};
use crate::{Error, MAX_BODY, Reply, ServiceError, TlsVersions, Transport, blocking_task};

const T: Transport = Transport::Mqtt;
pub(crate) const SUBSCRIBE_TOPIC: &str = "$iothub/credentials/res/#";
const RESPONSE_PREFIX: &str = "$iothub/credentials/res/";
/// The IoT Hub api-version of the credentials topics (the one Microsoft's clients send).
pub const HUB_API_VERSION: &str = "2025-08-01-preview";

/// How a renewal behaves; `RenewalOptions::default()` suits devices.
#[derive(Debug, Clone)]
pub struct RenewalOptions {
    /// The IoT Hub api-version in the MQTT username. Default [`HUB_API_VERSION`].
    /// The IoT Hub api-version of the MQTT username (default [`HUB_API_VERSION`]).
    pub api_version: String,
    /// One deadline for the whole renewal (connection, every request and wait).
    pub timeout: Duration,
    /// Requests sent at most (the first and its retries).
    pub max_attempts: u32,
    /// Shortest and longest wait before a retry after throttling, whatever retry-after says.
    pub retry_floor: Duration,
    /// See `retry_floor`.
    pub retry_ceiling: Duration,
    /// Send `replace: "*"` with the first request (replace an operation left in progress).
    pub replace: bool,
    /// The `DeviceClientType` sent in the MQTT username.
    pub user_agent: String,
    /// The TLS versions offered.
    pub tls_versions: TlsVersions,
}

impl Default for RenewalOptions {
    fn default() -> Self {
        RenewalOptions {
            api_version: HUB_API_VERSION.to_string(),
            timeout: Duration::from_secs(120),
            max_attempts: 5,
            retry_floor: Duration::from_secs(1),
            retry_ceiling: Duration::from_secs(60),
            replace: false,
            user_agent: concat!("dps-device/", env!("CARGO_PKG_VERSION")).to_string(),
            tls_versions: TlsVersions::Both,
        }
    }
}

/// What to do with an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send again at once with `replace`.
    Replace,
    /// Send again after this wait.
    RetryAfter(Duration),
    /// Give up with the service's error.
    Fail,
}

/// The retry rules: `attempt` counts the requests sent so far (1 after the first).
pub(crate) fn next_step(
    status: u16,
    error_code: Option<i64>,
    retry_after: Option<u64>,
    attempt: u32,
    options: &RenewalOptions,
) -> Next {
    if attempt >= options.max_attempts {
        return Next::Fail;
    }
    let backoff = || {
        let wanted = match retry_after {
            Some(s) => Duration::from_secs(s),
            None => options.retry_floor.saturating_mul(1 << attempt.min(16)),
        };
        Next::RetryAfter(wanted.min(options.retry_ceiling).max(options.retry_floor))
    };
    match (status, error_code) {
        (409, Some(409005)) => Next::Replace,
        (_, Some(429002 | 429003 | 503001 | 500001)) => backoff(),
        (429 | 503, None) => backoff(),
        _ => Next::Fail,
    }
}

/// Ask IoT Hub for a new certificate for `csr` (DER PKCS#10 of a NEW key, CN = `device_id`).
///
/// `hub` is the assigned hub's host name (in the MQTT username); `endpoint` is where to connect,
/// `host[:port]` (normally the hub itself, port 8883); `identity` is the TLS client credential (the
/// current issued certificate, or the onboarding one). Returns the chain, DER, leaf first; check it with
/// [`crate::verify_issued_chain`] before storing it. Nothing is stored or deleted here.
pub async fn renew_certificate(
    hub: &str,
    endpoint: &str,
    device_id: &str,
    identity: Arc<dyn X509Identity>,
    roots: rustls::RootCertStore,
    csr: &[u8],
    options: &RenewalOptions,
) -> Result<Vec<Vec<u8>>, Error> {
    if device_id.is_empty() || device_id.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::InvalidRequest(format!(
            "device id {device_id:?} is empty or has '/' or control characters"
        )));
    }
    if csr.is_empty() {
        return Err(Error::InvalidRequest("the CSR is empty".into()));
    }
    let started = tokio::time::Instant::now();
    let run = renew(hub, endpoint, device_id, identity, roots, csr, options);
    match tokio::time::timeout(options.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            after: started.elapsed(),
            detail: "IoT Hub did not issue the certificate in time".into(),
        }),
    }
}

async fn renew(
    hub: &str,
    endpoint: &str,
    device_id: &str,
    identity: Arc<dyn X509Identity>,
    roots: rustls::RootCertStore,
    csr: &[u8],
    options: &RenewalOptions,
) -> Result<Vec<Vec<u8>>, Error> {
    let versions = options.tls_versions;
    let tls = blocking_task(move || {
        tlsio_bridge::client_config(roots, Some(identity.as_ref()), versions).map_err(Error::from)
    })
    .await?;
    let (host, port) = split_endpoint(endpoint, T.default_port())?;
    let mut mqtt_options = MqttOptions::new(device_id, host, port);
    mqtt_options
        .set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
            Arc::new(tls),
        )))
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_max_packet_size(MAX_BODY + 1024, MAX_BODY + 1024)
        .set_credentials(
            format!(
                "{hub}/{device_id}/?api-version={}&DeviceClientType={}",
                url_encode(&options.api_version),
                url_encode(&options.user_agent)
            ),
            "",
        );
    let mut hub_session = HubSession(MqttSession::open(mqtt_options, T, SUBSCRIBE_TOPIC, "hub").await?);
    let csr = B64.encode(csr);
    let mut replace = options.replace;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let rid = attempt.to_string();
        let body = CredentialsRequest {
            id: device_id.to_string(),
            csr: csr.clone(),
            replace: replace.then(|| "*".to_string()),
            extra: serde_json::Map::new(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| Error::Internal(format!("encoding the request: {e}")))?;
        let reply = hub_session.request(&rid, body).await?;
        if reply.status == 200 {
            return certificates(&reply);
        }
        let error = service_error(&reply);
        let Error::Service(e) = &error else {
            return Err(error);
        };
        let retry_after = reply.retry_after.or_else(|| error_body(&reply).retry_after_secs());
        match next_step(e.status, e.error_code, retry_after, attempt, options) {
            // Our own request with replace was itself refused as in progress: do not fight over it.
            Next::Replace if replace => return Err(error),
            Next::Replace => {
                tracing::info!(
                    device_id,
                    "a certificate operation is in progress: sending again with replace"
                );
                replace = true;
            }
            Next::RetryAfter(wait) => {
                tracing::info!(
                    device_id,
                    status = e.status,
                    wait_s = wait.as_secs(),
                    "throttled: retrying"
                );
                tokio::time::sleep(wait).await;
            }
            Next::Fail => return Err(error),
        }
    }
}

/// `$iothub/credentials/POST/issueCertificate/?$rid={rid}`.
pub(crate) fn request_topic(rid: &str) -> String {
    format!("$iothub/credentials/POST/issueCertificate/?$rid={rid}")
}

/// The connection to the hub's credentials topics.
struct HubSession(MqttSession);

impl HubSession {
    /// Publish one request at QoS 1 and wait for its final answer (the PUBACK and a 202 are noted).
    async fn request(&mut self, rid: &str, payload: Vec<u8>) -> Result<Reply, Error> {
        self.0
            .client
            .publish(request_topic(rid), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| client_error(e, T))?;
        let mut accepted = false;
        let mut acknowledged = false;
        loop {
            let packet = match self.0.next_packet().await {
                Ok(p) => p,
                Err(Error::Transport {
                    transport,
                    message,
                    source,
                }) if !acknowledged && !accepted => {
                    return Err(Error::Transport {
                        transport,
                        source,
                        message: format!(
                            "the connection ended before the hub acknowledged the certificate request (PUBACK): \
                             {message}"
                        ),
                    });
                }
                Err(Error::Transport {
                    transport,
                    message,
                    source,
                }) if accepted => {
                    return Err(Error::Transport {
                        transport,
                        source,
                        message: format!(
                            "the hub accepted the certificate request (202) but the connection ended before \
                             the certificate came: {message}"
                        ),
                    });
                }
                Err(e) => return Err(e),
            };
            let p = match packet {
                Packet::Publish(p) => p,
                Packet::PubAck(_) => {
                    acknowledged = true;
                    continue;
                }
                _ => continue,
            };
            let Some(parsed) = parse_response_topic(&p.topic) else {
                tracing::debug!(topic = %sanitize(&p.topic), "ignoring a message on another topic");
                continue;
            };
            let (status, answer_rid, retry_after) = parsed?;
            if answer_rid.as_deref() != Some(rid) {
                continue;
            }
            if status == 202 {
                tracing::info!("the hub accepted the certificate request (202): waiting for the certificate");
                accepted = true;
                continue;
            }
            return Ok(Reply {
                status,
                body: p.payload.to_vec(),
                retry_after,
            });
        }
    }
}

type ResponseTopic = (u16, Option<String>, Option<u64>);

/// `$iothub/credentials/res/{status}/?$rid={rid}[&retry-after=s][&$version=n]`: None for another topic.
pub(crate) fn parse_response_topic(topic: &str) -> Option<Result<ResponseTopic, Error>> {
    let rest = topic.strip_prefix(RESPONSE_PREFIX)?;
    let (status, query) = rest.split_once("/?").unwrap_or((rest.trim_end_matches('/'), ""));
    let Ok(status) = status.parse::<u16>() else {
        return Some(Err(Error::Protocol {
            transport: T,
            message: format!("malformed response topic {:?}", sanitize(topic)),
        }));
    };
    let mut rid = None;
    let mut retry_after = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("$rid", v)) => rid = Some(v.to_string()),
            Some(("retry-after", v)) => retry_after = v.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(Ok((status, rid, retry_after)))
}

/// The error body of an answer (empty when it is not the hub's error shape).
fn error_body(reply: &Reply) -> CredentialsError {
    serde_json::from_slice::<CredentialsError>(&reply.body).unwrap_or_default()
}

pub(crate) fn service_error(reply: &Reply) -> Error {
    if (300..400).contains(&reply.status) {
        return crate::answer::redirect(T, reply.status, None);
    }
    let body = error_body(reply);
    let message = match &body.message {
        Some(m) => sanitize(m),
        None if reply.body.is_empty() => "(no message)".to_string(),
        None => sanitize(&String::from_utf8_lossy(&reply.body)),
    };
    Error::Service(ServiceError {
        transport: T,
        status: reply.status,
        error_code: body.error_code,
        tracking_id: body.tracking_id.as_deref().map(sanitize),
        message,
        info: body
            .info_pairs()
            .into_iter()
            .map(|(k, v)| (sanitize(&k), sanitize(&v)))
            .collect(),
    })
}

/// What a final answer means: the certificates of a 200, the service error otherwise.
#[cfg(feature = "fuzzing")]
pub(crate) fn read_answer(status: u16, body: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let reply = Reply {
        status,
        body: body.to_vec(),
        retry_after: None,
    };
    match status {
        200 => certificates(&reply),
        _ => Err(service_error(&reply)),
    }
}

/// The `certificates` of a 200 answer, DER, leaf first.
pub(crate) fn certificates(reply: &Reply) -> Result<Vec<Vec<u8>>, Error> {
    let bad = |m: String| Error::Protocol {
        transport: T,
        message: m,
    };
    let answer: CredentialsResponse = serde_json::from_slice(&reply.body)
        .map_err(|e| bad(sanitize(&format!("the 200 answer is not a certificates answer: {e}"))))?;
    let Some(items) = answer.certificates.filter(|a| !a.is_empty()) else {
        return Err(bad("the 200 answer has no certificates".into()));
    };
    crate::issuance::decode_chain(&items, "certificates").map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules() {
        let o = RenewalOptions::default();
        assert_eq!(next_step(409, Some(409005), None, 1, &o), Next::Replace);
        assert_eq!(
            next_step(429, Some(429002), Some(7), 1, &o),
            Next::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            next_step(429, Some(429003), Some(600), 1, &o),
            Next::RetryAfter(o.retry_ceiling)
        );
        assert_eq!(
            next_step(503, Some(503001), None, 2, &o),
            Next::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(next_step(400, Some(400040), None, 1, &o), Next::Fail);
        assert_eq!(next_step(412, Some(412001), None, 1, &o), Next::Fail);
        assert_eq!(next_step(401, None, None, 1, &o), Next::Fail);
        // The last attempt is final whatever the answer.
        assert_eq!(next_step(409, Some(409005), None, o.max_attempts, &o), Next::Fail);
    }

    #[test]
    fn response_topics_parse_with_string_rids() {
        let (s, rid, retry) = parse_response_topic("$iothub/credentials/res/200/?$rid=ab-1&$version=1")
            .unwrap()
            .unwrap();
        assert_eq!((s, rid.as_deref(), retry), (200, Some("ab-1"), None));
        let (s, _, retry) = parse_response_topic("$iothub/credentials/res/429/?$rid=2&retry-after=5")
            .unwrap()
            .unwrap();
        assert_eq!((s, retry), (429, Some(5)));
        assert!(parse_response_topic("$dps/registrations/res/200/?$rid=1").is_none());
        assert!(
            parse_response_topic("$iothub/credentials/res/x/?$rid=1")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn certificates_accept_base64_der_and_pem() {
        let reply = |body: &str| Reply {
            status: 200,
            body: body.as_bytes().to_vec(),
            retry_after: None,
        };
        assert_eq!(
            certificates(&reply(r#"{"certificates":["AAEC"]}"#)).unwrap(),
            vec![vec![0, 1, 2]]
        );
        assert!(certificates(&reply(r#"{"certificates":[]}"#)).is_err());
        assert!(certificates(&reply(r#"{}"#)).is_err());
        assert!(certificates(&reply("nope")).is_err());
    }
}
