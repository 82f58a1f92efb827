//! Every device example of the published DPS specification (`RuntimeRegistration_*` of every
//! `stable|preview/<version>/examples/` and of the TypeSpec-side `device/examples/<version>/`), request
//! and responses, decodes into our types and encodes back equal.
//!
//! The specs are test input beside the repository (`../shared/specs/dps`, never copied in): without
//! them the test fails in CI (`CI` set) and skips loudly elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use dps_wire::ErrorDetails;
use dps_wire::device::{DeviceRegistration, DeviceRegistrationResult, RegistrationOperationStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Fewer files than this means the copy is broken (the copy holds 36).
const MIN_FILES: usize = 30;

fn specs() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let dir = root.join("shared/specs/dps/DeviceProvisioningServices");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("the DPS specs are missing at {} (CI must provide them)", dir.display());
    }
    eprintln!(
        "SKIPPED: the DPS specs are not at {}; the device examples were not checked",
        dir.display()
    );
    None
}

/// `RuntimeRegistration_*.json` directly under every `{stable,preview}/<v>/examples` and
/// `device/examples/<v>`.
fn example_files(dir: &Path) -> Vec<PathBuf> {
    let mut folders = Vec::new();
    for kind in ["stable", "preview"] {
        for version in std::fs::read_dir(dir.join(kind)).into_iter().flatten().flatten() {
            folders.push(version.path().join("examples"));
        }
    }
    for version in std::fs::read_dir(dir.join("device/examples"))
        .into_iter()
        .flatten()
        .flatten()
    {
        folders.push(version.path());
    }
    let mut files: Vec<PathBuf> = folders
        .iter()
        .flat_map(|f| std::fs::read_dir(f).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("RuntimeRegistration_") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

/// Decode `body` as `T` and encode it back: the same JSON.
fn round_trip<T: DeserializeOwned + Serialize>(file: &Path, what: &str, body: &Value) -> T {
    let typed: T = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{}: {what} does not decode: {e}", file.display()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, body, "{}: {what} does not encode back equal", file.display());
    typed
}

/// The fields a registration state left untyped (in some `extra`): none for a spec example.
fn untyped(r: &DeviceRegistrationResult) -> Vec<String> {
    let mut keys: Vec<String> = r.extra.keys().cloned().collect();
    if let Some(x) = &r.x509 {
        keys.extend(x.extra.keys().cloned());
        for info in [&x.certificate_info, &x.signing_certificate_info].into_iter().flatten() {
            keys.extend(info.extra.keys().cloned());
        }
    }
    keys.extend(r.tpm.iter().flat_map(|t| t.extra.keys().cloned()));
    keys.extend(r.symmetric_key.iter().flat_map(|k| k.extra.keys().cloned()));
    keys
}

#[test]
fn every_device_example_round_trips() {
    let Some(dir) = specs() else { return };
    let files = example_files(&dir);
    assert!(
        files.len() >= MIN_FILES,
        "only {} device example files under {}",
        files.len(),
        dir.display()
    );
    let mut bodies = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let example: Value = serde_json::from_str(&text).unwrap();
        let operation = example["operationId"].as_str().unwrap_or_default().to_string();
        let parameters = &example["parameters"];
        for key in ["body", "deviceRegistration"] {
            if let Some(body) = parameters.get(key) {
                let r: DeviceRegistration = round_trip(file, &format!("request {key}"), body);
                let tpm_extra = r.tpm.as_ref().map_or(0, |t| t.extra.len());
                assert!(
                    r.extra.is_empty() && tpm_extra == 0,
                    "{}: untyped request fields",
                    file.display()
                );
                bodies += 1;
            }
        }
        let responses = example["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{}: no responses", file.display());
        for (status, response) in responses {
            let Some(body) = response.get("body") else { continue };
            let what = format!("response {status}");
            let code: u16 = status.parse().unwrap_or(0);
            if code >= 400 || status == "default" {
                round_trip::<ErrorDetails>(file, &what, body);
            } else if operation.ends_with("DeviceRegistrationStatusLookup") {
                let r: DeviceRegistrationResult = round_trip(file, &what, body);
                assert_eq!(untyped(&r), Vec::<String>::new(), "{}: {what}", file.display());
            } else {
                assert!(
                    operation.ends_with("RegisterDevice")
                        || operation.ends_with("RegisterDeviceAndIssueCertificate")
                        || operation.ends_with("OperationStatusLookup"),
                    "{}: unknown device operation {operation:?}",
                    file.display()
                );
                let s: RegistrationOperationStatus = round_trip(file, &what, body);
                assert!(s.extra.is_empty(), "{}: {what}: untyped {:?}", file.display(), s.extra);
                let state = s.registration_state.as_ref().map(untyped).unwrap_or_default();
                assert_eq!(state, Vec::<String>::new(), "{}: {what}", file.display());
            }
            bodies += 1;
        }
    }
    eprintln!("{} device example files, {bodies} bodies round-tripped", files.len());
    assert!(bodies >= 2 * MIN_FILES, "only {bodies} bodies");
}

#[test]
fn examples_with_a_csr_or_a_chain_keep_them_typed() {
    let Some(dir) = specs() else { return };
    let mut chains = 0;
    for file in example_files(&dir) {
        let example: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for response in example["responses"].as_object().into_iter().flat_map(|r| r.values()) {
            let body = &response["body"];
            let state = match body.get("registrationState") {
                Some(s) => s,
                None => body,
            };
            if state.get("issuedCertificateChain").is_some() {
                let typed: DeviceRegistrationResult = serde_json::from_value(state.clone()).unwrap();
                assert!(typed.issued_certificate_chain.is_some(), "{}", file.display());
                assert!(!typed.extra.contains_key("issuedCertificateChain"));
                chains += 1;
            }
        }
    }
    assert!(chains > 0, "no example carries an issuedCertificateChain");
}
