//! Reading DPS answers through the wire types (`dps_wire`): the operation status of a 2xx, the
//! error body of anything else, the assignment of an `assigned` status.

use dps_wire::ErrorDetails;
use dps_wire::device::{DeviceRegistrationResult, EnrollmentStatus, RegistrationOperationStatus};
use serde::de::DeserializeOwned;

use crate::error::{protocol, sanitize};
use crate::{Assignment, Error, Reply, ServiceError, Transport, issuance};

/// A redirect: never followed, an error on every transport.
pub(crate) fn redirect(t: Transport, status: u16, location: Option<&str>) -> Error {
    let to = location.map_or(String::new(), |l| format!(" to {:?}", sanitize(l)));
    protocol(
        t,
        format!("the service answered {status} (redirect{to}); redirects are not followed"),
    )
}

/// The typed body of a 2xx answer, or the service's error.
pub(crate) fn read_ok<T: DeserializeOwned>(t: Transport, reply: &Reply, what: &str) -> Result<T, Error> {
    if (300..400).contains(&reply.status) {
        return Err(redirect(t, reply.status, None));
    }
    if !(200..300).contains(&reply.status) {
        return Err(service_error(t, reply));
    }
    serde_json::from_slice::<T>(&reply.body).map_err(|e| {
        protocol(
            t,
            format!(
                "the {} answer is not a JSON object of a {what} ({}): {:?}",
                reply.status,
                sanitize(&e.to_string()),
                sanitize(&String::from_utf8_lossy(&reply.body))
            ),
        )
    })
}

/// A register or operation status answer.
pub(crate) fn read_operation(t: Transport, reply: &Reply) -> Result<RegistrationOperationStatus, Error> {
    read_ok(t, reply, "registration operation status")
}

/// The error body of an answer, when it is one.
pub(crate) fn error_details(reply: &Reply) -> Option<ErrorDetails> {
    serde_json::from_slice::<ErrorDetails>(&reply.body).ok()
}

/// The service error of a status >= 400 answer (its body, when it is DPS's error shape).
pub(crate) fn service_error(t: Transport, reply: &Reply) -> Error {
    let details = error_details(reply).unwrap_or_default();
    let message = match &details.message {
        Some(m) => sanitize(m),
        None if reply.body.is_empty() => "(no message)".to_string(),
        None => sanitize(&String::from_utf8_lossy(&reply.body)),
    };
    Error::Service(ServiceError {
        transport: t,
        status: reply.status,
        error_code: details.error_code,
        tracking_id: details.tracking_id.as_deref().map(sanitize),
        message,
        info: details
            .info
            .iter()
            .flatten()
            .map(|(k, v)| (sanitize(k), sanitize(v)))
            .collect(),
    })
}

/// The assignment of an `assigned` registration state.
pub(crate) fn assignment(t: Transport, state: Option<DeviceRegistrationResult>) -> Result<Assignment, Error> {
    let Some(state) = state else {
        return Err(protocol(t, "an assigned answer without registrationState"));
    };
    let required = |v: &Option<String>, k: &str| {
        v.clone()
            .ok_or_else(|| protocol(t, format!("registrationState has no {k}")))
    };
    Ok(Assignment {
        registration_id: required(&state.registration_id, "registrationId")?,
        assigned_hub: required(&state.assigned_hub, "assignedHub")?,
        device_id: required(&state.device_id, "deviceId")?,
        status: state.status.clone().unwrap_or(EnrollmentStatus::Assigned),
        substatus: state.substatus.clone(),
        etag: state.etag.clone(),
        payload: state.payload.clone().filter(|p| !p.is_null()),
        created_date_time_utc: state.created_date_time_utc.clone(),
        last_updated_date_time_utc: state.last_updated_date_time_utc.clone(),
        issued_certificate_chain: issuance::read_chain(t, state.issued_certificate_chain.as_deref())?,
        state,
    })
}
