//! The DPS service API (`2021-10-01`) on the HTTPS port, authenticated with service SAS tokens:
//!
//! - `PUT|GET|DELETE /enrollments/{registrationId}` and `/enrollmentGroups/{enrollmentGroupId}` (`If-Match`
//!   checked: 412 on a mismatch; PUT answers 200 with the stored record, DELETE 204);
//! - `POST /enrollments` and `/enrollmentGroups`: bulk `create|update|updateIfMatchETag|delete` of at most
//!   10 records, answered `{"isSuccessful", "errors": [{"registrationId"|"enrollmentGroupId", "errorCode",
//!   "errorStatus"}]}`; the records that succeed are committed together;
//! - `POST /enrollments/query` and `/enrollmentGroups/query` (`{"query": "SELECT * FROM enrollments"}`),
//!   paged by `x-ms-max-item-count` and `x-ms-continuation`;
//! - `POST /enrollments/{id}/attestationmechanism` and `/enrollmentGroups/{id}/attestationmechanism`;
//! - `GET|DELETE /registrations/{registrationId}`, `POST /registrations/{enrollmentGroupId}/query`.
//!
//! Errors answer `{"errorCode", "trackingId", "message", "timestampUtc"}` (DPS's error body) and
//! `x-ms-error-code`; the error codes are the HTTP status times 1000 plus a small number, as elsewhere in
//! the emulator.

use dps_wire::service::{BulkEnrollmentGroupOperation, BulkEnrollmentOperation, BulkItemError, BulkMode, BulkResult};
use serde_json::Value;

use std::sync::Arc;

use crate::enrollments::Enrollments;
use crate::records::{self, Kind, Record, etag_matches, id_field, wire_error};
use crate::request::{Request, Response, Service, error};
use crate::services::service_api_failures::{
    BAD_REQUEST, CONFLICT, Failure, NOT_FOUND, PRECONDITION_FAILED, bad, json_body, not_found, what,
};
use crate::services::service_policies::{self, ServicePolicy, ServiceRight};
use crate::services::service_queries;
use crate::store::StoreError;

/// Records per bulk call, as DPS allows.
pub const MAX_BULK: usize = 10;

/// The service API: the enrollments and the shared access policies that may manage them.
pub(crate) struct ServiceApi {
    enrollments: Arc<Enrollments>,
    policies: Vec<ServicePolicy>,
}

impl ServiceApi {
    pub(crate) fn new(enrollments: Arc<Enrollments>, policies: Vec<ServicePolicy>) -> Self {
        ServiceApi { enrollments, policies }
    }
}

impl Service for ServiceApi {
    fn handle(&self, request: &Request, segments: &[&str]) -> Option<Response> {
        match segments.first() {
            Some(&("enrollments" | "enrollmentGroups" | "registrations")) => Some(route(self, request, segments)),
            _ => None,
        }
    }
}

enum Route<'a> {
    Record(Kind, &'a str),
    Bulk(Kind),
    Query(Kind),
    Attestation(Kind, &'a str),
    Registration(&'a str),
    RegistrationQuery(&'a str),
}

fn route(service: &ServiceApi, request: &Request, segments: &[&str]) -> Response {
    let kind = |s: &str| {
        if s == "enrollments" {
            Kind::Enrollment
        } else {
            Kind::Group
        }
    };
    let (route, allowed) = match segments {
        [c @ ("enrollments" | "enrollmentGroups")] => (Route::Bulk(kind(c)), "POST"),
        [c @ ("enrollments" | "enrollmentGroups"), "query"] if request.method == "POST" => {
            (Route::Query(kind(c)), "POST")
        }
        [c @ ("enrollments" | "enrollmentGroups"), id] => (Route::Record(kind(c), id), "GET, PUT, DELETE"),
        [c @ ("enrollments" | "enrollmentGroups"), id, "attestationmechanism"] => {
            (Route::Attestation(kind(c), id), "POST")
        }
        ["registrations", id] => (Route::Registration(id), "GET, DELETE"),
        ["registrations", id, "query"] => (Route::RegistrationQuery(id), "POST"),
        _ => return error(404, NOT_FOUND, format!("no such resource: /{}", segments.join("/"))),
    };
    if !allowed.split(", ").any(|m| m == request.method) {
        return error(
            405,
            405001,
            format!(
                "method {} is not allowed on /{}: use {allowed}",
                request.method,
                segments.join("/")
            ),
        )
        .with_header("Allow", allowed);
    }
    let needed = match (&route, request.method.as_str()) {
        (Route::Record(..), "GET") | (Route::Query(_), _) | (Route::Attestation(..), _) => ServiceRight::EnrollmentRead,
        (Route::Record(..), _) | (Route::Bulk(_), _) => ServiceRight::EnrollmentWrite,
        (Route::Registration(_), "DELETE") => ServiceRight::RegistrationStatusWrite,
        (Route::Registration(_), _) | (Route::RegistrationQuery(_), _) => ServiceRight::RegistrationStatusRead,
    };
    if let Err(refused) = service_policies::check(
        &service.policies,
        request.header("authorization"),
        request.header("host"),
        needed,
    ) {
        tracing::info!(message = %refused.message, "service request refused");
        let code = if refused.status == 401 { 401002 } else { 403001 };
        return error(refused.status, code, refused.message);
    }
    if !request.has_api_version() {
        return error(400, BAD_REQUEST, "missing query parameter api-version");
    }
    let result = match route {
        Route::Record(kind, raw) => decode(raw).and_then(|id| record(service, request, kind, &id)),
        Route::Bulk(kind) => bulk(service, request, kind),
        Route::Query(kind) => service_queries::records(&service.enrollments, request, kind),
        Route::Attestation(kind, raw) => decode(raw).and_then(|id| attestation(service, kind, &id)),
        Route::Registration(raw) => decode(raw).and_then(|id| registration(service, request, &id)),
        Route::RegistrationQuery(raw) => {
            decode(raw).and_then(|id| service_queries::registrations(&service.enrollments, request, &id))
        }
    };
    result.unwrap_or_else(Failure::response)
}

fn decode(raw: &str) -> Result<String, Failure> {
    let id = hsm_core::sas::url_decode(raw).map_err(|e| bad(format!("id in the path: {e}")))?;
    if id.is_empty() {
        return Err(bad("empty id in the path"));
    }
    Ok(id)
}

fn if_match(request: &Request) -> Option<&str> {
    request.header("if-match").filter(|v| !v.is_empty())
}

fn record(service: &ServiceApi, request: &Request, kind: Kind, id: &str) -> Result<Response, Failure> {
    match request.method.as_str() {
        "GET" => {
            let found = service.enrollments.store.read(|tx| {
                let record = tx.get(kind, id)?;
                let state = match (kind, &record) {
                    (Kind::Enrollment, Some(_)) => tx.registration(id)?,
                    _ => None,
                };
                Ok::<_, StoreError>(record.map(|mut r| {
                    if let (Record::Enrollment(e), Some(state)) = (&mut r, state) {
                        e.registration_state = Some(state);
                    }
                    r
                }))
            })?;
            let record = found.ok_or_else(|| not_found(kind, id))?;
            Ok(Response::json(200, &record))
        }
        "PUT" => {
            let body = json_body(request)?;
            let stored = service.enrollments.store.write(|tx| {
                let previous = tx.get(kind, id)?;
                if let Some(wanted) = if_match(request) {
                    check_etag(kind, id, wanted, previous.as_ref())?;
                }
                let record = records::prepare(kind, Some(id), body, previous.as_ref()).map_err(bad)?;
                tx.put(&record)?;
                Ok::<_, Failure>(record)
            })?;
            service.enrollments.changed();
            Ok(Response::json(200, &stored))
        }
        _ => {
            service.enrollments.store.write(|tx| {
                let previous = tx.get(kind, id)?.ok_or_else(|| not_found(kind, id))?;
                if let Some(wanted) = if_match(request) {
                    check_etag(kind, id, wanted, Some(&previous))?;
                }
                tx.delete(kind, id)?;
                Ok::<_, Failure>(())
            })?;
            service.enrollments.changed();
            Ok(Response::empty(204))
        }
    }
}

fn check_etag(kind: Kind, id: &str, wanted: &str, stored: Option<&Record>) -> Result<(), Failure> {
    let Some(stored) = stored else {
        return Err(Failure::new(
            412,
            PRECONDITION_FAILED,
            format!("etag {wanted} given but there is no {} '{id}'", what(kind)),
        ));
    };
    let current = stored.etag();
    if etag_matches(wanted, current) {
        Ok(())
    } else {
        Err(Failure::new(
            412,
            PRECONDITION_FAILED,
            format!(
                "etag {wanted} does not match the current etag {} of {} '{id}'",
                current.unwrap_or("(none)"),
                what(kind)
            ),
        ))
    }
}

/// The body of a bulk call: an unknown `mode` is named as such (the only enum of the operation that keeps
/// no unknown value, so serde's "unknown variant" is always the mode).
fn bulk_body<T: serde::de::DeserializeOwned>(request: &Request, what: &str) -> Result<T, Failure> {
    serde_json::from_value(json_body(request)?).map_err(|e| {
        let text = e.to_string();
        match text
            .strip_prefix("unknown variant `")
            .and_then(|rest| rest.split_once('`'))
        {
            Some((mode, _)) => bad(format!(
                "bulk mode \"{mode}\" is not one of create, update, updateIfMatchETag, delete"
            )),
            None => bad(wire_error(what, &e)),
        }
    })
}

fn bulk(service: &ServiceApi, request: &Request, kind: Kind) -> Result<Response, Failure> {
    let (mode, items): (BulkMode, Vec<Record>) = match kind {
        Kind::Enrollment => {
            let op: BulkEnrollmentOperation = bulk_body(request, "the bulk enrollment operation")?;
            let items = op.enrollments.into_iter().map(|e| Record::Enrollment(Box::new(e)));
            (op.mode, items.collect())
        }
        Kind::Group => {
            let op: BulkEnrollmentGroupOperation = bulk_body(request, "the bulk enrollment group operation")?;
            let items = op.enrollment_groups.into_iter().map(|g| Record::Group(Box::new(g)));
            (op.mode, items.collect())
        }
    };
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(bad(format!(
            "a bulk operation takes 1 to {MAX_BULK} records, found {}",
            items.len()
        )));
    }
    let field = id_field(kind);
    let errors = service.enrollments.store.write(|tx| {
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for item in items {
            let id = item.id().to_string();
            let outcome = (|| -> Result<(), Failure> {
                if !seen.insert(id.clone()) {
                    return Err(bad(format!("{field} '{id}' appears twice in this bulk operation")));
                }
                records::check_id(kind, &id).map_err(bad)?;
                let previous = tx.get(kind, &id)?;
                let etag = item.etag();
                match mode {
                    BulkMode::Create if previous.is_some() => {
                        return Err(Failure::new(
                            409,
                            CONFLICT,
                            format!("{} '{id}' already exists", what(kind)),
                        ));
                    }
                    BulkMode::UpdateIfMatchETag | BulkMode::Delete if previous.is_none() => {
                        return Err(not_found(kind, &id));
                    }
                    BulkMode::UpdateIfMatchETag => {
                        check_etag(kind, &id, etag.unwrap_or(""), previous.as_ref())?;
                    }
                    BulkMode::Delete => {
                        if let Some(wanted) = etag {
                            check_etag(kind, &id, wanted, previous.as_ref())?;
                        }
                        tx.delete(kind, &id)?;
                        return Ok(());
                    }
                    _ => {}
                }
                let record = records::complete(item, previous.as_ref()).map_err(bad)?;
                tx.put(&record)?;
                Ok(())
            })();
            match outcome {
                Ok(()) => {}
                // The store failed: nothing of this call is committed.
                Err(f) if f.status == 500 => return Err(f),
                Err(f) => {
                    let (registration_id, enrollment_group_id) = match kind {
                        Kind::Enrollment => (Some(id), None),
                        Kind::Group => (None, Some(id)),
                    };
                    errors.push(BulkItemError {
                        registration_id,
                        enrollment_group_id,
                        error_code: i64::from(f.code),
                        error_status: f.message,
                        extra: serde_json::Map::new(),
                    });
                }
            }
        }
        Ok::<_, Failure>(errors)
    })?;
    service.enrollments.changed();
    let mut result = BulkResult {
        is_successful: errors.is_empty(),
        errors,
        extra: serde_json::Map::new(),
    };
    if result.errors.is_empty() {
        // The wire type leaves an empty list out (the spec's examples do); the emulator has always sent
        // `"errors": []`, which clients that walk the list without a check rely on.
        result.extra.insert("errors".into(), Value::Array(Vec::new()));
    }
    Ok(Response::json(200, &result))
}

fn attestation(service: &ServiceApi, kind: Kind, id: &str) -> Result<Response, Failure> {
    let record = service
        .enrollments
        .store
        .read(|tx| tx.get(kind, id))?
        .ok_or_else(|| not_found(kind, id))?;
    Ok(Response::json(200, record.attestation()))
}

fn registration(service: &ServiceApi, request: &Request, id: &str) -> Result<Response, Failure> {
    let missing = || Failure::new(404, NOT_FOUND, format!("no registration state for '{id}'"));
    if request.method == "GET" {
        let state = service
            .enrollments
            .store
            .read(|tx| tx.registration(id))?
            .ok_or_else(missing)?;
        return Ok(Response::json(200, &state));
    }
    service.enrollments.store.write(|tx| {
        let state = tx.registration(id)?.ok_or_else(missing)?;
        if let Some(wanted) = if_match(request) {
            let current = state.etag.as_deref();
            if !etag_matches(wanted, current) {
                return Err(Failure::new(
                    412,
                    PRECONDITION_FAILED,
                    format!(
                        "etag {wanted} does not match the current etag {} of the registration state of '{id}'",
                        current.unwrap_or("(none)")
                    ),
                ));
            }
        }
        tx.delete_registration(id)?;
        Ok(())
    })?;
    Ok(Response::empty(204))
}
