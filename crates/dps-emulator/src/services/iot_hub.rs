//! The IoT Hub endpoints of the emulator, served on the assigned hub's "host" (the MQTT listeners; a CONNECT
//! username `{hub}/{deviceId}/?api-version=...` names the hub session, DPS's has `/registrations/` in it):
//!
//! - `SESSION /devices/{deviceId}` with `Host: {assignedHub}` (the device's CONNECT): the device id must be
//!   the one the emulator assigned to a registration on this hub; then, as IoT Hub checks it, with an
//!   `Authorization` (the CONNECT password) a SAS token for `{hub}/devices/{deviceId}`, unexpired, without
//!   `skn`, signed with the key DPS registered the device with (the individual enrollment's primary or
//!   secondary key, or the key derived from the group's; for a TPM registration the hub key its assignment
//!   activated in the TPM, kept in the store); else the TLS client chain: a certificate the
//!   emulator issued to that device, or the x509 credential that DPS admitted (CA-signed or the enrolled
//!   leaf). `204` admits; `401` (CONNACK 5) refuses.
//! - Every later request of the session is checked again the same way (IoT Hub drops a session whose token
//!   expired).
//! - `POST /devices/{deviceId}/credentials/issueCertificate` with `{"id", "csr", "replace"?}`: `202
//!   {"correlationId", "operationExpires"}`, then after [`crate::IssuanceOptions::credentials_delay`] a second
//!   answer `200 {"certificates": [base64 DER, leaf first]}`. While an operation is in progress, a request
//!   without `replace` gets 409005; a bad CSR 400040; a throttled one 429 (429002, `Retry-After: 1`). x509
//!   sessions only.
//! - Device-to-cloud messages and the twin: `hub_devices.rs`.
//! - Over HTTPS only the service call `GET /devices/{deviceId}/messages/events?api-version=...` (the
//!   emulator's own: IoT Hub hands D2C messages to Event Hubs), with a service SAS token of a policy holding
//!   `RegistrationStatusRead`: `200 [{"deviceId", "properties": [[name, value]], "body": base64}]`.

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
use crate::services::hub_devices::{HubDevices, HubMessage};
use crate::services::service_policies::{self, ServicePolicy, ServiceRight};

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
    devices: Arc<HubDevices>,
    policies: Vec<ServicePolicy>,
}

/// How a session authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// A SAS token that expires at this time (seconds since the epoch).
    Sas(u64),
    X509,
}

/// The header of a session's `204` that says when its credentials expire (seconds since the epoch): the
/// listener closes the session then, as IoT Hub drops a device whose token expired.
pub(crate) const SESSION_EXPIRES_HEADER: &str = "x-emulator-session-expires";

impl Service for IotHub {
    fn handle(&self, request: &Request, segments: &[&str]) -> Option<Response> {
        if !request.client.transport.has_sessions() {
            // Over HTTPS only the service call reading D2C messages; the device paths stay 404 there.
            return match segments {
                ["devices", device_id, "messages", "events"] => Some(self.read_messages(request, device_id)),
                _ => None,
            };
        }
        let method = request.method.as_str();
        let response = match segments {
            ["devices", device_id] if method == SESSION => match self.authenticate(request, device_id) {
                Ok(Credential::Sas(expiry)) => {
                    Response::empty(204).with_header(SESSION_EXPIRES_HEADER, expiry.to_string())
                }
                Ok(Credential::X509) => Response::empty(204),
                Err(refused) => refused,
            },
            ["devices", device_id, "credentials", "issueCertificate"] if method == "POST" => {
                self.issue_certificate(request, device_id)
            }
            ["devices", device_id, "messages", "events"] if method == "POST" => {
                self.checked(request, device_id, |id| {
                    self.devices.receive(HubMessage {
                        device_id: id.to_string(),
                        properties: properties(request.header(PROPERTIES_HEADER).unwrap_or_default()),
                        body: request.body.clone(),
                    });
                    Response::empty(204)
                })
            }
            ["devices", device_id, "twin"] if method == "GET" => {
                self.checked(request, device_id, |id| self.devices.twin(id))
            }
            ["devices", device_id, "twin", "properties", "reported"] if method == "PATCH" => {
                self.checked(request, device_id, |id| self.devices.patch_reported(id, &request.body))
            }
            ["devices", ..] => error(404, 404001, format!("no such resource: {}", request.path)),
            _ => return None,
        };
        Some(response)
    }
}

/// The header in which a listener hands over a D2C message's property bag as sent (`a=1&%24.ct=...`).
pub(crate) const PROPERTIES_HEADER: &str = "x-emulator-message-properties";

/// A property bag decoded into (name, value) pairs; a pair that does not decode is kept as sent.
fn properties(bag: &str) -> Vec<(String, String)> {
    let decode = |s: &str| hsm_core::sas::url_decode(s).unwrap_or_else(|_| s.to_string());
    bag.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A path segment percent-decoded (the listeners encode the device id).
fn decoded(segment: &str) -> String {
    hsm_core::sas::url_decode(segment).unwrap_or_else(|_| segment.to_string())
}

impl IotHub {
    pub(crate) fn new(
        enrollments: Arc<Enrollments>,
        issuer: Arc<CertificateIssuer>,
        options: &IssuanceOptions,
        devices: Arc<HubDevices>,
        policies: Vec<ServicePolicy>,
    ) -> Self {
        IotHub {
            devices,
            policies,
            enrollments,
            issuer,
            credentials_delay: options.credentials_delay,
            throttle: AtomicU32::new(options.credentials_throttle),
            pending: Arc::new(Pending::default()),
        }
    }

    /// Check the session's credentials for `device_id` (percent-encoded) as IoT Hub does (see the module
    /// documentation); the error is the refusal.
    fn authenticate(&self, request: &Request, device_id: &str) -> Result<Credential, Response> {
        let device_id = decoded(device_id);
        let assigned = &self.enrollments.assigned_hub;
        // An AMQP link may name no hub (`/devices/{id}/...`, as Node's client addresses them; the hub is then
        // the AMQP open's host name, which the listener does not see): the assigned one.
        let hub = request.header("host").unwrap_or(assigned);
        if !hub.eq_ignore_ascii_case(assigned) {
            return Err(error(
                404,
                404001,
                format!("hub '{hub}' is not the assigned hub '{assigned}'"),
            ));
        }
        let refused = |m: String| {
            tracing::info!(device_id, message = %m, "IoT Hub session refused");
            error(401, 401003, m)
        };
        let registration = self
            .enrollments
            .store
            .read(|tx| tx.registration_of_device(&device_id))
            .map_err(|e| error(500, 500001, format!("the registrations cannot be read: {e}")))?;
        let registration_id = match registration {
            Some((id, state))
                if state.status == Some(dps_wire::service::EnrollmentStatus::Assigned)
                    && state
                        .assigned_hub
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(assigned)) =>
            {
                id
            }
            _ => {
                return Err(refused(format!(
                    "IotHub '{assigned}' does not contain the specified device '{device_id}' (no registration \
                     was assigned that device id)"
                )));
            }
        };
        let live = self
            .enrollments
            .live()
            .map_err(|m| refused(format!("the enrollments cannot be read: {m}")))?;
        if let Some(password) = request.header("authorization") {
            let token = crate::device_sas::check_hub_sas_claims(assigned, &device_id, password).map_err(refused)?;
            if live.trust.tpm.is_enrolled(&registration_id) {
                self.verify_tpm_hub_key(&registration_id, &token).map_err(refused)?;
            } else {
                live.trust
                    .verify_device_key(&registration_id, &token)
                    .map_err(|Denied(m)| refused(m))?;
            }
            return Ok(Credential::Sas(token.expiry));
        }
        let Some(leaf) = request.client.chain().and_then(<[_]>::first) else {
            return Err(refused(
                "no credentials: send a SAS token as the password or present a client certificate".into(),
            ));
        };
        if let Err(not_issued) = self.issuer.admits(leaf, &device_id) {
            live.trust
                .authenticate(&registration_id, None, request.client.chain())
                .map_err(|Denied(onboarding)| {
                    refused(format!("{not_issued}; as an onboarding credential: {onboarding}"))
                })?;
        }
        Ok(Credential::X509)
    }

    /// A TPM device's hub SAS token: signed (in its TPM) with the hub key its last assignment activated.
    fn verify_tpm_hub_key(&self, registration_id: &str, token: &hsm_core::sas::SasToken) -> Result<(), String> {
        let key = self
            .enrollments
            .store
            .read(|tx| tx.hub_key(registration_id))
            .map_err(|e| format!("the hub keys cannot be read: {e}"))?
            .ok_or_else(|| {
                format!("TPM registration '{registration_id}' has no hub key: its assignment activated none")
            })?;
        if token.verify(&key) {
            Ok(())
        } else {
            Err(format!(
                "SAS signature does not match the hub key the assignment of TPM registration '{registration_id}' \
                 activated"
            ))
        }
    }

    /// Answer `answer(device id)` if the session's credentials still hold, else the refusal.
    fn checked(&self, request: &Request, device_id: &str, answer: impl FnOnce(&str) -> Response) -> Response {
        match self.authenticate(request, device_id) {
            Ok(_) => answer(&decoded(device_id)),
            Err(r) => r,
        }
    }

    /// The service call: the kept D2C messages of a device.
    fn read_messages(&self, request: &Request, device_id: &str) -> Response {
        if request.method != "GET" {
            return error(405, 405001, "use GET to read messages").with_header("Allow", "GET");
        }
        if let Err(refused) = service_policies::check(
            &self.policies,
            request.header("authorization"),
            request.header("host"),
            ServiceRight::RegistrationStatusRead,
        ) {
            let code = if refused.status == 401 { 401002 } else { 403001 };
            return error(refused.status, code, refused.message);
        }
        if !request.has_api_version() {
            return error(400, 400004, "missing query parameter api-version");
        }
        Response::json(200, &self.devices.messages(Some(&decoded(device_id))))
    }

    fn issue_certificate(&self, request: &Request, device_id: &str) -> Response {
        let fail = |status: u16, code: u32, message: String| {
            tracing::info!(device_id, status, code, %message, "credentials request refused");
            error(status, code, message)
        };
        match self.authenticate(request, device_id) {
            Ok(Credential::X509) => {}
            Ok(Credential::Sas(_)) => {
                return fail(
                    401,
                    401002,
                    "no client certificate: IoT Hub credentials need an x509 client".into(),
                );
            }
            Err(r) => return r,
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
