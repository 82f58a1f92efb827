//! Proven by the published spec: every example request of the DPS device and service APIs in
//! `../shared/specs/dps` (Azure/azure-rest-api-specs, read at test time, never copied here) is sent to the
//! emulator, adapted only where the example's made-up values cannot be valid (ids, keys, attestation, csr,
//! query text), and the answer's body is checked against the spec's own JSON schema for that status: every
//! field the schema marks required is present, with the schema's JSON type, recursively (definitions, $ref,
//! properties, items, additionalProperties). Our types play no part.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod spec_schema;

use base64::Engine as _;
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions, ServicePolicy};
use serde_json::{Value, json};
use spec_schema::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtc2VydmljZS1hcGktdGVzdHM=";
const DEVICE_KEY: &str = "ZGV2aWNlLWtleS1mb3ItdGhlLXNlcnZpY2UtYXBpLXRlc3Q=";
/// The examples of this copy make 209 requests; far fewer means examples went missing or were skipped.
const MIN_CASES: usize = 150;

struct Harness {
    emu: Emulator,
    agent: ureq::Agent,
    serial: usize,
}

impl Harness {
    fn service(
        &self,
        method: &str,
        path: &str,
        api: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> (u16, String) {
        let host = self.emu.global_endpoint();
        let sr = hsm_core::sas::url_encode(&host.to_ascii_lowercase());
        let expiry = now() + 3600;
        let sig = hsm_core::sas::hmac_sha256(&B64.decode(OWNER_KEY).unwrap(), format!("{sr}\n{expiry}").as_bytes());
        let auth = format!(
            "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn=owner",
            hsm_core::sas::url_encode(&B64.encode(sig))
        );
        let mut request = self
            .agent
            .request(method, &format!("https://{host}{path}?api-version={api}"))
            .set("Authorization", &auth);
        for (n, v) in headers {
            request = request.set(n, v);
        }
        send(request, body)
    }

    fn device(&self, method: &str, path: &str, api: &str, id: &str, body: Option<&Value>) -> (u16, String) {
        let request = self
            .agent
            .request(
                method,
                &format!("https://{}{path}?api-version={api}", self.emu.global_endpoint()),
            )
            .set("Authorization", &sas(id, DEVICE_KEY, now() + 600));
        send(request, body)
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.serial += 1;
        format!("{prefix}-{}", self.serial)
    }

    /// An individual symmetric-key enrollment with the device key, through the service API.
    fn enroll(&self, id: &str) {
        let (status, body) = self.service(
            "PUT",
            &format!("/enrollments/{id}"),
            "2021-10-01",
            Some(&enrollment(id)),
            &[],
        );
        assert_eq!(status, 200, "{body}");
    }

    /// Register `id` (enrolled) and poll until assigned; the operation id.
    fn register(&self, id: &str) -> String {
        let path = format!("/{SCOPE}/registrations/{id}/register");
        let (status, body) = self.device("PUT", &path, "2021-10-01", id, Some(&json!({"registrationId": id})));
        assert_eq!(status, 202, "{body}");
        let op: Value = serde_json::from_str(&body).unwrap();
        let op = op["operationId"].as_str().unwrap().to_string();
        let (status, body) = self.device(
            "GET",
            &format!("/{SCOPE}/registrations/{id}/operations/{op}"),
            "2021-10-01",
            id,
            None,
        );
        assert_eq!(status, 200, "{body}");
        op
    }
}

fn send(request: ureq::Request, body: Option<&Value>) -> (u16, String) {
    let result = match body {
        Some(b) => request.send_json(b.clone()),
        None => request.call(),
    };
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => (r.status(), r.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn attestation() -> Value {
    json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": DEVICE_KEY, "secondaryKey": DEVICE_KEY}})
}

fn enrollment(id: &str) -> Value {
    json!({"registrationId": id, "attestation": attestation()})
}

/// The example's record made valid here: our id, a usable attestation, no etag; every other field as sent.
fn adapt_record(record: &Value, id_field: &str, id: &str) -> Value {
    let mut r = record.as_object().cloned().unwrap_or_default();
    r.insert(id_field.into(), json!(id));
    r.insert("attestation".into(), attestation());
    r.remove("etag");
    Value::Object(r)
}

/// A real P-384 CSR with CN = `id` (the example's csr is made-up base64).
fn csr(id: &str) -> String {
    B64.encode(test_support::pki::csr(id, test_support::pki::KeyType::P384).0)
}

/// The example's body parameter: the swagger's body parameter name, else the first object-valued parameter.
fn example_body(example: &Value, op: &Value) -> Option<Value> {
    let params = example["parameters"].as_object()?;
    let swagger_name = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["in"] == "body")
        .and_then(|p| p["name"].as_str());
    swagger_name
        .and_then(|n| params.get(n))
        .or_else(|| params.values().find(|v| v.is_object()))
        .cloned()
}

/// Send one example (adapted) and check the answer; `None` when its operation is not served here.
fn run_example(h: &mut Harness, spec: &Spec, example: &Value) -> Result<(), String> {
    let op_id = example["operationId"].as_str().unwrap();
    let (method, _, op) = spec
        .operation(op_id)
        .or_else(|| spec.operation(&op_id.replace("AndIssueCertificate", "")))
        .ok_or_else(|| format!("operation {op_id} is not in the spec"))?;
    let api = example["parameters"]["api-version"].as_str().unwrap().to_string();
    let body = example_body(example, op);
    let record_kind = |op: &str| {
        if op.starts_with("EnrollmentGroup") {
            ("enrollmentGroups", "enrollmentGroupId")
        } else {
            ("enrollments", "registrationId")
        }
    };
    let (status, text) = match op_id.split_once('_').map_or("", |(_, o)| o) {
        "RegisterDevice" | "RegisterDeviceAndIssueCertificate" => {
            let id = h.fresh("spec-device");
            h.enroll(&id);
            let mut b = body.and_then(|b| b.as_object().cloned()).unwrap_or_default();
            b.insert("registrationId".into(), json!(id));
            b.remove("tpm");
            if b.contains_key("csr") {
                b.insert("csr".into(), json!(csr(&id)));
            }
            h.device(
                "PUT",
                &format!("/{SCOPE}/registrations/{id}/register"),
                &api,
                &id,
                Some(&Value::Object(b)),
            )
        }
        "OperationStatusLookup" => {
            let id = h.fresh("spec-device");
            h.enroll(&id);
            let (_, text) = h.device(
                "PUT",
                &format!("/{SCOPE}/registrations/{id}/register"),
                &api,
                &id,
                Some(&json!({"registrationId": id})),
            );
            let op: Value = serde_json::from_str(&text).unwrap();
            let op = op["operationId"].as_str().unwrap().to_string();
            h.device(
                "GET",
                &format!("/{SCOPE}/registrations/{id}/operations/{op}"),
                &api,
                &id,
                None,
            )
        }
        "DeviceRegistrationStatusLookup" => {
            let id = h.fresh("spec-device");
            h.enroll(&id);
            h.register(&id);
            let mut b = body.and_then(|b| b.as_object().cloned()).unwrap_or_default();
            b.insert("registrationId".into(), json!(id));
            b.remove("tpm");
            b.remove("csr");
            h.device(
                "POST",
                &format!("/{SCOPE}/registrations/{id}"),
                &api,
                &id,
                Some(&Value::Object(b)),
            )
        }
        "CreateOrUpdate" => {
            let (collection, field) = record_kind(op_id);
            let id = h.fresh("spec-record");
            let record = adapt_record(&body.unwrap_or_default(), field, &id);
            h.service("PUT", &format!("/{collection}/{id}"), &api, Some(&record), &[])
        }
        "Get" | "Delete" | "GetAttestationMechanism" if !op_id.starts_with("DeviceRegistrationState") => {
            let (collection, field) = record_kind(op_id);
            let id = h.fresh("spec-record");
            let (s, t) = h.service(
                "PUT",
                &format!("/{collection}/{id}"),
                "2021-10-01",
                Some(&adapt_record(&json!({}), field, &id)),
                &[],
            );
            assert_eq!(s, 200, "{t}");
            let path = match op_id.ends_with("GetAttestationMechanism") {
                true => format!("/{collection}/{id}/attestationmechanism"),
                false => format!("/{collection}/{id}"),
            };
            h.service(&method, &path, &api, None, &[])
        }
        "Query" if !op_id.starts_with("DeviceRegistrationState") => {
            let (collection, field) = record_kind(op_id);
            let id = h.fresh("spec-record");
            h.service(
                "PUT",
                &format!("/{collection}/{id}"),
                "2021-10-01",
                Some(&adapt_record(&json!({}), field, &id)),
                &[],
            );
            let query = json!({"query": format!("SELECT * FROM {collection}")});
            let page = example["parameters"]["x-ms-max-item-count"]
                .as_u64()
                .filter(|n| (1..=1000).contains(n));
            let headers: Vec<(&str, String)> = page
                .map(|n| ("x-ms-max-item-count", n.to_string()))
                .into_iter()
                .collect();
            h.service("POST", &format!("/{collection}/query"), &api, Some(&query), &headers)
        }
        "RunBulkOperation" => {
            let (collection, field) = record_kind(op_id);
            let mut b = body.unwrap_or_default();
            let records = b[collection].as_array().cloned().unwrap_or_default();
            let adapted: Vec<Value> = records
                .iter()
                .map(|r| {
                    let id = h.fresh("spec-bulk");
                    adapt_record(r, field, &id)
                })
                .collect();
            b[collection] = Value::Array(adapted);
            b["mode"] = json!("create");
            h.service("POST", &format!("/{collection}"), &api, Some(&b), &[])
        }
        "Get" | "Delete" => {
            let id = h.fresh("spec-device");
            h.enroll(&id);
            h.register(&id);
            h.service(&method, &format!("/registrations/{id}"), &api, None, &[])
        }
        "Query" => {
            // The registration states of a group: one device registered through it.
            let id = h.fresh("spec-group-device");
            let key = hsm_core::sas::derive_device_key(GROUP_KEY, &id).unwrap();
            let token = hsm_core::sas::Audience::Dps {
                id_scope: SCOPE.into(),
                registration_id: id.clone(),
            }
            .sign_with_key(&key, now() + 600);
            let body = provision(&h.agent, &h.emu, &id, Some(&token));
            assert_eq!(body["status"], "assigned", "{body}");
            h.service("POST", "/registrations/spec-group/query", &api, None, &[])
        }
        other => return Err(format!("no adaptation for operation {other}")),
    };
    let responses = &op["responses"];
    let Some(response) = responses.get(status.to_string()) else {
        return Err(format!("status {status} is not a success the spec lists: {text}"));
    };
    match response.get("schema") {
        None if text.is_empty() => Ok(()),
        None => Err(format!("status {status} has no body in the spec, answered {text}")),
        Some(schema) => {
            let value: Value =
                serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON ({e}): {text}"))?;
            let mut faults = Vec::new();
            check(schema, &value, &spec.doc["definitions"], "body", &mut faults);
            match faults.is_empty() {
                true => Ok(()),
                false => Err(format!("{}; the answer: {}", faults.join("; "), cut(&text))),
            }
        }
    }
}

fn cut(text: &str) -> &str {
    text.get(..600).unwrap_or(text)
}

#[test]
fn every_spec_example_request_gets_an_answer_the_spec_schema_accepts() {
    let Some(root) = specs() else { return };
    let emu = Emulator::start_with(
        config(vec![Enrollment::SymmetricGroup {
            name: "spec-group".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        }]),
        0,
        ServerOptions {
            retry_after: std::time::Duration::ZERO,
            service_policies: vec![ServicePolicy::owner("owner", OWNER_KEY)],
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let agent = agent(&emu, None, Tls::Any);
    let mut h = Harness { emu, agent, serial: 0 };
    let (mut cases, mut failures) = (0, Vec::new());
    for (file, example) in examples(&root) {
        let api = example["parameters"]["api-version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let spec = spec_for(&root, &api).unwrap_or_else(|| panic!("{}: no spec for api-version {api}", file.display()));
        cases += 1;
        if let Err(fault) = run_example(&mut h, &spec, &example) {
            let name = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
            failures.push(format!("{name}: {fault}"));
        }
    }
    eprintln!("spec examples: {cases} requests, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {cases} examples:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        cases >= MIN_CASES,
        "only {cases} example requests found (at least {MIN_CASES} expected)"
    );
}

/// The schema walk is not vacuous: with the spec's own definitions it finds a missing required field, a
/// wrong type deep inside, and accepts the spec's own example answer.
#[test]
fn the_schema_walk_finds_missing_and_mistyped_fields() {
    let Some(root) = specs() else { return };
    let spec = spec_for(&root, "2021-10-01").unwrap();
    let (_, _, op) = spec.operation("RuntimeRegistration_OperationStatusLookup").unwrap();
    let schema = &op["responses"]["200"]["schema"];
    let defs = &spec.doc["definitions"];
    let faults = |value: Value| {
        let mut f = Vec::new();
        check(schema, &value, defs, "body", &mut f);
        f
    };
    assert!(faults(json!({"operationId": "o", "status": "assigned"})).is_empty());
    let missing = faults(json!({"status": "assigned"}));
    assert!(
        missing.iter().any(|f| f.contains("body.operationId: required")),
        "{missing:?}"
    );
    let deep = faults(json!({"operationId": "o", "status": "assigned",
        "registrationState": {"registrationId": 7, "createdDateTimeUtc": "2026-01-01T00:00:00Z"}}));
    assert!(
        deep.iter()
            .any(|f| f.starts_with("body.registrationState.registrationId: string expected")),
        "{deep:?}"
    );
    let example = read_json(
        &root.join("stable/2021-10-01/examples/RuntimeRegistration_OperationStatusLookup_MaximumSet_Gen.json"),
    );
    let mut f = Vec::new();
    check(schema, &example["responses"]["200"]["body"], defs, "body", &mut f);
    assert!(f.is_empty(), "{f:?}");
}
