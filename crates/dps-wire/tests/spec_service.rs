//! Every service example of the published DPS specification (every api-version, the swagger-side
//! `{stable,preview}/<v>/examples/` and the TypeSpec-side `service/examples/<v>/` folders) decodes
//! into our types and encodes back equal. The specification is test input beside the repository
//! (`../shared/specs/dps`): absent, this test fails in CI and skips loudly elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::specs;

use dps_wire::service::{
    Attestation, BulkEnrollmentGroupOperation, BulkEnrollmentOperation, BulkResult, DeviceRegistrationState,
    EnrollmentGroup, IndividualEnrollment, QuerySpecification,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Fewer service example files than this means the folders were not found or not read.
const MIN_FILES: usize = 150;
/// Fewer bodies than this likewise.
const MIN_BODIES: usize = 200;

/// Every example folder: `{stable,preview}/<v>/examples` and `service/examples/<v>`.
fn example_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for side in ["stable", "preview"] {
        for v in std::fs::read_dir(root.join(side)).unwrap() {
            let ex = v.unwrap().path().join("examples");
            if ex.is_dir() {
                dirs.push(ex);
            }
        }
    }
    for v in std::fs::read_dir(root.join("service/examples")).unwrap() {
        dirs.push(v.unwrap().path());
    }
    dirs.sort();
    dirs
}

/// `value` decodes as `T` and encodes back equal; returns the decoded value.
fn round_trip<T: DeserializeOwned + Serialize>(file: &Path, what: &str, value: &Value) -> T {
    let decoded: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{}: {what} does not decode: {e}", file.display()));
    let encoded = serde_json::to_value(&decoded).unwrap();
    if let Some(at) = first_difference("", &encoded, value) {
        panic!("{}: {what} does not encode back equal: {at}", file.display());
    }
    decoded
}

/// Where `a` and `b` first differ (a JSON pointer and both sides), or None when equal.
fn first_difference(at: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(&format!("{at}/{k}"), p, q),
                (p, q) => Some(format!("{at}/{k}: encoded {p:?}, example {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&format!("{at}/{i}"), p, q)),
        _ => (a != b).then(|| format!("{at}: encoded {a}, example {b}")),
    }
}

/// Decodes, checks and encodes one body of an example file.
type Check = fn(&Path, &Value);

/// The request and response body types of an operation (the file name's prefix).
struct Operation {
    /// Parameter names that carry the request body, and the body's type.
    request: Option<(&'static [&'static str], Check)>,
    /// The 200 answer's type; None: the answer has no body.
    response: Option<Check>,
}

fn check<T: DeserializeOwned + Serialize>(file: &Path, v: &Value) {
    round_trip::<T>(file, std::any::type_name::<T>(), v);
}

/// An enrollment the examples fully describe: nothing left in `extra` at the top.
fn enrollment(file: &Path, v: &Value) {
    let e: IndividualEnrollment = round_trip(file, "IndividualEnrollment", v);
    assert!(
        e.extra.is_empty(),
        "{}: unmodelled fields {:?}",
        file.display(),
        e.extra.keys()
    );
    assert!(e.attestation.extra.is_empty(), "{}: attestation", file.display());
}

fn group(file: &Path, v: &Value) {
    let g: EnrollmentGroup = round_trip(file, "EnrollmentGroup", v);
    assert!(
        g.extra.is_empty(),
        "{}: unmodelled fields {:?}",
        file.display(),
        g.extra.keys()
    );
}

fn registration(file: &Path, v: &Value) {
    let r: DeviceRegistrationState = round_trip(file, "DeviceRegistrationState", v);
    assert!(
        r.extra.is_empty(),
        "{}: unmodelled fields {:?}",
        file.display(),
        r.extra.keys()
    );
}

fn list<F: Fn(&Path, &Value)>(each: F) -> impl Fn(&Path, &Value) {
    move |file, v| {
        let items = v
            .as_array()
            .unwrap_or_else(|| panic!("{}: a query answers an array", file.display()));
        items.iter().for_each(|item| each(file, item));
    }
}

fn operation(prefix: &str) -> Option<Operation> {
    const ENROLLMENT: &[&str] = &["body", "enrollment"];
    const GROUP: &[&str] = &["body", "enrollmentGroup"];
    const QUERY: &[&str] = &["body", "querySpecification"];
    const BULK: &[&str] = &["body", "bulkOperation"];
    let op = |request, response| Some(Operation { request, response });
    match prefix {
        "IndividualEnrollment_CreateOrUpdate" => op(Some((ENROLLMENT, enrollment)), Some(enrollment)),
        "IndividualEnrollment_Get" => op(None, Some(enrollment)),
        "IndividualEnrollment_GetAttestationMechanism" => op(None, Some(check::<Attestation>)),
        "IndividualEnrollment_Query" => op(
            Some((QUERY, check::<QuerySpecification>)),
            Some(|f, v| list(enrollment)(f, v)),
        ),
        "IndividualEnrollment_RunBulkOperation" => op(
            Some((BULK, check::<BulkEnrollmentOperation>)),
            Some(check::<BulkResult>),
        ),
        "EnrollmentGroup_CreateOrUpdate" => op(Some((GROUP, group)), Some(group)),
        "EnrollmentGroup_Get" => op(None, Some(group)),
        "EnrollmentGroup_GetAttestationMechanism" => op(None, Some(check::<Attestation>)),
        "EnrollmentGroup_Query" => op(
            Some((QUERY, check::<QuerySpecification>)),
            Some(|f, v| list(group)(f, v)),
        ),
        "EnrollmentGroup_RunBulkOperation" => op(
            Some((BULK, check::<BulkEnrollmentGroupOperation>)),
            Some(check::<BulkResult>),
        ),
        "DeviceRegistrationState_Get" => op(None, Some(registration)),
        "DeviceRegistrationState_Query" => op(None, Some(|f, v| list(registration)(f, v))),
        "IndividualEnrollment_Delete" | "EnrollmentGroup_Delete" | "DeviceRegistrationState_Delete" => op(None, None),
        _ => None,
    }
}

#[test]
fn every_service_example_round_trips() {
    let Some(root) = specs() else { return };
    let (mut files, mut bodies) = (0, 0);
    for dir in example_dirs(&root) {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let file = entry.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("RuntimeRegistration_") || !name.ends_with(".json") {
                continue; // the device API: the device side's test
            }
            let prefix = name
                .split("_MaximumSet")
                .next()
                .and_then(|p| p.split("_MinimumSet").next())
                .unwrap();
            let op = operation(prefix).unwrap_or_else(|| panic!("{}: no type for operation {prefix}", file.display()));
            let example: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            files += 1;
            for (param, value) in example["parameters"].as_object().unwrap() {
                if !(value.is_object() || value.is_array()) {
                    continue; // api-version, id, headers
                }
                let (names, decode) = op
                    .request
                    .unwrap_or_else(|| panic!("{}: {prefix} takes no body, yet has {param}", file.display()));
                assert!(
                    names.contains(&param.as_str()),
                    "{}: unexpected body parameter {param}",
                    file.display()
                );
                decode(&file, value);
                bodies += 1;
            }
            for (status, answer) in example["responses"].as_object().unwrap() {
                let answer = answer.as_object().unwrap();
                // One file keys its answer `enrollment` instead of `body` (see the specs README).
                let body = answer.get("body").or_else(|| answer.get("enrollment"));
                match (op.response, body) {
                    (Some(decode), Some(body)) if status == "200" => {
                        decode(&file, body);
                        bodies += 1;
                    }
                    (None, None) => {}
                    other => panic!(
                        "{}: answer {status} has a body: {}, a type: {}",
                        file.display(),
                        other.1.is_some(),
                        other.0.is_some()
                    ),
                }
            }
        }
    }
    eprintln!("{files} service example files, {bodies} bodies round-tripped");
    assert!(files >= MIN_FILES, "only {files} service example files found");
    assert!(bodies >= MIN_BODIES, "only {bodies} bodies checked");
}
