//! One request to the service: the SAS token, `api-version`, `If-Match`; a 3xx is an error (never
//! followed); a 429 or 503 is sent again after the service's `Retry-After` when that is within
//! [`crate::ClientOptions::max_retry_after`]; error answers become typed errors with their body.

use std::time::Duration;

use dps_wire::error::ERROR_CODE_HEADER;
use dps_wire::{ApiVersion, ErrorDetails};
use serde::de::DeserializeOwned;

use crate::{ConnectionString, Error, Result, TransportKind};

/// The transport of a [`crate::ServiceClient`].
pub(crate) struct Http {
    pub(crate) connection: ConnectionString,
    pub(crate) base: String,
    pub(crate) agent: ureq::Agent,
    pub(crate) token_ttl: Duration,
    pub(crate) api_version: ApiVersion,
    pub(crate) retries: u32,
    pub(crate) max_retry_after: Duration,
}

/// One request: method, path (from `/`), what it is about (for errors), `If-Match`, extra headers, body.
pub(crate) struct Call<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The path, from `/`.
    pub path: &'a str,
    /// What the request is about, for errors.
    pub what: &'a str,
    /// The `If-Match` etag, if any.
    pub if_match: Option<&'a str>,
    /// Extra headers.
    pub headers: &'a [(&'a str, String)],
    /// The JSON body, if any.
    pub body: Option<&'a str>,
}

/// The wait before the first retry when the service names none; doubled per retry.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

impl Http {
    /// Send `call`, again after throttling (429) or unavailability (503) as the service asks.
    pub(crate) fn send(&self, call: &Call<'_>) -> Result<ureq::Response> {
        let mut attempt = 0;
        loop {
            match self.send_once(call) {
                Err(e) if attempt < self.retries && matches!(e.status(), Some(429 | 503)) => {
                    let wait = e.retry_after().unwrap_or(FIRST_BACKOFF * 2u32.pow(attempt));
                    if wait > self.max_retry_after {
                        return Err(e);
                    }
                    attempt += 1;
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, attempt, "the service asked us to wait; sending again");
                    // The service's own instruction: nothing to wait on but the time.
                    std::thread::sleep(wait);
                }
                other => return other,
            }
        }
    }

    fn send_once(&self, call: &Call<'_>) -> Result<ureq::Response> {
        let url = format!("{}{}?api-version={}", self.base, call.path, self.api_version);
        let mut req = self
            .agent
            .request(call.method, &url)
            .set("Authorization", &self.connection.sas_token_for(self.token_ttl))
            .set("Accept", "application/json");
        if let Some(etag) = call.if_match {
            req = req.set("If-Match", etag);
        }
        for (name, value) in call.headers {
            req = req.set(name, value);
        }
        let result = match call.body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            // A POST without a body still says so (Content-Length: 0).
            None if call.method == "POST" => req.send_bytes(&[]),
            None => req.call(),
        };
        match result {
            Ok(r) if (300..400).contains(&r.status()) => Err(Error::Redirect {
                what: call.what.to_string(),
                status: r.status(),
                location: r.header("location").map(|l| l.chars().take(200).collect()),
            }),
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, r)) => Err(answer_error(call.what, status, r)),
            Err(ureq::Error::Transport(t)) => Err(transport_error(call.what, t)),
        }
    }
}

/// The answer's body as `T`.
pub(crate) fn read_json<T: DeserializeOwned>(r: ureq::Response, what: &str) -> Result<T> {
    let text = r.into_string().map_err(|e| {
        let kind = if timed_out(&e) {
            TransportKind::Timeout
        } else {
            TransportKind::Io
        };
        Error::Transport {
            what: what.to_string(),
            message: format!("reading the answer: {kind}"),
            kind,
            source: Some(Box::new(e)),
        }
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Protocol {
        what: what.to_string(),
        message: format!("the answer is not the expected JSON: {e}"),
    })
}

/// A request without an answer, classified from the HTTP client's error and the I/O or TLS error
/// under it; the HTTP client's error stays as the source.
fn transport_error(what: &str, t: ureq::Transport) -> Error {
    let (mut timeout, mut tls) = (false, false);
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&t);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timeout |= timed_out(io);
            // An I/O error's `source()` skips the error it wraps: look at that one too.
            tls |= io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
        }
        tls |= e.is::<rustls::Error>();
        next = e.source();
    }
    let kind = match t.kind() {
        ureq::ErrorKind::Dns => TransportKind::Dns,
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::ProxyConnect if tls => TransportKind::Tls,
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::ProxyConnect if timeout => TransportKind::ConnectTimeout,
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::ProxyConnect => TransportKind::Connect,
        _ if tls => TransportKind::Tls,
        _ if timeout => TransportKind::Timeout,
        _ => TransportKind::Io,
    };
    Error::Transport {
        what: what.to_string(),
        message: kind.to_string(),
        kind,
        source: Some(Box::new(t)),
    }
}

/// A read or connect that ran out of time (a socket timeout shows as `WouldBlock` on some systems).
fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
}

/// `Retry-After` in seconds (the service's form; an HTTP date is not used by DPS).
fn retry_after_header(r: &ureq::Response) -> Option<Duration> {
    r.header("retry-after")?.trim().parse().ok().map(Duration::from_secs)
}

fn answer_error(what: &str, status: u16, r: ureq::Response) -> Error {
    let header_code = r.header(ERROR_CODE_HEADER).and_then(|c| c.trim().parse::<i64>().ok());
    let header_wait = retry_after_header(&r);
    let text = r.into_string().unwrap_or_default();
    let details: ErrorDetails = serde_json::from_str(&text).unwrap_or_default();
    let retry_after = header_wait.or_else(|| details.retry_after_secs().map(Duration::from_secs));
    let code = details.error_code.or(header_code);
    let mut message = details.message.clone().unwrap_or_else(|| {
        let t: String = text.chars().take(200).collect();
        if t.is_empty() { "(no message)".into() } else { t }
    });
    if let Some(t) = &details.tracking_id {
        message.push_str(&format!(" (trackingId {t})"));
    }
    let (what, details) = (what.to_string(), Box::new(details));
    // Error::Service shows the code itself; the others carry it in their message.
    if let (Some(c), 401 | 403 | 404 | 412) = (code, status) {
        message.push_str(&format!(" (errorCode {c})"));
    }
    match status {
        404 => Error::NotFound { what, message, details },
        412 => Error::PreconditionFailed { what, message, details },
        401 => Error::Unauthorized { message, details },
        403 => Error::Forbidden { message, details },
        _ => Error::Service {
            what,
            status,
            code,
            message,
            retry_after,
            details,
        },
    }
}
