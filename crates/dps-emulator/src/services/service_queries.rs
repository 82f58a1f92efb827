//! The paged queries of the service API: `POST /enrollments/query`, `/enrollmentGroups/query`
//! (`SELECT * FROM ...` only) and `/registrations/{enrollmentGroupId}/query`, in id order, paged by
//! `x-ms-max-item-count` and `x-ms-continuation`.

use base64::Engine as _;
use dps_wire::service::QuerySpecification;

use crate::enrollments::Enrollments;
use crate::records::{Kind, Record};
use crate::request::{Request, Response};
use crate::services::service_api_failures::{Failure, bad, wire_body};

/// Page size of a query without `x-ms-max-item-count`, and the largest one accepted.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The page size and the id after which the page starts, from the paging headers.
fn paging(request: &Request) -> Result<(usize, Option<String>), Failure> {
    let size = match request.header("x-ms-max-item-count") {
        None => DEFAULT_PAGE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "x-ms-max-item-count {v:?} must be a whole number from 1 to {MAX_PAGE}"
                )));
            }
        },
    };
    let after = match request.header("x-ms-continuation").filter(|v| !v.is_empty()) {
        None => None,
        Some(token) => Some(
            B64URL
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "x-ms-continuation {token:?} is not a token this service issued"
                    ))
                })?,
        ),
    };
    Ok((size, after))
}

/// Answer a page: `items` holds up to `size + 1` records; the extra one means there is a next page.
fn page<T: serde::Serialize>(
    mut items: Vec<T>,
    size: usize,
    id_of: impl Fn(&T) -> Option<&str>,
    item_type: &str,
) -> Response {
    let more = items.len() > size;
    items.truncate(size);
    let mut response = Response::json(200, &items)
        .with_header("x-ms-max-item-count", size.to_string())
        .with_header("x-ms-item-type", item_type);
    if more {
        if let Some(last) = items.last().and_then(id_of) {
            response = response.with_header("x-ms-continuation", B64URL.encode(last));
        }
    }
    response
}

pub(crate) fn records(enrollments: &Enrollments, request: &Request, kind: Kind) -> Result<Response, Failure> {
    let spec: QuerySpecification = wire_body(request, "the query specification")?;
    let text = spec.query.as_str();
    let words: Vec<String> = text.split_whitespace().map(str::to_ascii_lowercase).collect();
    let collection = match kind {
        Kind::Enrollment => "enrollments",
        Kind::Group => "enrollmentgroups",
    };
    if words != ["select", "*", "from", collection] {
        return Err(bad(format!(
            "query {text:?} is not supported: the emulator answers only \"SELECT * FROM {}\"",
            if kind == Kind::Enrollment {
                "enrollments"
            } else {
                "enrollmentGroups"
            }
        )));
    }
    let (size, after) = paging(request)?;
    let items = enrollments.store.read(|tx| tx.page(kind, after.as_deref(), size + 1))?;
    let item_type = match kind {
        Kind::Enrollment => "enrollment",
        Kind::Group => "enrollmentGroup",
    };
    Ok(page(items, size, |r: &Record| Some(r.id()), item_type))
}

pub(crate) fn registrations(enrollments: &Enrollments, request: &Request, group: &str) -> Result<Response, Failure> {
    let (size, after) = paging(request)?;
    let items = enrollments
        .store
        .read(|tx| tx.registrations_of(group, after.as_deref(), size + 1))?;
    Ok(page(
        items,
        size,
        |s: &dps_wire::service::DeviceRegistrationState| s.registration_id.as_deref(),
        "deviceRegistration",
    ))
}
