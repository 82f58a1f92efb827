//! The DPS device REST API: register, poll the operation, and the error answers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use dps_wire::ErrorDetails;
use dps_wire::device::{DeviceRegistration, DeviceRegistrationResult, EnrollmentStatus, RegistrationOperationStatus};
use dps_wire::error::ERROR_CODE_HEADER;
use dps_wire::service::{AssignedDeviceSubstatus, DeviceRegistrationState};
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use crate::auth::{Admitted, Denied, Trust};
use crate::config::EmulatorConfig;
use crate::http::{Request, Response};
use crate::records;
use crate::service_auth::ServicePolicy;
use crate::store::{Kind, Store};

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

/// The enrollments as devices are checked against them now: rebuilt from the store after a change.
pub(crate) struct Live {
    pub(crate) trust: Trust,
    disabled_individual: HashSet<String>,
    disabled_groups: HashSet<String>,
}

impl Live {
    fn is_disabled(&self, registration_id: &str, admitted: &Admitted) -> bool {
        match admitted {
            Admitted::X509Group(g) | Admitted::SymmetricGroup(g) => self.disabled_groups.contains(g),
            _ => self.disabled_individual.contains(registration_id),
        }
    }
}

pub(crate) struct Service {
    id_scope: String,
    assigned_hub: String,
    /// Enrollments, groups and registration states.
    pub(crate) store: Store,
    /// The shared access policies of the service API.
    pub(crate) policies: Vec<ServicePolicy>,
    /// The current trust store (`None` after a change: rebuilt at the next device request).
    live: RwLock<Option<Arc<Live>>>,
    /// The trust store replaced last (its TPM challenges go to the next one).
    previous: Mutex<Option<Arc<Live>>>,
    /// `Retry-After` of `assigning` answers, in seconds.
    retry_after: u64,
    operations: Mutex<HashMap<String, Operation>>,
    /// Signs the CSRs of registrations and IoT Hub credential requests (see `issuance.rs`).
    pub(crate) issuer: Option<Arc<crate::issuance::CertificateIssuer>>,
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
    /// A service over `store`, seeded with the configuration's enrollments: each is copied in when it is new
    /// in the file or changed there since the last copy; otherwise the store's version stands (one deleted or
    /// changed through the API stays so).
    pub(crate) fn new(
        config: &EmulatorConfig,
        store: Store,
        policies: Vec<ServicePolicy>,
        retry_after: std::time::Duration,
    ) -> Result<Self, crate::Error> {
        // The configuration is checked as before (names the key of a bad enrollment).
        Trust::new(config)?;
        let seed_error = |reason: String| crate::Error::Store {
            path: "(seeding from the configuration)".into(),
            reason,
        };
        store
            .write(|tx| {
                for e in &config.enrollments {
                    let seed = records::from_enrollment(e);
                    let (kind, id) = (seed.kind(), seed.id().to_string());
                    let digest = records::seed_digest(&seed);
                    if tx.seeded_digest(kind, &id)?.as_deref() == Some(digest.as_str()) {
                        continue;
                    }
                    // New in the file, or changed there since it was copied: the file's version wins.
                    let previous = tx.get(kind, &id)?;
                    let record = records::complete(seed, previous.as_ref())
                        .map_err(|m| crate::store::StoreError(format!("{}: {m}", e.describe())))?;
                    tx.put(&record)?;
                    tx.mark_seeded(kind, &id, &digest)?;
                }
                Ok::<_, crate::store::StoreError>(())
            })
            .map_err(|e| seed_error(e.0))?;
        let service = Service {
            id_scope: config.id_scope.clone(),
            assigned_hub: config.assigned_hub.clone(),
            store,
            policies,
            live: RwLock::new(None),
            previous: Mutex::new(None),
            retry_after: retry_after.as_secs(),
            operations: Mutex::new(HashMap::new()),
            issuer: None,
        };
        service.build_live(None).map_err(seed_error)?;
        Ok(service)
    }

    /// Forget the trust store after an enrollment change; the next device request rebuilds it.
    pub(crate) fn enrollments_changed(&self) {
        let mut live = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = live.take() {
            // Kept for its TPM challenges: the rebuilt store takes them over.
            *lock(&self.previous) = Some(old);
        }
    }

    /// The trust store for device requests (rebuilt from the store after a change).
    pub(crate) fn live(&self) -> Result<Arc<Live>, String> {
        if let Some(live) = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            return Ok(live.clone());
        }
        let previous = lock(&self.previous).clone();
        self.build_live(previous.as_deref()).inspect_err(|message| {
            tracing::error!(%message, "cannot rebuild the enrollments from the store");
        })
    }

    fn build_live(&self, previous: Option<&Live>) -> Result<Arc<Live>, String> {
        let mut live = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = live.as_ref() {
            return Ok(l.clone());
        }
        let (individual, groups) = self
            .store
            .read(|tx| Ok::<_, crate::store::StoreError>((tx.all(Kind::Enrollment)?, tx.all(Kind::Group)?)))
            .map_err(|e| e.0)?;
        let mut config = EmulatorConfig {
            id_scope: self.id_scope.clone(),
            assigned_hub: self.assigned_hub.clone(),
            enrollments: Vec::with_capacity(individual.len() + groups.len()),
        };
        let mut disabled_individual = HashSet::new();
        let mut disabled_groups = HashSet::new();
        for records in [&individual, &groups] {
            for record in records {
                let enrollment = records::to_enrollment(record)?;
                if records::is_disabled(record) {
                    let id = record.id().to_string();
                    match record.kind() {
                        Kind::Enrollment => disabled_individual.insert(id),
                        Kind::Group => disabled_groups.insert(id),
                    };
                }
                config.enrollments.push(enrollment);
            }
        }
        let mut trust = Trust::new(&config).map_err(|e| e.to_string())?;
        if let Some(p) = previous {
            trust.tpm.share_issued(&p.trust.tpm);
        }
        let built = Arc::new(Live {
            trust,
            disabled_individual,
            disabled_groups,
        });
        *live = Some(built.clone());
        Ok(built)
    }

    pub(crate) fn assigned_hub(&self) -> &str {
        &self.assigned_hub
    }

    pub(crate) fn with_issuer(mut self, issuer: Arc<crate::issuance::CertificateIssuer>) -> Self {
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
        // Real clients add a trailing slash (Node's bulk call posts to `/enrollments/`); DPS accepts it.
        let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        if segments
            .first()
            .is_some_and(|first| crate::enrollments_api::is_service_path(first))
        {
            return crate::enrollments_api::route(self, request, &segments, query);
        }
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
        let live = match self.live() {
            Ok(l) => l,
            Err(message) => return error(500, 500000, message),
        };
        if let Err(r) = authenticate(&live, request, &registration_id, peer_chain) {
            return r;
        }
        // The stored state is what the last registration recorded; the chain is never part of it.
        match self.store.read(|tx| tx.registration(&registration_id)) {
            Ok(Some(state)) => Response::json(200, &DeviceRegistrationResult::from(state)),
            Ok(None) => error(404, 404001, format!("no registration for '{registration_id}'")),
            Err(e) => error(500, 500000, e.0),
        }
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
        let live = match self.live() {
            Ok(l) => l,
            Err(message) => return error(500, 500000, message),
        };
        let admitted = match &body.tpm {
            Some(tpm) => match live
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
            None => match authenticate(&live, request, &registration_id, peer_chain) {
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
            Some(csr) if !disabled => match crate::issuance::registration_csr(self, request, csr, &registration_id) {
                Ok(chain) => Some(chain),
                Err(r) => return r,
            },
            _ => None,
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
        let live = match self.live() {
            Ok(l) => l,
            Err(message) => return error(500, 500000, message),
        };
        if let Err(r) = authenticate(&live, request, &registration_id, peer_chain) {
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
        let etag = match random_id() {
            Ok(id) => format!("\"{id}\""),
            Err(r) => return r,
        };
        let tpm = match live.trust.tpm.assignment(&registration_id) {
            Ok(t) => t,
            Err(message) => return error(500, 500000, message),
        };
        // The state is recorded (durably) before the device is told.
        let recorded = self.store.write(|tx| {
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
                state.assigned_hub = Some(self.assigned_hub.clone());
                state.device_id = Some(device_id);
                state.status = Some(dps_wire::service::EnrollmentStatus::Assigned);
                state.substatus = Some(AssignedDeviceSubstatus::InitialAssignment);
            }
            tx.put_registration(&registration_id, group.as_deref(), &state)?;
            Ok::<_, crate::store::StoreError>(state)
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
}

fn authenticate(
    live: &Live,
    request: &Request,
    registration_id: &str,
    peer_chain: Option<&[CertificateDer<'static>]>,
) -> Result<Admitted, Response> {
    live.trust
        .authenticate(registration_id, request.header("authorization"), peer_chain)
        .map_err(|Denied(message)| {
            tracing::info!(registration_id, %message, "authentication failed");
            unauthorized(message)
        })
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
/// `info` when given), with the code in the `x-ms-error-code` header as DPS sends it.
pub(crate) fn error_details(code: u32, message: impl Into<String>, info: Option<Vec<(&str, String)>>) -> ErrorDetails {
    let tracking_id = random_id().unwrap_or_else(|_| "00000000-0000-0000-0000-000000000000".to_string());
    ErrorDetails {
        error_code: Some(i64::from(code)),
        tracking_id: Some(tracking_id),
        message: Some(cut(message.into())),
        info: info.map(|i| i.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        timestamp_utc: Some(now_rfc3339()),
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
    let mut response = Response {
        status,
        headers: vec![(ERROR_CODE_HEADER, code.to_string())],
        body: serde_json::to_vec(&details).unwrap_or_default(),
    };
    if let Some(seconds) = retry_after {
        response = response.with_header("Retry-After", seconds);
    }
    response
}

/// A random version-4 UUID string; `None` when the system random generator fails.
pub(crate) fn random_uuid() -> Option<String> {
    random_id().ok()
}

/// A random version-4 UUID string.
fn random_id() -> Result<String, Response> {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| {
        let details = error_details_fixed(500000, "the system random generator failed");
        Response {
            status: 500,
            headers: vec![(ERROR_CODE_HEADER, "500000".to_string())],
            body: serde_json::to_vec(&details).unwrap_or_default(),
        }
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

pub(crate) fn now_rfc3339() -> String {
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

/// An error body without a random tracking id (for when the random generator itself failed).
fn error_details_fixed(code: u32, message: &str) -> ErrorDetails {
    ErrorDetails {
        error_code: Some(i64::from(code)),
        message: Some(message.to_string()),
        timestamp_utc: Some(now_rfc3339()),
        ..ErrorDetails::default()
    }
}
