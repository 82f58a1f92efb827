//! What real clients send and expect, found by running the official SDKs: the bulk path with a trailing
//! slash, the enrollment's `deviceId` in the assignment, DPS-shaped errors with `x-ms-error-code`, a huge
//! query not echoed back, and a state store only its owner can read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use common::*;
use dps_emulator::{Emulator, Enrollment, STATE_FILE, ServerOptions, ServicePolicy};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtc2VydmljZS1hcGktdGVzdHM=";
const DEVICE_KEY: &str = "ZGV2aWNlLWtleS1mb3ItdGhlLXNlcnZpY2UtYXBpLXRlc3Q=";

fn start(state_dir: Option<std::path::PathBuf>) -> Emulator {
    Emulator::start_with(
        config(vec![Enrollment::SymmetricGroup {
            name: "group".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        }]),
        0,
        ServerOptions {
            retry_after: std::time::Duration::ZERO,
            service_policies: vec![ServicePolicy::owner("provisioningserviceowner", OWNER_KEY)],
            state_dir,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

/// A service SAS token from the protocol's definition.
fn service_sas(host: &str, key_b64: &str) -> String {
    let sr = hsm_core::sas::url_encode(&host.to_ascii_lowercase());
    let expiry = now() + 3600;
    let sig = hsm_core::sas::hmac_sha256(&B64.decode(key_b64).unwrap(), format!("{sr}\n{expiry}").as_bytes());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn=provisioningserviceowner",
        hsm_core::sas::url_encode(&B64.encode(sig))
    )
}

/// Status, body and `x-ms-error-code` of a service call to the exact `path_and_query`.
fn call(emu: &Emulator, method: &str, path_and_query: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
    let agent = agent(emu, None, Tls::Any);
    let host = emu.global_endpoint();
    let request = agent
        .request(method, &format!("https://{host}{path_and_query}"))
        .set("Authorization", &service_sas(&host, OWNER_KEY));
    let result = match body {
        Some(b) => request.send_json(b),
        None => request.call(),
    };
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let code = response.header("x-ms-error-code").map(str::to_string);
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), code)
}

fn symmetric_enrollment(id: &str, device_id: Option<&str>) -> Value {
    let mut e = json!({"registrationId": id, "attestation": {"type": "symmetricKey",
        "symmetricKey": {"primaryKey": DEVICE_KEY, "secondaryKey": DEVICE_KEY}}});
    if let Some(d) = device_id {
        e["deviceId"] = json!(d);
    }
    e
}

/// The DPS error body: every field of ProvisioningServiceErrorDetails a DPS error carries, and the header.
fn assert_dps_error((status, body, header): &(u16, Value, Option<String>), expected: u16) {
    assert_eq!(*status, expected, "{body}");
    let code = body["errorCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric errorCode: {body}"));
    assert_eq!(code / 1000, u64::from(expected), "{body}");
    assert_eq!(header.as_deref(), Some(code.to_string().as_str()), "x-ms-error-code");
    assert!(body["trackingId"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    let at = body["timestampUtc"]
        .as_str()
        .unwrap_or_else(|| panic!("no timestampUtc: {body}"));
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
}

#[test]
fn bulk_with_a_trailing_slash_is_served() {
    let emu = start(None);
    let bulk = json!({"mode": "create", "enrollments": [symmetric_enrollment("slash-1", None)]});
    let (status, body, _) = call(&emu, "POST", "/enrollments/?api-version=2021-10-01", Some(bulk));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["isSuccessful"], true, "{body}");
    let (status, body, _) = call(&emu, "GET", "/enrollments/slash-1/?api-version=2021-10-01", None);
    assert_eq!(
        (status, body["registrationId"].as_str()),
        (200, Some("slash-1")),
        "{body}"
    );
}

#[test]
fn the_enrollment_device_id_is_the_assigned_device_id() {
    let emu = start(None);
    for (id, device_id) in [("named", Some("the-device-id")), ("unnamed", None)] {
        let (status, body, _) = call(
            &emu,
            "PUT",
            &format!("/enrollments/{id}?api-version=2021-10-01"),
            Some(symmetric_enrollment(id, device_id)),
        );
        assert_eq!(status, 200, "{body}");
        let agent = agent(&emu, None, Tls::Any);
        let body = provision(&agent, &emu, id, Some(&sas(id, DEVICE_KEY, now() + 600)));
        assert_eq!(body["registrationState"]["deviceId"], device_id.unwrap_or(id), "{body}");
        // The stored registration state says the same.
        let (_, state, _) = call(
            &emu,
            "GET",
            &format!("/registrations/{id}?api-version=2021-10-01"),
            None,
        );
        assert_eq!(state["deviceId"], device_id.unwrap_or(id), "{state}");
    }
}

#[test]
fn errors_have_the_dps_shape_and_header() {
    let emu = start(None);
    // Service API: unknown record, bad body, wrong key.
    assert_dps_error(
        &call(&emu, "GET", "/enrollments/nobody?api-version=2021-10-01", None),
        404,
    );
    assert_dps_error(
        &call(&emu, "PUT", "/enrollments/x?api-version=2021-10-01", Some(json!([1]))),
        400,
    );
    let agent = agent(&emu, None, Tls::Any);
    let response = agent
        .get(&format!(
            "https://{}/enrollments/x?api-version=2021-10-01",
            emu.global_endpoint()
        ))
        .set("Authorization", &service_sas(&emu.global_endpoint(), DEVICE_KEY))
        .call();
    let Err(ureq::Error::Status(_, r)) = response else {
        panic!("a wrong key was accepted")
    };
    let (status, code) = (r.status(), r.header("x-ms-error-code").map(str::to_string));
    assert_dps_error(&(status, r.into_json().unwrap(), code), 401);
    // Device API: unknown scope, a refused device.
    let response = agent
        .put(&register_url(&emu, "0ne99999999", "d"))
        .send_json(json!({"registrationId": "d"}));
    let Err(ureq::Error::Status(_, r)) = response else {
        panic!("an unknown scope was accepted")
    };
    let (status, code) = (r.status(), r.header("x-ms-error-code").map(str::to_string));
    assert_dps_error(&(status, r.into_json().unwrap(), code), 404);
    let response = agent
        .put(&register_url(&emu, SCOPE, "d"))
        .set("Authorization", &sas("d", DEVICE_KEY, now() + 600))
        .send_json(json!({"registrationId": "d"}));
    let Err(ureq::Error::Status(_, r)) = response else {
        panic!("a wrong device key was accepted")
    };
    let (status, code) = (r.status(), r.header("x-ms-error-code").map(str::to_string));
    assert_dps_error(&(status, r.into_json().unwrap(), code), 401);
}

#[test]
fn a_huge_query_is_not_echoed_back() {
    let emu = start(None);
    let query = format!("SELECT * FROM enrollments WHERE x = '{}'", "q".repeat(900 * 1024));
    let (status, body, code) = call(
        &emu,
        "POST",
        "/enrollments/query?api-version=2021-10-01",
        Some(json!({"query": query})),
    );
    let message = body["message"].as_str().unwrap();
    assert!(message.len() < 1024, "a {} byte message", message.len());
    assert!(message.contains("SELECT * FROM enrollments"), "{message}");
    assert_dps_error(&(status, body.clone(), code), 400);
}

#[test]
fn the_state_store_is_private_to_its_owner() {
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let parent = tempfile::tempdir().unwrap();
    // A new directory, and one that exists with wider rights.
    let fresh = parent.path().join("state");
    let existing = parent.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    for dir in [fresh, existing] {
        let emu = start(Some(dir.clone()));
        let (status, body, _) = call(
            &emu,
            "PUT",
            "/enrollments/stored?api-version=2021-10-01",
            Some(symmetric_enrollment("stored", None)),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        let mut files = 0;
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.join(format!("{STATE_FILE}{suffix}"));
            if file.exists() {
                files += 1;
                assert_eq!(mode(&file), 0o600, "{}", file.display());
            }
        }
        assert!(files >= 2, "the database and its WAL");
        drop(emu);
    }
}
