//! The DPS device REST API: register, poll the operation, and the error answers.

use std::collections::HashMap;
use std::sync::Mutex;

use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

use crate::auth::{Admitted, Denied, Trust};
use crate::http::{Request, Response};

/// A registration request accepted and not yet polled to completion.
struct Operation {
    registration_id: String,
    /// The device's `payload`, returned in the assignment as a custom allocation policy would.
    payload: Option<Value>,
    /// `issuedCertificateChain` (base64 DER, leaf first) when the registration carried a `csr`.
    issued: Option<Vec<String>>,
}

/// What the emulator remembers of a device it assigned.
struct Registration {
    created: String,
    etag: String,
}

pub(crate) struct Service {
    id_scope: String,
    assigned_hub: String,
    /// Also used by the MQTT listener to authenticate CONNECT.
    pub(crate) trust: Trust,
    /// `Retry-After` of `assigning` answers, in seconds.
    retry_after: u64,
    operations: Mutex<HashMap<String, Operation>>,
    registrations: Mutex<HashMap<String, Registration>>,
    /// Signs the CSRs of registrations and IoT Hub credential requests (see `issuance.rs`).
    pub(crate) issuer: Option<std::sync::Arc<crate::issuance::CertificateIssuer>>,
}

enum Route<'a> {
    Register {
        registration_id: &'a str,
    },
    Operation {
        registration_id: &'a str,
        operation_id: &'a str,
    },
    /// `POST /{idScope}/registrations/{registrationId}`: DeviceRegistrationStatusLookup.
    Status {
        registration_id: &'a str,
    },
}

impl Service {
    pub(crate) fn new(id_scope: String, assigned_hub: String, trust: Trust, retry_after: std::time::Duration) -> Self {
        Service {
            id_scope,
            assigned_hub,
            trust,
            retry_after: retry_after.as_secs(),
            operations: Mutex::new(HashMap::new()),
            registrations: Mutex::new(HashMap::new()),
            issuer: None,
        }
    }

    pub(crate) fn assigned_hub(&self) -> &str {
        &self.assigned_hub
    }

    pub(crate) fn with_issuer(mut self, issuer: std::sync::Arc<crate::issuance::CertificateIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Answer one request from a connection that presented `peer_chain` (leaf first), if any.
    pub(crate) fn handle(&self, request: &Request, peer_chain: Option<&[CertificateDer<'static>]>) -> Response {
        let response = self.route(request, peer_chain);
        tracing::info!(
            method = %request.method,
            target = %request.target,
            status = response.status,
            "request"
        );
        response
    }

    fn route(&self, request: &Request, peer_chain: Option<&[CertificateDer<'static>]>) -> Response {
        let (path, query) = request.target.split_once('?').unwrap_or((request.target.as_str(), ""));
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let (scope, route) = match segments.as_slice() {
            [scope, "registrations", registration_id, "register"] => (*scope, Route::Register { registration_id }),
            [scope, "registrations", registration_id, "operations", operation_id] => (
                *scope,
                Route::Operation {
                    registration_id,
                    operation_id,
                },
            ),
            [scope, "registrations", registration_id] => (*scope, Route::Status { registration_id }),
            _ => return error(404, 404001, format!("no such resource: {path}")),
        };
        let allowed = match route {
            Route::Register { .. } => "PUT",
            Route::Operation { .. } => "GET",
            Route::Status { .. } => "POST",
        };
        if request.method != allowed {
            return error(
                405,
                405001,
                format!("method {} is not allowed on {path}: use {allowed}", request.method),
            )
            .with_header("Allow", allowed);
        }
        if !scope.eq_ignore_ascii_case(&self.id_scope) {
            return error(404, 404001, format!("unknown id scope '{scope}'"));
        }
        if !query
            .split('&')
            .any(|p| p.starts_with("api-version=") && p.len() > "api-version=".len())
        {
            return error(400, 400004, "missing query parameter api-version");
        }
        match route {
            Route::Register { registration_id } => self.register(request, registration_id, peer_chain),
            Route::Operation {
                registration_id,
                operation_id,
            } => self.poll(request, registration_id, operation_id, peer_chain),
            Route::Status { registration_id } => self.status_lookup(request, registration_id, peer_chain),
        }
    }

    /// The registration state of an assigned device, as DeviceRegistrationStatusLookup returns it: never
    /// an `issuedCertificateChain`, and a `csr` in the body is a bad request (the spec says both).
    fn status_lookup(
        &self,
        request: &Request,
        raw_id: &str,
        peer_chain: Option<&[CertificateDer<'static>]>,
    ) -> Response {
        let registration_id = match decode_segment(raw_id) {
            Ok(id) => id,
            Err(r) => return r,
        };
        if !request.body.is_empty() {
            match serde_json::from_slice::<Value>(&request.body) {
                Ok(Value::Object(body)) if body.contains_key("csr") => {
                    return error(400, 400004, "a status lookup must not carry a csr");
                }
                Ok(Value::Object(_)) => {}
                _ => return error(400, 400004, "request body must be a JSON object"),
            }
        }
        if let Err(r) = self.authenticate(request, &registration_id, peer_chain) {
            return r;
        }
        let Some((created, etag)) = lock(&self.registrations)
            .get(&registration_id)
            .map(|r| (r.created.clone(), r.etag.clone()))
        else {
            return error(404, 404001, format!("no registration for '{registration_id}'"));
        };
        Response::json(
            200,
            &json!({
                "registrationId": registration_id,
                "createdDateTimeUtc": created,
                "assignedHub": self.assigned_hub,
                "deviceId": registration_id,
                "status": "assigned",
                "substatus": "initialAssignment",
                "lastUpdatedDateTimeUtc": now_rfc3339(),
                "etag": etag,
            }),
        )
    }

    fn register(&self, request: &Request, raw_id: &str, peer_chain: Option<&[CertificateDer<'static>]>) -> Response {
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
        let Some(object) = body.as_object() else {
            return error(400, 400004, "request body must be a JSON object");
        };
        let Some(body_id) = object.get("registrationId").and_then(Value::as_str) else {
            return error(400, 400004, "request body has no string field registrationId");
        };
        if body_id != registration_id {
            return error(
                400,
                400004,
                format!("registrationId '{body_id}' in the body does not match '{registration_id}' in the path"),
            );
        }
        let admitted = match object.get("tpm") {
            Some(tpm) => match self
                .trust
                .tpm
                .register(&registration_id, tpm, request.header("authorization"))
            {
                Ok(crate::tpm::Step::Challenge(body)) => return Response::json(401, &body),
                Ok(crate::tpm::Step::Admitted) => Admitted::TpmIndividual,
                Err(message) => {
                    tracing::info!(registration_id, %message, "TPM authentication failed");
                    return unauthorized(message);
                }
            },
            None => match self.authenticate(request, &registration_id, peer_chain) {
                Ok(a) => a,
                Err(r) => return r,
            },
        };
        let issued = match object.get("csr") {
            Some(csr) => match crate::issuance::registration_csr(self, request, csr, &registration_id) {
                Ok(chain) => Some(chain),
                Err(r) => return r,
            },
            None => None,
        };
        let operation_id = match random_id() {
            Ok(id) => format!("4.{}", id.replace('-', "")),
            Err(r) => return r,
        };
        tracing::info!(registration_id, ?admitted, operation_id, "registration accepted");
        lock(&self.operations).insert(
            operation_id.clone(),
            Operation {
                registration_id: registration_id.clone(),
                payload: object.get("payload").filter(|p| p.is_object()).cloned(),
                issued,
            },
        );
        Response::json(202, &json!({"operationId": operation_id, "status": "assigning"}))
            .with_header("Retry-After", self.retry_after.to_string())
    }

    fn poll(
        &self,
        request: &Request,
        raw_id: &str,
        raw_operation_id: &str,
        peer_chain: Option<&[CertificateDer<'static>]>,
    ) -> Response {
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
        if let Err(r) = self.authenticate(request, &registration_id, peer_chain) {
            return r;
        }
        let found = match lock(&self.operations).get(operation_id) {
            Some(op) if op.registration_id == registration_id => Some((op.payload.clone(), op.issued.clone())),
            _ => None,
        };
        let Some((payload, issued)) = found else {
            return error(
                404,
                404002,
                format!("unknown operation id '{operation_id}' for registration id '{registration_id}'"),
            );
        };
        let now = now_rfc3339();
        let (created, etag) = {
            let mut registrations = lock(&self.registrations);
            let etag = match random_id() {
                Ok(id) => format!("\"{id}\""),
                Err(r) => return r,
            };
            let entry = registrations
                .entry(registration_id.clone())
                .or_insert_with(|| Registration {
                    created: now.clone(),
                    etag: etag.clone(),
                });
            entry.etag = etag;
            (entry.created.clone(), entry.etag.clone())
        };
        let tpm = match self.trust.tpm.assignment(&registration_id) {
            Ok(t) => t,
            Err(message) => return error(500, 500000, message),
        };
        let mut body = json!({
                "operationId": operation_id,
                "status": "assigned",
                "registrationState": {
                    "registrationId": registration_id,
                    "createdDateTimeUtc": created,
                    "assignedHub": self.assigned_hub,
                    "deviceId": registration_id,
                    "status": "assigned",
                    "substatus": "initialAssignment",
                    "lastUpdatedDateTimeUtc": now,
                    "etag": etag,
                },
        });
        if let Some(state) = body.get_mut("registrationState").and_then(Value::as_object_mut) {
            if let Some(tpm) = tpm {
                state.insert("tpm".to_string(), tpm);
            }
            if let Some(payload) = payload {
                state.insert("payload".to_string(), payload);
            }
            if let Some(chain) = issued {
                state.insert("issuedCertificateChain".to_string(), json!(chain));
            }
        }
        Response::json(200, &body)
    }

    fn authenticate(
        &self,
        request: &Request,
        registration_id: &str,
        peer_chain: Option<&[CertificateDer<'static>]>,
    ) -> Result<Admitted, Response> {
        self.trust
            .authenticate(registration_id, request.header("authorization"), peer_chain)
            .map_err(|Denied(message)| {
                tracing::info!(registration_id, %message, "authentication failed");
                unauthorized(message)
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

pub(crate) fn error(status: u16, code: u32, message: impl Into<String>) -> Response {
    let tracking_id = random_id().unwrap_or_else(|_| "00000000-0000-0000-0000-000000000000".to_string());
    Response::json(
        status,
        &json!({
            "errorCode": code,
            "trackingId": tracking_id,
            "message": message.into(),
            "timestampUtc": now_rfc3339(),
        }),
    )
}

/// A random version-4 UUID string.
fn random_id() -> Result<String, Response> {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| {
        Response::json(
            500,
            &json!({"errorCode": 500000, "message": "the system random generator failed"}),
        )
    })?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// Seconds since the epoch as an RFC 3339 UTC time (the number itself when out of range).
pub(crate) fn rfc3339_from_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(|| format!("{secs} (seconds since the epoch)"), format_time)
}

fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
