//! What every listener hands the services and gets back: a transport-neutral [`Request`] (method, path, query,
//! headers, body, and the client as the transport authenticated it) and [`Response`], the [`Service`] trait
//! the device API, the service API and the IoT Hub endpoints implement, and DPS's error answers.
//!
//! A listener is an adapter: HTTPS reads its requests off the wire as they are; MQTT turns a CONNECT into a
//! [`SESSION`] request on the resource the username names and each publish into the request its topic names.

use std::sync::Arc;
use std::time::Duration;

use dps_wire::ErrorDetails;
use dps_wire::error::ERROR_CODE_HEADER;
use rustls_pki_types::CertificateDer;

/// The method of a session request: a transport that authenticates once per connection (an MQTT CONNECT)
/// asks whether the client may open a session on the path; `204` admits it, an error answer says why not.
/// Not served over HTTPS, where every request carries its own credentials.
pub(crate) const SESSION: &str = "SESSION";

/// The wire a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Https,
    Mqtt,
    /// MQTT over WebSockets on the HTTPS port.
    MqttWs,
    /// AMQP 1.0 over TLS on its own port.
    Amqp,
    /// AMQP over WebSockets on the HTTPS port.
    AmqpWs,
}

impl Transport {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::Https => "HTTPS",
            Transport::Mqtt => "MQTT",
            Transport::MqttWs => "MQTT over WebSockets",
            Transport::Amqp => "AMQP",
            Transport::AmqpWs => "AMQP over WebSockets",
        }
    }

    /// Whether the transport authenticates once per connection and opens a session with a [`SESSION`]
    /// request (MQTT's CONNECT, AMQP's SASL or first link); over HTTPS every request carries its own
    /// credentials.
    pub(crate) fn has_sessions(self) -> bool {
        match self {
            Transport::Https => false,
            Transport::Mqtt | Transport::MqttWs | Transport::Amqp | Transport::AmqpWs => true,
        }
    }

    /// Whether the emulator takes TPM attestation over this transport, as DPS does: HTTPS (the challenge is
    /// a 401) and AMQP (the challenge inside the SASL `TPM` mechanism); not MQTT.
    pub(crate) fn carries_tpm(self) -> bool {
        match self {
            Transport::Https | Transport::Amqp | Transport::AmqpWs => true,
            Transport::Mqtt | Transport::MqttWs => false,
        }
    }
}

/// The client of a request as its transport knows it.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) transport: Transport,
    /// The certificate chain (leaf first) the client presented in the TLS handshake, whose key it proved it
    /// holds; which enrollment it must verify to is for the service to say.
    pub(crate) chain: Option<Arc<[CertificateDer<'static>]>>,
}

impl Client {
    pub(crate) fn chain(&self) -> Option<&[CertificateDer<'static>]> {
        self.chain.as_deref()
    }
}

/// One request, whatever wire it came over.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path as sent (percent-encoded), without the query.
    pub(crate) path: String,
    /// The query as sent, without the `?`.
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) client: Client,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name` as sent.
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        query_param(&self.query, name)
    }

    /// A non-empty `api-version` in the query.
    pub(crate) fn has_api_version(&self) -> bool {
        self.query
            .split('&')
            .any(|p| p.strip_prefix("api-version=").is_some_and(|v| !v.is_empty()))
    }
}

/// The value of parameter `name` in `query` (`a=1&b=2`) as sent.
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|p| p.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// A service of the emulator: it answers the requests whose paths are its own.
pub(crate) trait Service: Send + Sync {
    /// Answer `request` if its path is this service's, else `None`. `segments` is the path split at `/`
    /// (without the leading and a trailing slash).
    fn handle(&self, request: &Request, segments: &[&str]) -> Option<Response>;
}

/// A second answer to the same request, due some time after the first (an IoT Hub credentials operation:
/// `202`, then `200` with the certificates). Transports without a way to send it drop it.
pub(crate) struct Later {
    pub(crate) after: Duration,
    pub(crate) answer: Box<dyn FnOnce() -> Response + Send>,
}

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Later")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) later: Option<Later>,
}

impl Response {
    /// A JSON answer: `body` is a `dps_wire` type (or a list of them).
    pub(crate) fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Self {
        Response {
            status,
            headers: Vec::new(),
            // The wire types serialise to JSON without fail (string keys only).
            body: serde_json::to_vec(body).unwrap_or_default(),
            later: None,
        }
    }

    /// A response without a body (204).
    pub(crate) fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            later: None,
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The message of an error answer (DPS's error body), for logs and refusals.
    pub(crate) fn error_message(&self) -> String {
        serde_json::from_slice::<ErrorDetails>(&self.body)
            .ok()
            .and_then(|d| d.message)
            .unwrap_or_else(|| format!("status {}", self.status))
    }
}

/// An error answer: DPS's error body and the code in `x-ms-error-code`.
pub(crate) fn error(status: u16, code: u32, message: impl Into<String>) -> Response {
    error_with_info(status, code, message, None)
}

/// Longest message an error answer carries: what a client sent (a query, a path) is cut, not echoed whole.
pub(crate) const MAX_MESSAGE: usize = 512;

/// `message` cut to [`MAX_MESSAGE`] bytes (at a character boundary), saying how long it was.
pub(crate) fn cut(message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes, cut)", &message[..end], message.len())
}

/// The DPS error body (`ProvisioningServiceErrorDetails`: errorCode, trackingId, message, timestampUtc and
/// `info` when given), as DPS sends it.
pub(crate) fn error_details(code: u32, message: impl Into<String>, info: Option<Vec<(&str, String)>>) -> ErrorDetails {
    let tracking_id =
        crate::ids_and_times::random_uuid().unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".to_string());
    ErrorDetails {
        error_code: Some(i64::from(code)),
        tracking_id: Some(tracking_id),
        message: Some(cut(message.into())),
        info: info.map(|i| i.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        timestamp_utc: Some(crate::ids_and_times::now_rfc3339()),
        extra: serde_json::Map::new(),
    }
}

/// An error answer with `info` (for a 429: `retryAfter`, which also goes in the `Retry-After` header).
pub(crate) fn error_with_info(
    status: u16,
    code: u32,
    message: impl Into<String>,
    info: Option<Vec<(&str, String)>>,
) -> Response {
    let details = error_details(code, message, info);
    let retry_after = details.retry_after_secs().map(|s| s.to_string());
    let mut response = Response::json(status, &details).with_header(ERROR_CODE_HEADER, code.to_string());
    if let Some(seconds) = retry_after {
        response = response.with_header("Retry-After", seconds);
    }
    response
}

/// A fresh version-4 UUID, or the 500 answer when the system random generator failed (its error body without
/// a random tracking id).
pub(crate) fn fresh_id() -> Result<String, Response> {
    crate::ids_and_times::random_uuid().ok_or_else(|| {
        let details = ErrorDetails {
            error_code: Some(500000),
            message: Some("the system random generator failed".to_string()),
            timestamp_utc: Some(crate::ids_and_times::now_rfc3339()),
            ..ErrorDetails::default()
        };
        Response::json(500, &details).with_header(ERROR_CODE_HEADER, "500000")
    })
}
