//! The `dps-emulator` binary keeps the service API's records in its state directory: a restart keeps them,
//! and a kill -9 in the middle of bulk calls loses none that were acknowledged (and keeps no half call).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use test_support::emulator::{Process, toml_config};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtc2VydmljZS1hcGktdGVzdHM=";
const SEED_KEY: &str = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLTAxMjM0NTY3ODk=";

/// A running emulator binary and a service client for it (from the connection string it wrote).
struct Running {
    process: Process,
    agent: ureq::Agent,
    host: String,
    auth: String,
}

fn start(dir: &Path) -> Running {
    start_seeded(dir, SEED_KEY)
}

/// Start with a configuration whose enrollment `seeded` has the key `seed_key`.
fn start_seeded(dir: &Path, seed_key: &str) -> Running {
    let toml = format!(
        "{}state_dir = \"state\"\n\
         [[enrollment]]\ntype = \"symmetric-individual\"\nregistration_id = \"seeded\"\nprimary_key = \"{seed_key}\"\n\
         [[service_policy]]\nname = \"owner\"\nprimary_key = \"{OWNER_KEY}\"\n\
         rights = [\"EnrollmentRead\", \"EnrollmentWrite\", \"RegistrationStatusRead\", \"RegistrationStatusWrite\"]\n",
        toml_config()
    );
    let cs_out = dir.join("connection-string");
    let _ = std::fs::remove_file(&cs_out);
    let process = Process::start(
        env!("CARGO_BIN_EXE_dps-emulator"),
        dir,
        &toml,
        &["--connection-string-out".as_ref(), cs_out.as_os_str()],
    );
    let ca = process.server_ca_pem.clone();
    let cs = std::fs::read_to_string(&cs_out).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&cs_out).unwrap().permissions().mode() & 0o777, 0o600);
    let parts: std::collections::HashMap<&str, &str> = cs.trim().split(';').filter_map(|p| p.split_once('=')).collect();
    let host = parts["HostName"].to_string();
    assert_eq!(parts["SharedAccessKeyName"], "owner");
    let sr = hsm_core::sas::url_encode(&host.to_ascii_lowercase());
    let se = now() + 3600;
    let sig = hsm_core::sas::hmac_sha256(
        &B64.decode(parts["SharedAccessKey"]).unwrap(),
        format!("{sr}\n{se}").as_bytes(),
    );
    let auth = format!(
        "SharedAccessSignature sr={sr}&sig={}&se={se}&skn=owner",
        hsm_core::sas::url_encode(&B64.encode(sig))
    );
    let agent = ureq::AgentBuilder::new()
        .tls_config(Arc::new(client_builder(&ca, Tls::Any).with_no_client_auth()))
        .timeout(Duration::from_secs(10))
        .build();
    Running {
        process,
        agent,
        host,
        auth,
    }
}

impl Running {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        let req = self
            .agent
            .request(method, &format!("https://{}{path}?api-version=2021-10-01", self.host))
            .set("Authorization", &self.auth);
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let r = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = r.status();
        let text = r.into_string().unwrap();
        Ok((
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        ))
    }

    /// Every individual enrollment id, through the paged query.
    fn all_ids(&self) -> HashSet<String> {
        let mut ids = HashSet::new();
        let mut continuation: Option<String> = None;
        loop {
            let mut req = self
                .agent
                .post(&format!(
                    "https://{}/enrollments/query?api-version=2021-10-01",
                    self.host
                ))
                .set("Authorization", &self.auth)
                .set("x-ms-max-item-count", "1000");
            if let Some(c) = &continuation {
                req = req.set("x-ms-continuation", c);
            }
            let r = req.send_json(json!({"query": "SELECT * FROM enrollments"})).unwrap();
            continuation = r.header("x-ms-continuation").map(str::to_string);
            let page: Vec<Value> = r.into_json().unwrap();
            ids.extend(page.iter().map(|e| e["registrationId"].as_str().unwrap().to_string()));
            if continuation.is_none() {
                return ids;
            }
        }
    }

    fn stop(mut self) {
        let (status, _, stderr) = self.process.stop("TERM");
        assert!(status.success(), "{status:?}: {stderr}");
    }
}

fn sym(id: &str) -> Value {
    json!({"registrationId": id, "attestation": {"type": "symmetricKey"}})
}

#[test]
fn a_restart_keeps_enrollments_groups_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(dir.path());
    let (s, one) = emu.call("PUT", "/enrollments/kept", Some(sym("kept"))).unwrap();
    assert_eq!(s, 200, "{one}");
    let (s, group) = emu
        .call(
            "PUT",
            "/enrollmentGroups/kept-group",
            Some(json!({"enrollmentGroupId": "kept-group", "attestation": {"type": "symmetricKey"}})),
        )
        .unwrap();
    assert_eq!(s, 200, "{group}");
    let (_, r) = emu
        .call(
            "POST",
            "/enrollments",
            Some(json!({"mode": "create", "enrollments": [sym("bulk-1"), sym("bulk-2")]})),
        )
        .unwrap();
    assert_eq!(r["isSuccessful"], true);
    // The configuration's enrollment was seeded; deleted through the API it stays deleted.
    assert_eq!(emu.call("GET", "/enrollments/seeded", None).unwrap().0, 200);
    assert_eq!(emu.call("DELETE", "/enrollments/seeded", None).unwrap().0, 204);
    emu.stop();
    assert!(dir.path().join("state").join(dps_emulator::STATE_FILE).is_file());

    let emu = start(dir.path());
    assert_eq!(emu.call("GET", "/enrollments/kept", None).unwrap(), (200, one));
    assert_eq!(
        emu.call("GET", "/enrollmentGroups/kept-group", None).unwrap(),
        (200, group)
    );
    assert_eq!(
        emu.all_ids(),
        ["kept", "bulk-1", "bulk-2"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(emu.call("GET", "/enrollments/seeded", None).unwrap().0, 404);
    emu.stop();

    // Changed in the file: copied in again, the file's version wins.
    let new_key = "bmV3LWtleS1pbi10aGUtY29uZmlndXJhdGlvbi1maWxl";
    let emu = start_seeded(dir.path(), new_key);
    let (s, seeded) = emu.call("GET", "/enrollments/seeded", None).unwrap();
    assert_eq!(s, 200, "{seeded}");
    assert_eq!(seeded["attestation"]["symmetricKey"]["primaryKey"], new_key);
    emu.stop();
    let emu = start_seeded(dir.path(), new_key);
    assert_eq!(emu.call("GET", "/enrollments/seeded", None).unwrap(), (200, seeded));
    emu.stop();
}

#[test]
fn fields_the_emulator_does_not_model_are_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(dir.path());
    let sent = json!({
        "registrationId": "rich",
        "deviceId": "rich-device",
        "attestation": {"type": "symmetricKey", "futureAttestationField": 1},
        "capabilities": {"iotEdge": true, "iotGateway": true},
        "initialTwin": {"tags": {"site": "a"}, "properties": {"desired": {"interval": 5}}},
        "optionalDeviceInformation": {"model": "m1"},
        "credentialPolicyName": "policy",
        "serviceSideSetting": {"keep": [1, 2]},
    });
    let (s, put) = emu.call("PUT", "/enrollments/rich", Some(sent.clone())).unwrap();
    assert_eq!(s, 200, "{put}");
    emu.stop();
    let emu = start(dir.path());
    let (s, got) = emu.call("GET", "/enrollments/rich", None).unwrap();
    assert_eq!((s, &got), (200, &put));
    for field in [
        "deviceId",
        "capabilities",
        "initialTwin",
        "optionalDeviceInformation",
        "credentialPolicyName",
        "serviceSideSetting",
    ] {
        assert_eq!(got.get(field), sent.get(field), "{field}: {got}");
    }
    assert_eq!(got["attestation"]["futureAttestationField"], 1, "{got}");
    emu.stop();
}

#[test]
fn a_kill_9_in_the_middle_of_bulk_calls_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Arc::new(start(dir.path()));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let unanswered = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (emu, acknowledged, unanswered, stop) =
                (emu.clone(), acknowledged.clone(), unanswered.clone(), stop.clone());
            std::thread::spawn(move || {
                for call in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let ids: Vec<String> = (0..10).map(|i| format!("w{w}-c{call:05}-{i}")).collect();
                    let items: Vec<Value> = ids.iter().map(|id| sym(id)).collect();
                    match emu.call(
                        "POST",
                        "/enrollments",
                        Some(json!({"mode": "create", "enrollments": items})),
                    ) {
                        Ok((200, r)) if r["isSuccessful"] == true => acknowledged.lock().unwrap().extend(ids),
                        Ok((status, r)) => panic!("bulk call answered {status}: {r}"),
                        Err(_) => {
                            unanswered.lock().unwrap().push(ids);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    // Let some calls through, then kill -9 while they keep coming.
    test_support::wait::until_true("200 enrollments acknowledged", Duration::from_secs(60), || {
        acknowledged.lock().unwrap().len() >= 200
    });
    emu.process.signal("KILL");
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    drop(Arc::try_unwrap(emu).ok().expect("the writers are done"));

    let emu = start(dir.path());
    let stored = emu.all_ids();
    let acknowledged = acknowledged.lock().unwrap();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged enrollments lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // A call cut off by the kill is all or nothing.
    let unanswered = unanswered.lock().unwrap();
    for ids in unanswered.iter() {
        let present = ids.iter().filter(|id| stored.contains(*id)).count();
        assert!(
            present == 0 || present == ids.len(),
            "{present} of {} of one bulk call stored",
            ids.len()
        );
    }
    // Nothing else appeared (the seeded enrollment aside).
    let sent: HashSet<&String> = acknowledged.iter().chain(unanswered.iter().flatten()).collect();
    assert!(stored.iter().all(|id| id == "seeded" || sent.contains(id)));
    eprintln!(
        "{} acknowledged, {} stored after kill -9",
        acknowledged.len(),
        stored.len()
    );
    emu.stop();
}
