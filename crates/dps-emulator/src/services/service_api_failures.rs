//! The failures of the service API: an error answer's status, code and message (for whole answers and for the
//! per-record errors of a bulk call alike), and the request-body readers that produce them.

use serde_json::Value;

use crate::records::{Kind, wire_error};
use crate::request::{Request, Response, error};
use crate::store::StoreError;

pub(crate) const BAD_REQUEST: u32 = 400004;
pub(crate) const NOT_FOUND: u32 = 404001;
pub(crate) const CONFLICT: u32 = 409001;
pub(crate) const PRECONDITION_FAILED: u32 = 412001;
const INTERNAL: u32 = 500000;

/// An error answer with its status and message (for per-item bulk errors and whole answers alike).
pub(crate) struct Failure {
    pub(crate) status: u16,
    pub(crate) code: u32,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn response(self) -> Response {
        error(self.status, self.code, self.message)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::new(500, INTERNAL, e.0)
    }
}

pub(crate) fn bad(message: impl Into<String>) -> Failure {
    Failure::new(400, BAD_REQUEST, message)
}

pub(crate) fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Enrollment => "enrollment",
        Kind::Group => "enrollment group",
    }
}

pub(crate) fn json_body(request: &Request) -> Result<Value, Failure> {
    if request.body.is_empty() {
        return Err(bad("missing request body"));
    }
    serde_json::from_slice(&request.body).map_err(|e| bad(format!("request body is not valid JSON: {e}")))
}

/// The body as the wire type `T` (`what` names it in the error).
pub(crate) fn wire_body<T: serde::de::DeserializeOwned>(request: &Request, what: &str) -> Result<T, Failure> {
    serde_json::from_value(json_body(request)?).map_err(|e| bad(wire_error(what, &e)))
}

pub(crate) fn not_found(kind: Kind, id: &str) -> Failure {
    Failure::new(404, NOT_FOUND, format!("no {} '{id}'", what(kind)))
}
