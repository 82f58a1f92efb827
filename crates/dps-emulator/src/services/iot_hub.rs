//! The IoT Hub endpoints of the emulator: certificate renewal (`$iothub/credentials` in Azure, served on the
//! IoT hub's host; here on the emulator's MQTT listeners, told apart from DPS by the CONNECT username).
//!
//! - `SESSION /devices/{deviceId}` with `Host: {assignedHub}`: `204` when the TLS client certificate is one
//!   the emulator issued to that device id or the device's onboarding x509 credential (as DPS would accept it).
//! - `POST /devices/{deviceId}/credentials/issueCertificate` with `{"id", "csr", "replace"?}`: `202
//!   {"correlationId", "operationExpires"}`, then after [`crate::IssuanceOptions::credentials_delay`] a second
//!   answer `200 {"certificates": [base64 DER, leaf first]}`. While an operation is in progress, a request
//!   without `replace` gets 409005; a bad CSR 400040; a throttled one 429 (429002, `Retry-After: 1`).
//!
//! Not served over HTTPS (those paths are 404 there, as before).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use dps_wire::device::credentials::{CredentialsRequest, CredentialsResponse};

use crate::device_auth::Denied;
use crate::enrollments::{Enrollments, lock};
use crate::issuance::{CertificateIssuer, IssuanceOptions, Refused};
use crate::request::{Later, Request, Response, SESSION, Service, error, error_with_info};

/// Operations in progress, per device id: (operation number, until when).
#[derive(Default)]
struct Pending {
    next: AtomicU64,
    by_device: Mutex<HashMap<String, (u64, Instant)>>,
}

pub(crate) struct IotHub {
    enrollments: Arc<Enrollments>,
    issuer: Arc<CertificateIssuer>,
    credentials_delay: Duration,
    /// Requests still to be throttled.
    throttle: AtomicU32,
    pending: Arc<Pending>,
}

impl Service for IotHub {
    fn handle(&self, request: &Request, segments: &[&str]) -> Option<Response> {
        // Served where sessions are (MQTT): over HTTPS these paths stay 404, as before.
        if !request.client.transport.has_sessions() {
            return None;
        }
        match segments {
            ["devices", device_id] if request.method == SESSION => Some(self.open_session(request, device_id)),
            ["devices", device_id, "credentials", "issueCertificate"] if request.method == "POST" => {
                Some(self.issue_certificate(request, device_id))
            }
            ["devices", ..] => Some(error(404, 404001, format!("no such resource: {}", request.path))),
            _ => None,
        }
    }
}

impl IotHub {
    pub(crate) fn new(
        enrollments: Arc<Enrollments>,
        issuer: Arc<CertificateIssuer>,
        options: &IssuanceOptions,
    ) -> Self {
        IotHub {
            enrollments,
            issuer,
            credentials_delay: options.credentials_delay,
            throttle: AtomicU32::new(options.credentials_throttle),
            pending: Arc::new(Pending::default()),
        }
    }

    /// The device's hub and its TLS client certificate: issued by the emulator to `device_id`, or the
    /// device's onboarding x509 credential.
    fn authenticate(&self, request: &Request, device_id: &str) -> Result<(), Response> {
        let hub = request.header("host").unwrap_or_default();
        let assigned = &self.enrollments.assigned_hub;
        if !hub.eq_ignore_ascii_case(assigned) {
            return Err(error(
                404,
                404001,
                format!("hub '{hub}' is not the assigned hub '{assigned}'"),
            ));
        }
        let refused = |m: String| error(401, 401002, m);
        let Some(leaf) = request.client.chain().and_then(<[_]>::first) else {
            return Err(refused(
                "no client certificate: IoT Hub credentials need an x509 client".into(),
            ));
        };
        if let Err(not_issued) = self.issuer.admits(leaf, device_id) {
            let live = self
                .enrollments
                .live()
                .map_err(|m| refused(format!("{not_issued}; the enrollments cannot be read: {m}")))?;
            live.trust
                .authenticate(device_id, None, request.client.chain())
                .map_err(|Denied(onboarding)| {
                    refused(format!("{not_issued}; as an onboarding credential: {onboarding}"))
                })?;
        }
        Ok(())
    }

    fn open_session(&self, request: &Request, device_id: &str) -> Response {
        match self.authenticate(request, device_id) {
            Ok(()) => Response::empty(204),
            Err(r) => r,
        }
    }

    fn issue_certificate(&self, request: &Request, device_id: &str) -> Response {
        let fail = |status: u16, code: u32, message: String| {
            tracing::info!(device_id, status, code, %message, "credentials request refused");
            error(status, code, message)
        };
        if let Err(r) = self.authenticate(request, device_id) {
            return r;
        }
        let payload = &request.body;
        if !serde_json::from_slice::<serde_json::Value>(payload).is_ok_and(|v| v.is_object()) {
            return fail(400, 400004, "the request body is not a JSON object".into());
        }
        let body: CredentialsRequest = match serde_json::from_slice(payload) {
            Ok(b) => b,
            // A request without a csr (or with one that is not a string) is the 400040 of a bad csr.
            Err(e) if e.to_string().contains("csr") => {
                return fail(400, 400040, format!("the request has no csr (base64 DER PKCS#10): {e}"));
            }
            Err(e) => return fail(400, 400004, format!("the request is not a credentials request: {e}")),
        };
        if body.id != device_id {
            return fail(
                400,
                400004,
                format!(
                    "the request's id {:?} is not the connected device '{device_id}'",
                    body.id
                ),
            );
        }
        let der = match B64.decode(body.csr.trim()) {
            Ok(d) => d,
            Err(e) => return fail(400, 400040, format!("csr is not base64 DER: {e}")),
        };
        let throttled = self
            .throttle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if throttled {
            tracing::info!(device_id, "credentials request throttled");
            return error_with_info(
                429,
                429002,
                "too many requests: retry later",
                Some(vec![("retryAfter", "1".to_string())]),
            );
        }
        let replace = body.replace.is_some();
        let op = {
            let mut pending = lock(&self.pending.by_device);
            let now = Instant::now();
            if let Some((_, until)) = pending.get(device_id) {
                if *until > now && !replace {
                    drop(pending);
                    return fail(
                        409,
                        409005,
                        "a certificate operation is already in progress for this device: send replace to replace it"
                            .into(),
                    );
                }
            }
            let op = self.pending.next.fetch_add(1, Ordering::Relaxed);
            pending.insert(device_id.to_string(), (op, now + self.credentials_delay));
            op
        };
        let chain = match self.issuer.issue(&der, device_id) {
            Ok(c) => c,
            Err(Refused(m)) => {
                self.pending.done(device_id, op);
                return fail(400, 400040, m);
            }
        };
        let correlation = format!("{op}");
        let expires = crate::ids_and_times::rfc3339_from_unix(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_add(self.credentials_delay.as_secs() + 60),
        );
        let accepted = CredentialsResponse {
            correlation_id: Some(correlation.clone()),
            operation_expires: Some(expires),
            ..CredentialsResponse::default()
        };
        let pending = self.pending.clone();
        let device_id = device_id.to_string();
        let issued = move || {
            let replaced = lock(&pending.by_device).get(&device_id).is_some_and(|(o, _)| *o != op);
            if replaced {
                // A later request with `replace` took over: this one ends without certificates.
                tracing::info!(device_id, "credentials operation replaced");
                return error(409, 409005, "the operation was replaced by a later request");
            }
            pending.done(&device_id, op);
            tracing::info!(device_id, "certificate issued over $iothub/credentials");
            let issued = CredentialsResponse {
                correlation_id: Some(correlation),
                certificates: Some(chain.iter().map(|c| B64.encode(c)).collect()),
                ..CredentialsResponse::default()
            };
            Response::json(200, &issued)
        };
        let mut response = Response::json(202, &accepted);
        response.later = Some(Later {
            after: self.credentials_delay,
            answer: Box::new(issued),
        });
        response
    }
}

impl Pending {
    /// Operation `op` of `device_id` ended (unless a later one replaced it).
    fn done(&self, device_id: &str, op: u64) {
        let mut pending = lock(&self.by_device);
        if pending.get(device_id).is_some_and(|(o, _)| *o == op) {
            pending.remove(device_id);
        }
    }
}
