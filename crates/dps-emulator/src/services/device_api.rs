//! The DPS device API: register (with the TPM activation challenge and certificate issuance), poll the
//! operation, look up the registration status; and the session check of transports that authenticate once per
//! connection.
//!
//! - `PUT /{idScope}/registrations/{registrationId}/register?api-version=...`
//! - `GET /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=...`
//! - `POST /{idScope}/registrations/{registrationId}?api-version=...` (DeviceRegistrationStatusLookup)
//! - `SESSION /{idScope}/registrations/{registrationId}` (not over HTTPS): `204` when the credentials admit the
//!   device (the SAS token in `Authorization`, else the TLS client chain); TPM devices are refused where the
//!   transport does not carry TPM attestation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use dps_wire::device::{DeviceRegistration, DeviceRegistrationResult, EnrollmentStatus, RegistrationOperationStatus};
use dps_wire::service::{AssignedDeviceSubstatus, DeviceRegistrationState};
use serde_json::Value;

use crate::device_auth::{Admitted, Denied};
use crate::enrollments::{Enrollments, Live, lock};
use crate::ids_and_times::now_rfc3339;
use crate::issuance::{CertificateIssuer, FIRST_ISSUING_API_VERSION, Refused};
use crate::records::{self, Kind};
use crate::request::{Request, Response, SESSION, Service, error, fresh_id};
use crate::store::StoreError;

/// A registration request accepted and not yet polled to completion.
struct Operation {
    registration_id: String,
    /// The device's `payload`, returned in the assignment as a custom allocation policy would.
    payload: Option<Value>,
    /// The enrollment group that admitted the device, if a group did.
    group: Option<String>,
    /// The enrollment that admitted the device is disabled: the operation ends `disabled`.
    disabled: bool,
    /// `issuedCertificateChain` (base64 DER, leaf first) when the registration carried a `csr`.
    issued: Option<Vec<String>>,
}

pub(crate) struct DeviceApi {
    enrollments: Arc<Enrollments>,
    /// `Retry-After` of `assigning` answers, in seconds.
    retry_after: u64,
    operations: Mutex<HashMap<String, Operation>>,
    /// Signs the CSRs of registrations (see `issuance.rs`).
    issuer: Arc<CertificateIssuer>,
}

enum Route<'a> {
    Register {
        registration_id: &'a str,
    },
    Operation {
        registration_id: &'a str,
        operation_id: &'a str,
    },
    /// `POST /{idScope}/registrations/{registrationId}`: DeviceRegistrationStatusLookup; `SESSION`: the
    /// session check.
    Registration {
        registration_id: &'a str,
    },
}

impl Service for DeviceApi {
    fn handle(&self, request: &Request, segments: &[&str]) -> Option<Response> {
        let (scope, route) = match segments {
            [scope, "registrations", registration_id, "register"] => (*scope, Route::Register { registration_id }),
            [scope, "registrations", registration_id, "operations", operation_id] => (
                *scope,
                Route::Operation {
                    registration_id,
                    operation_id,
                },
            ),
            [scope, "registrations", registration_id] => (*scope, Route::Registration { registration_id }),
            _ => return None,
        };
        Some(self.route(request, scope, route))
    }
}

impl DeviceApi {
    pub(crate) fn new(
        enrollments: Arc<Enrollments>,
        retry_after: std::time::Duration,
        issuer: Arc<CertificateIssuer>,
    ) -> Self {
        DeviceApi {
            enrollments,
            retry_after: retry_after.as_secs(),
            operations: Mutex::new(HashMap::new()),
            issuer,
        }
    }

    fn route(&self, request: &Request, scope: &str, route: Route<'_>) -> Response {
        if let Route::Registration { registration_id } = route {
            if request.method == SESSION && request.client.transport.has_sessions() {
                return self.open_session(request, registration_id);
            }
        }
        let allowed = match route {
            Route::Register { .. } => "PUT",
            Route::Operation { .. } => "GET",
            Route::Registration { .. } => "POST",
        };
        if request.method != allowed {
            return error(
                405,
                405001,
                format!(
                    "method {} is not allowed on {}: use {allowed}",
                    request.method, request.path
                ),
            )
            .with_header("Allow", allowed);
        }
        if !scope.eq_ignore_ascii_case(&self.enrollments.id_scope) {
            return error(404, 404001, format!("unknown id scope '{scope}'"));
        }
        if !request.has_api_version() {
            return error(400, 400004, "missing query parameter api-version");
        }
        match route {
            Route::Register { registration_id } => self.register(request, registration_id),
            Route::Operation {
                registration_id,
                operation_id,
            } => self.poll(request, registration_id, operation_id),
            Route::Registration { registration_id } => self.status_lookup(request, registration_id),
        }
    }

    /// May the client open a session for this registration: its credentials admit it, and a TPM device
    /// only where the transport carries TPM attestation.
    fn open_session(&self, request: &Request, raw_id: &str) -> Response {
        let registration_id = match decode_segment(raw_id) {
            Ok(id) => id,
            Err(r) => return r,
        };
        let live = match self.enrollments.live() {
            Ok(l) => l,
            Err(message) => return error(503, 503000, message),
        };
        let transport = request.client.transport;
        if live.trust.tpm.is_enrolled(&registration_id) && !transport.carries_tpm() {
            return error(
                401,
                401002,
                format!("TPM attestation is not supported over {} (use HTTPS)", transport.name()),
            );
        }
        match authenticate(&live, request, &registration_id) {
            Ok(_) => Response::empty(204),
            Err(r) => r,
        }
    }

    /// The registration state of an assigned device, as DeviceRegistrationStatusLookup returns it: never
    /// an `issuedCertificateChain`, and a `csr` in the body is a bad request (the spec says both).
    fn status_lookup(&self, request: &Request, raw_id: &str) -> Response {
        let registration_id = match decode_segment(raw_id) {
            Ok(id) => id,
            Err(r) => return r,
        };
        if !request.body.is_empty() {
            match serde_json::from_slice::<DeviceRegistration>(&request.body) {
                Ok(body) if body.csr.is_some() => {
                    return error(400, 400004, "a status lookup must not carry a csr");
                }
                Ok(_) => {}
                Err(e) => {
                    return error(
                        400,
                        400004,
                        format!("request body must be a JSON object (a DeviceRegistration): {e}"),
                    );
                }
            }
        }
        let live = match self.enrollments.live() {
            Ok(l) => l,
            Err(message) => return error(500, 500000, message),
        };
        if let Err(r) = authenticate(&live, request, &registration_id) {
            return r;
        }
        // The stored state is what the last registration recorded; the chain is never part of it.
        match self.enrollments.store.read(|tx| tx.registration(&registration_id)) {
            Ok(Some(state)) => Response::json(200, &DeviceRegistrationResult::from(state)),
            Ok(None) => error(404, 404001, format!("no registration for '{registration_id}'")),
            Err(e) => error(500, 500000, e.0),
        }
    }

    fn register(&self, request: &Request, raw_id: &str) -> Response {
        let registration_id = match decode_segment(raw_id) {
            Ok(id) => id,
            Err(r) => return r,
        };
        if request.body.is_empty() {
            return error(400, 400004, "missing request body: expected {\"registrationId\": ...}");
        }
        let body: Value = match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(e) => return error(400, 400004, format!("request body is not valid JSON: {e}")),
        };
        if !body.is_object() {
            return error(400, 400004, "request body must be a JSON object");
        }
        let body: DeviceRegistration = match serde_json::from_value(body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    400,
                    400004,
                    format!(
                        "request body is not a DeviceRegistration ({e}): registrationId and csr must be a string, \
                         tpm and payload an object"
                    ),
                );
            }
        };
        let transport = request.client.transport;
        if body.tpm.is_some() && !transport.carries_tpm() {
            return error(
                400,
                400004,
                format!("TPM attestation is not supported over {} (use HTTPS)", transport.name()),
            );
        }
        let Some(body_id) = body.registration_id.as_deref() else {
            return error(400, 400004, "request body has no string field registrationId");
        };
        if body_id != registration_id {
            return error(
                400,
                400004,
                format!("registrationId '{body_id}' in the body does not match '{registration_id}' in the path"),
            );
        }
        let live = match self.enrollments.live() {
            Ok(l) => l,
            Err(message) => return error(500, 500000, message),
        };
        let admitted = match &body.tpm {
            Some(tpm) => match live
                .trust
                .tpm
                .register(&registration_id, tpm, request.header("authorization"))
            {
                Ok(crate::tpm_attestation::Step::Challenge(body)) => return Response::json(401, &body),
                Ok(crate::tpm_attestation::Step::Admitted) => Admitted::TpmIndividual,
                Err(message) => {
                    tracing::info!(registration_id, %message, "TPM authentication failed");
                    return unauthorized(message);
                }
            },
            None => match authenticate(&live, request, &registration_id) {
                Ok(a) => a,
                Err(r) => return r,
            },
        };
        let disabled = live.is_disabled(&registration_id, &admitted);
        let group = match &admitted {
            Admitted::X509Group(g) | Admitted::SymmetricGroup(g) => Some(g.clone()),
            _ => None,
        };
        let issued = match &body.csr {
            Some(csr) if !disabled => match self.registration_csr(request, csr, &registration_id) {
                Ok(chain) => Some(chain),
                Err(r) => return r,
            },
            _ => None,
        };
        let operation_id = match fresh_id() {
            Ok(id) => format!("4.{}", id.replace('-', "")),
            Err(r) => return r,
        };
        tracing::info!(registration_id, ?admitted, operation_id, "registration accepted");
        lock(&self.operations).insert(
            operation_id.clone(),
            Operation {
                registration_id: registration_id.clone(),
                payload: body.payload.filter(Value::is_object),
                group,
                disabled,
                issued,
            },
        );
        let answer = RegistrationOperationStatus {
            operation_id,
            status: Some(EnrollmentStatus::Assigning),
            ..RegistrationOperationStatus::default()
        };
        Response::json(202, &answer).with_header("Retry-After", self.retry_after.to_string())
    }

    fn poll(&self, request: &Request, raw_id: &str, raw_operation_id: &str) -> Response {
        let registration_id = match decode_segment(raw_id) {
            Ok(id) => id,
            Err(r) => return r,
        };
        // Clients URL-encode the operation id in the path (the C SDK does).
        let operation_id = match hsm_core::sas::url_decode(raw_operation_id) {
            Ok(id) => id,
            Err(e) => return error(400, 400004, format!("operation id in the path: {e}")),
        };
        let operation_id = operation_id.as_str();
        let live = match self.enrollments.live() {
            Ok(l) => l,
            Err(message) => return error(500, 500000, message),
        };
        if let Err(r) = authenticate(&live, request, &registration_id) {
            return r;
        }
        let operation = match lock(&self.operations).get(operation_id) {
            Some(op) if op.registration_id == registration_id => {
                Some((op.payload.clone(), op.group.clone(), op.disabled, op.issued.clone()))
            }
            _ => None,
        };
        let Some((payload, group, disabled, issued)) = operation else {
            return error(
                404,
                404002,
                format!("unknown operation id '{operation_id}' for registration id '{registration_id}'"),
            );
        };
        let now = now_rfc3339();
        let etag = match fresh_id() {
            Ok(id) => format!("\"{id}\""),
            Err(r) => return r,
        };
        let (tpm, hub_key) = match live.trust.tpm.assignment(&registration_id) {
            Ok(Some((node, key))) => (Some(node), Some(key)),
            Ok(None) => (None, None),
            Err(message) => return error(500, 500000, message),
        };
        // The state is recorded (durably) before the device is told.
        let recorded = self.enrollments.store.write(|tx| {
            // An individual enrollment names the device id it assigns; the registration id otherwise.
            let device_id = match &group {
                None => tx
                    .get(Kind::Enrollment, &registration_id)?
                    .and_then(|r| match r {
                        records::Record::Enrollment(e) => e.device_id,
                        records::Record::Group(_) => None,
                    })
                    .filter(|d| !d.is_empty()),
                Some(_) => None,
            }
            .unwrap_or_else(|| registration_id.clone());
            let previous = tx.registration(&registration_id)?;
            let created = previous
                .and_then(|p| p.created_date_time_utc)
                .unwrap_or_else(|| now.clone());
            let mut state = DeviceRegistrationState {
                registration_id: Some(registration_id.clone()),
                created_date_time_utc: Some(created),
                last_updated_date_time_utc: Some(now.clone()),
                etag: Some(etag.clone()),
                ..DeviceRegistrationState::default()
            };
            if disabled {
                state.status = Some(dps_wire::service::EnrollmentStatus::Disabled);
                state.error_message = Some(format!(
                    "the enrollment of '{registration_id}' is disabled (provisioningStatus: disabled)"
                ));
            } else {
                state.assigned_hub = Some(self.enrollments.assigned_hub.clone());
                state.device_id = Some(device_id);
                state.status = Some(dps_wire::service::EnrollmentStatus::Assigned);
                state.substatus = Some(AssignedDeviceSubstatus::InitialAssignment);
            }
            tx.put_registration(&registration_id, group.as_deref(), &state)?;
            // The hub key goes with the state it was assigned with (a later non-TPM assignment drops it).
            let hub_key = hub_key.as_deref().map(Vec::as_slice).filter(|_| !disabled);
            tx.put_hub_key(&registration_id, hub_key)?;
            Ok::<_, StoreError>(state)
        });
        let mut state = match recorded {
            Ok(s) => DeviceRegistrationResult::from(s),
            Err(e) => return error(500, 500000, e.0),
        };
        let answer = |status, state| RegistrationOperationStatus {
            operation_id: operation_id.to_string(),
            status: Some(status),
            registration_state: Some(state),
            extra: serde_json::Map::new(),
        };
        if disabled {
            tracing::info!(registration_id, "registration refused: the enrollment is disabled");
            return Response::json(200, &answer(EnrollmentStatus::Disabled, state));
        }
        state.tpm = tpm;
        state.payload = payload;
        state.issued_certificate_chain = issued;
        Response::json(200, &answer(EnrollmentStatus::Assigned, state))
    }

    /// The `csr` of a registration body: checked and signed, as base64 DER (leaf first), or the 400 answer
    /// (errorCode 400004, the DPS code for a bad request body, with a message naming what was wrong).
    fn registration_csr(&self, request: &Request, csr: &str, registration_id: &str) -> Result<Vec<String>, Response> {
        let bad = |m: String| error(400, 400004, m);
        let version = request.query_param("api-version").unwrap_or_default();
        // Versions are dates: `2025-07-01-preview` and every later one know the field.
        if version
            .get(..10)
            .is_none_or(|date| date < &FIRST_ISSUING_API_VERSION[..10])
        {
            return Err(bad(format!(
                "the request has a csr but api-version {version:?} does not know it \
                 (use {FIRST_ISSUING_API_VERSION} or later)"
            )));
        }
        if csr.contains("-----BEGIN") {
            return Err(bad("csr must be base64 DER PKCS#10 without PEM armour".into()));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(csr.trim())
            .map_err(|e| bad(format!("csr is not base64: {e}")))?;
        let chain = self.issuer.issue(&der, registration_id).map_err(|Refused(m)| {
            tracing::info!(registration_id, message = %m, "CSR refused");
            bad(m)
        })?;
        Ok(chain
            .iter()
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
            .collect())
    }
}

fn authenticate(live: &Live, request: &Request, registration_id: &str) -> Result<Admitted, Response> {
    live.trust
        .authenticate(registration_id, request.header("authorization"), request.client.chain())
        .map_err(|Denied(message)| {
            tracing::info!(registration_id, %message, "authentication failed");
            unauthorized(message)
        })
}

fn decode_segment(raw: &str) -> Result<String, Response> {
    let id =
        hsm_core::sas::url_decode(raw).map_err(|e| error(400, 400004, format!("registration id in the path: {e}")))?;
    if id.is_empty() {
        return Err(error(400, 400004, "empty registration id in the path"));
    }
    Ok(id)
}

fn unauthorized(message: impl Into<String>) -> Response {
    error(401, 401002, message)
}
