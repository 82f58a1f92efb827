//! The service API on the HTTPS port: CRUD of each enrollment type, etags, bulk, paging, service SAS, and
//! devices registering with enrollments created through it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::*;
use dps_emulator::{Emulator, Enrollment, ServerOptions, ServicePolicy, ServiceRight};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const API: &str = "api-version=2021-10-01";
const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtc2VydmljZS1hcGktdGVzdHM=";
const READER_KEY: &str = "cmVhZGVyLWtleS1mb3ItdGhlLXNlcnZpY2UtYXBpLXRlc3Rz";
pub const DEVICE_KEY: &str = "ZGV2aWNlLWtleS1mb3ItdGhlLXNlcnZpY2UtYXBpLXRlc3Q=";

fn start(enrollments: Vec<Enrollment>) -> Emulator {
    Emulator::start_with(
        config(enrollments),
        0,
        ServerOptions {
            retry_after: std::time::Duration::ZERO,
            service_policies: vec![
                ServicePolicy::owner("provisioningserviceowner", OWNER_KEY),
                ServicePolicy {
                    name: "reader".into(),
                    key: READER_KEY.to_string().into(),
                    rights: vec![ServiceRight::EnrollmentRead, ServiceRight::RegistrationStatusRead],
                },
            ],
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

/// A service SAS token, computed here from the protocol's definition (not with the emulator's code).
fn sas(host: &str, policy: &str, key_b64: &str, expiry: u64) -> String {
    let sr = hsm_core::sas::url_encode(&host.to_ascii_lowercase());
    let key = B64.decode(key_b64).unwrap();
    let sig = hsm_core::sas::hmac_sha256(&key, format!("{sr}\n{expiry}").as_bytes());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={policy}",
        hsm_core::sas::url_encode(&B64.encode(sig))
    )
}

struct Client {
    agent: ureq::Agent,
    host: String,
    auth: String,
}

impl Client {
    fn new(emu: &Emulator, policy: &str, key: &str) -> Client {
        let host = emu.global_endpoint();
        Client {
            agent: agent(emu, None, Tls::Any),
            auth: sas(&host, policy, key, now() + 3600),
            host,
        }
    }

    fn owner(emu: &Emulator) -> Client {
        Client::new(emu, "provisioningserviceowner", OWNER_KEY)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("https://{}{path}?{API}", self.host))
            .set("Authorization", &self.auth)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, ureq::Response) {
        let mut req = self.request(method, path);
        for (n, v) in headers {
            req = req.set(n, v);
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let text = response.into_string().unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        // Rebuild a response carrying the headers for the callers that page.
        let mut fake = format!("HTTP/1.1 {status} X\r\n");
        for (n, v) in headers {
            fake.push_str(&format!("{n}: {v}\r\n"));
        }
        fake.push_str("\r\n");
        (status, body, fake.parse::<ureq::Response>().unwrap())
    }

    fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, b, _) = self.send("PUT", path, Some(body), &[]);
        (s, b)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (s, b, _) = self.send("GET", path, None, &[]);
        (s, b)
    }

    fn delete(&self, path: &str, etag: Option<&str>) -> u16 {
        let headers: Vec<(&str, &str)> = etag.map(|e| ("If-Match", e)).into_iter().collect();
        self.send("DELETE", path, None, &headers).0
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, b, _) = self.send("POST", path, Some(body), &[]);
        (s, b)
    }
}

fn assert_error(status: u16, body: &Value, expected: u16, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(
        body["errorCode"].as_u64().unwrap() / 1000,
        u64::from(expected),
        "{body}"
    );
    assert!(body["trackingId"].as_str().is_some_and(|t| t.len() >= 32), "{body}");
    assert!(body["timestampUtc"].as_str().is_some(), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
}

/// A syntactically valid `TPM2B_PUBLIC` of an RSA-2048 restricted decryption key (an EK's shape); enough for
/// enrollment CRUD, where no TPM answers a challenge.
fn ek_b64(seed: u8) -> String {
    let mut body = Vec::new();
    body.extend_from_slice(&0x0001u16.to_be_bytes()); // RSA
    body.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA-256
    body.extend_from_slice(&0x0003_00B2u32.to_be_bytes()); // fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt
    body.extend_from_slice(&0u16.to_be_bytes()); // authPolicy
    body.extend_from_slice(&0x0006u16.to_be_bytes()); // AES
    body.extend_from_slice(&128u16.to_be_bytes());
    body.extend_from_slice(&0x0043u16.to_be_bytes()); // CFB
    body.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme NULL
    body.extend_from_slice(&2048u16.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&256u16.to_be_bytes());
    let mut modulus = vec![seed | 0x80; 256];
    modulus[255] |= 1;
    body.extend_from_slice(&modulus);
    let mut out = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    B64.encode(out)
}

#[test]
fn individual_enrollments_of_each_attestation_type_are_created_read_updated_and_deleted() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let ca = Ca::root("individual root");
    let leaf = ca.leaf("x509-device");
    let cases = [
        (
            "sym-device",
            json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": DEVICE_KEY}}),
        ),
        (
            "tpm-device",
            json!({"type": "tpm", "tpm": {"endorsementKey": ek_b64(1)}}),
        ),
        (
            "x509-device",
            json!({"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate":
                hsm_core::pem::certificates_to_pem(&[leaf.leaf()])}}}}),
        ),
    ];
    for (id, attestation) in cases {
        let path = format!("/enrollments/{id}");
        assert_error_404(&c, &path);
        let (s, created) = c.put(
            &path,
            json!({"registrationId": id, "attestation": attestation, "iotHubHostName": HUB,
                   "initialTwin": {"tags": {"line": 3}}, "capabilities": {"iotEdge": false}}),
        );
        assert_eq!(s, 200, "{created}");
        assert_eq!(created["registrationId"], id);
        assert_eq!(created["provisioningStatus"], "enabled");
        assert_eq!(created["initialTwin"]["tags"]["line"], 3);
        let etag = created["etag"].as_str().unwrap().to_string();
        for f in ["createdDateTimeUtc", "lastUpdatedDateTimeUtc"] {
            assert!(created[f].as_str().is_some(), "{f} in {created}");
        }
        let (s, read) = c.get(&path);
        assert_eq!(s, 200);
        assert_eq!(read, created);
        let mut changed = read.clone();
        changed["deviceId"] = json!(format!("{id}-renamed"));
        let (s, updated) = c.put(&path, changed);
        assert_eq!(s, 200, "{updated}");
        assert_eq!(updated["deviceId"], format!("{id}-renamed"));
        assert_ne!(updated["etag"], etag.as_str(), "an update changes the etag");
        assert_eq!(updated["createdDateTimeUtc"], created["createdDateTimeUtc"]);
        let (s, mechanism) = c.post(&format!("{path}/attestationmechanism"), json!({}));
        assert_eq!((s, &mechanism["type"]), (200, &updated["attestation"]["type"]));
        assert_eq!(c.delete(&path, None), 204);
        assert_error_404(&c, &path);
        assert_eq!(c.delete(&path, None), 404);
    }
    // Generated keys when none are given; certificate info filled in.
    let (s, sym) = c.put(
        "/enrollments/keyless",
        json!({"registrationId": "keyless", "attestation": {"type": "symmetricKey"}}),
    );
    assert_eq!(s, 200, "{sym}");
    for k in ["primaryKey", "secondaryKey"] {
        assert_eq!(
            B64.decode(sym["attestation"]["symmetricKey"][k].as_str().unwrap())
                .unwrap()
                .len(),
            64
        );
    }
}

fn assert_error_404(c: &Client, path: &str) {
    let (s, b) = c.get(path);
    assert_error(s, &b, 404, "no ");
}

#[test]
fn enrollment_groups_x509_and_symmetric_are_created_read_updated_and_deleted() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let ca = Ca::root("group root");
    let cases = [
        (
            "sym-group",
            json!({"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY, "secondaryKey": DEVICE_KEY}}),
        ),
        (
            "x509-group",
            json!({"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": ca.pem()}}}}),
        ),
    ];
    for (id, attestation) in cases {
        let path = format!("/enrollmentGroups/{id}");
        let (s, created) = c.put(&path, json!({"enrollmentGroupId": id, "attestation": attestation}));
        assert_eq!(s, 200, "{created}");
        assert_eq!(created["enrollmentGroupId"], id);
        let (s, read) = c.get(&path);
        assert_eq!((s, &read), (200, &created));
        let mut changed = read.clone();
        changed["provisioningStatus"] = json!("disabled");
        let (s, updated) = c.put(&path, changed);
        assert_eq!(
            (s, &updated["provisioningStatus"]),
            (200, &json!("disabled")),
            "{updated}"
        );
        assert_eq!(c.delete(&path, updated["etag"].as_str()), 204);
        assert_eq!(c.get(&path).0, 404);
    }
    let info = &c
        .put(
            "/enrollmentGroups/info",
            json!({"enrollmentGroupId": "info", "attestation": {"type": "x509",
                   "x509": {"signingCertificates": {"primary": {"certificate": B64.encode(ca.der())}}}}}),
        )
        .1["attestation"]["x509"]["signingCertificates"]["primary"]["info"];
    assert_eq!(info["subjectName"], "CN=group root", "{info}");
    let (s, b64_pem) = c.put(
        "/enrollmentGroups/info",
        json!({"enrollmentGroupId": "info", "attestation": {"type": "x509",
               "x509": {"signingCertificates": {"primary": {"certificate": B64.encode(ca.pem())}}}}}),
    );
    assert_eq!(s, 200, "base64 of PEM is accepted too: {b64_pem}");
    assert_eq!(
        b64_pem["attestation"]["x509"]["signingCertificates"]["primary"]["info"],
        *info
    );
    assert_eq!(info["sha256Thumbprint"].as_str().unwrap().len(), 64);
    // Wrong shapes name what is wrong.
    for (body, needle) in [
        (
            json!({"enrollmentGroupId": "g", "attestation": {"type": "tpm", "tpm": {"endorsementKey": ek_b64(2)}}}),
            "TPM",
        ),
        (
            json!({"enrollmentGroupId": "other", "attestation": {"type": "symmetricKey"}}),
            "does not match 'g'",
        ),
        (json!({"enrollmentGroupId": "g"}), "attestation is missing"),
        (
            json!({"enrollmentGroupId": "g", "attestation": {"type": "x509", "x509": {"caReferences": {"primary": "ca"}}}}),
            "caReferences",
        ),
        (
            json!({"enrollmentGroupId": "g", "attestation": {"type": "x509", "x509": {"signingCertificates": {"primary": {"certificate": "not a cert"}}}}}),
            "neither PEM nor base64 DER",
        ),
        (
            json!({"enrollmentGroupId": "g", "attestation": {"type": "symmetricKey"}, "provisioningStatus": "off"}),
            "provisioningStatus",
        ),
    ] {
        let (s, b) = c.put("/enrollmentGroups/g", body);
        assert_error(s, &b, 400, needle);
    }
}

#[test]
fn a_stale_etag_is_refused_with_412_and_the_current_one_accepted() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let body = json!({"registrationId": "e1", "attestation": {"type": "symmetricKey"}});
    let (_, first) = c.put("/enrollments/e1", body.clone());
    let stale = first["etag"].as_str().unwrap().to_string();
    let (s, second, _) = c.send("PUT", "/enrollments/e1", Some(first.clone()), &[("If-Match", &stale)]);
    assert_eq!(s, 200, "the current etag is accepted: {second}");
    let current = second["etag"].as_str().unwrap().to_string();
    assert_ne!(stale, current);
    let (s, b, _) = c.send("PUT", "/enrollments/e1", Some(first), &[("If-Match", &stale)]);
    assert_error(s, &b, 412, "does not match the current etag");
    assert_eq!(c.delete("/enrollments/e1", Some(&stale)), 412);
    assert_eq!(c.get("/enrollments/e1").1["etag"], current.as_str(), "nothing changed");
    let (s, b, _) = c.send(
        "PUT",
        "/enrollments/absent",
        Some(json!({"registrationId": "absent", "attestation": {"type": "symmetricKey"}})),
        &[("If-Match", &current)],
    );
    assert_error(s, &b, 412, "no enrollment 'absent'");
    assert_eq!(c.delete("/enrollments/e1", Some(&current)), 204);
}

#[test]
fn bulk_operations_report_each_failure_and_keep_the_successes() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let sym = |id: &str| json!({"registrationId": id, "attestation": {"type": "symmetricKey"}});
    c.put("/enrollments/exists", sym("exists"));
    let (s, r) = c.post(
        "/enrollments",
        json!({"mode": "create", "enrollments": [sym("b1"), sym("exists"), sym("b2"),
               {"registrationId": "bad", "attestation": {"type": "none"}}, sym("bad id!")]}),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["isSuccessful"], false);
    let errors = r["errors"].as_array().unwrap();
    let by_id = |id: &str| {
        errors
            .iter()
            .find(|e| e["registrationId"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(errors.len(), 3, "{r}");
    assert_eq!(by_id("exists")["errorCode"].as_u64().unwrap() / 1000, 409);
    assert_eq!(by_id("bad")["errorCode"].as_u64().unwrap() / 1000, 400);
    assert!(by_id("bad")["errorStatus"].as_str().unwrap().contains("not supported"));
    assert_eq!(by_id("bad id!")["errorCode"].as_u64().unwrap() / 1000, 400);
    for id in ["b1", "b2", "exists"] {
        assert_eq!(c.get(&format!("/enrollments/{id}")).0, 200, "{id}");
    }
    assert_eq!(c.get("/enrollments/bad").0, 404);
    // updateIfMatchETag: one current etag, one stale; delete: one absent.
    let b1 = c.get("/enrollments/b1").1;
    let mut b2 = c.get("/enrollments/b2").1;
    b2["etag"] = json!("\"stale\"");
    let (_, r) = c.post(
        "/enrollments",
        json!({"mode": "updateIfMatchETag", "enrollments": [b1, b2]}),
    );
    assert_eq!(r["errors"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["errors"][0]["registrationId"], "b2");
    assert_eq!(r["errors"][0]["errorCode"].as_u64().unwrap() / 1000, 412);
    let (_, r) = c.post(
        "/enrollments",
        json!({"mode": "delete", "enrollments": [sym("b1"), sym("never")]}),
    );
    assert_eq!(r["errors"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["errors"][0]["registrationId"], "never");
    assert_eq!(c.get("/enrollments/b1").0, 404);
    // All good: isSuccessful, no errors. Groups answer with enrollmentGroupId.
    let (_, r) = c.post(
        "/enrollments",
        json!({"mode": "update", "enrollments": [sym("b2"), sym("b3")]}),
    );
    assert_eq!(r, json!({"isSuccessful": true, "errors": []}));
    let (_, r) = c.post(
        "/enrollmentGroups",
        json!({"mode": "create", "enrollmentGroups": [{"enrollmentGroupId": "g1", "attestation": {"type": "symmetricKey"}},
               {"enrollmentGroupId": "g1", "attestation": {"type": "symmetricKey"}}]}),
    );
    assert_eq!(r["errors"][0]["enrollmentGroupId"], "g1", "{r}");
    // More than 10, none, or a bad mode: the whole call is refused.
    let eleven: Vec<Value> = (0..11).map(|i| sym(&format!("many-{i}"))).collect();
    let (s, b) = c.post("/enrollments", json!({"mode": "create", "enrollments": eleven}));
    assert_error(s, &b, 400, "1 to 10 records, found 11");
    assert_eq!(c.get("/enrollments/many-0").0, 404);
    let (s, b) = c.post("/enrollments", json!({"mode": "upsert", "enrollments": [sym("x")]}));
    assert_error(s, &b, 400, "mode \"upsert\"");
}

#[test]
fn queries_page_with_continuation_tokens() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let mut expected = Vec::new();
    for chunk in 0..3 {
        let items: Vec<Value> = (0..9)
            .map(|i| {
                let id = format!("page-{:02}", chunk * 9 + i);
                expected.push(id.clone());
                json!({"registrationId": id, "attestation": {"type": "symmetricKey"}})
            })
            .collect();
        let (_, r) = c.post("/enrollments", json!({"mode": "create", "enrollments": items}));
        assert_eq!(r["isSuccessful"], true, "{r}");
    }
    let mut seen = Vec::new();
    let mut continuation: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut headers = vec![("x-ms-max-item-count", "10")];
        if let Some(t) = continuation.as_deref() {
            headers.push(("x-ms-continuation", t));
        }
        let (s, body, response) = c.send(
            "POST",
            "/enrollments/query",
            Some(json!({"query": "SELECT * FROM enrollments"})),
            &headers,
        );
        assert_eq!(s, 200, "{body}");
        pages += 1;
        let items = body.as_array().unwrap();
        assert!(items.len() <= 10);
        assert_eq!(response.header("x-ms-item-type"), Some("enrollment"));
        seen.extend(items.iter().map(|e| e["registrationId"].as_str().unwrap().to_string()));
        match response.header("x-ms-continuation") {
            Some(t) => continuation = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    let (s, b, _) = c.send(
        "POST",
        "/enrollments/query",
        Some(json!({"query": "SELECT * FROM enrollments"})),
        &[("x-ms-continuation", "%%%")],
    );
    assert_error(s, &b, 400, "x-ms-continuation");
    let (s, b) = c.post(
        "/enrollments/query",
        json!({"query": "SELECT * FROM enrollments WHERE x = 1"}),
    );
    assert_error(s, &b, 400, "not supported");
    let (s, b) = c.post(
        "/enrollmentGroups/query",
        json!({"query": "SELECT * FROM enrollmentGroups"}),
    );
    assert_eq!((s, b), (200, json!([])));
}

#[test]
fn bad_or_expired_tokens_are_401_and_missing_rights_403() {
    let emu = start(vec![]);
    let host = emu.global_endpoint();
    let reader = Client::new(&emu, "reader", READER_KEY);
    let body = json!({"registrationId": "r1", "attestation": {"type": "symmetricKey"}});
    let (s, b) = reader.put("/enrollments/r1", body.clone());
    assert_error(s, &b, 403, "lacks the right EnrollmentWrite");
    assert_eq!(reader.get("/enrollments/r1").0, 404, "reading is allowed");
    assert_eq!(reader.delete("/registrations/r1", None), 403);
    let with = |auth: Option<String>| {
        let mut req = reader.agent.get(&format!("https://{host}/enrollments/r1?{API}"));
        if let Some(a) = auth {
            req = req.set("Authorization", &a);
        }
        outcome(req.call())
    };
    for (auth, needle) in [
        (None, "no Authorization header"),
        (Some(sas(&host, "reader", READER_KEY, now() - 10)), "expired"),
        (
            Some(sas(&host, "reader", OWNER_KEY, now() + 60)),
            "does not match the key of shared access policy 'reader'",
        ),
        (
            Some(sas(&host, "nobody", READER_KEY, now() + 60)),
            "no shared access policy named 'nobody'",
        ),
        (
            Some(sas("other.example", "reader", READER_KEY, now() + 60)),
            "is not this service's host",
        ),
        (Some("SharedAccessSignature sr=x".to_string()), "malformed SAS token"),
    ] {
        let (s, b) = with(auth);
        assert_error(s, &b, 401, needle);
    }
    // The connection string the emulator prints works as it is.
    let cs = emu.service_connection_string(None).unwrap();
    let parts: std::collections::HashMap<&str, &str> = cs.split(';').filter_map(|p| p.split_once('=')).collect();
    assert_eq!(parts["HostName"], host);
    assert_eq!(parts["SharedAccessKeyName"], "provisioningserviceowner");
    let c = Client::new(&emu, parts["SharedAccessKeyName"], parts["SharedAccessKey"]);
    assert_eq!(c.put("/enrollments/r1", body).0, 200);
}

#[test]
fn a_device_registers_at_once_with_an_enrollment_created_through_the_api() {
    // The configuration file's enrollment is in the store too.
    let emu = start(vec![Enrollment::SymmetricIndividual {
        registration_id: "seeded".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let c = Client::owner(&emu);
    assert_eq!(
        c.get("/enrollments/seeded").1["attestation"]["symmetricKey"]["primaryKey"],
        DEVICE_KEY
    );
    let device = agent(&emu, None, Tls::Any);
    let token = |id: &str, key: &str| {
        hsm_core::sas::Audience::Dps {
            id_scope: SCOPE.into(),
            registration_id: id.into(),
        }
        .sign_with_key(&B64.decode(key).unwrap(), now() + 600)
    };
    // Not enrolled yet: refused.
    assert_denied(
        put_register(&device, &emu, "api-device", Some(&token("api-device", DEVICE_KEY))),
        "no symmetric key enrollment",
    );
    let (s, b) = c.put(
        "/enrollments/api-device",
        json!({"registrationId": "api-device", "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": DEVICE_KEY}}}),
    );
    assert_eq!(s, 200, "{b}");
    let assigned = provision(&device, &emu, "api-device", Some(&token("api-device", DEVICE_KEY)));
    assert_assigned(&assigned, "api-device");
    // The registration state is recorded and visible through the API, and in the enrollment.
    let (s, state) = c.get("/registrations/api-device");
    assert_eq!(s, 200, "{state}");
    assert_eq!(state["status"], "assigned");
    assert_eq!(state["assignedHub"], HUB);
    assert_eq!(
        c.get("/enrollments/api-device").1["registrationState"]["status"],
        "assigned"
    );
    // A group made through the API admits a device with a derived key; its states are queried by group.
    let (s, b) = c.put(
        "/enrollmentGroups/fleet",
        json!({"enrollmentGroupId": "fleet", "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY}}}),
    );
    assert_eq!(s, 200, "{b}");
    let derived = hsm_core::sas::derive_device_key(GROUP_KEY, "fleet-7").unwrap();
    let group_token = hsm_core::sas::Audience::Dps {
        id_scope: SCOPE.into(),
        registration_id: "fleet-7".into(),
    }
    .sign_with_key(&derived, now() + 600);
    assert_assigned(&provision(&device, &emu, "fleet-7", Some(&group_token)), "fleet-7");
    let (s, states) = c.post("/registrations/fleet/query", json!({}));
    assert_eq!(s, 200, "{states}");
    assert_eq!(states.as_array().unwrap().len(), 1);
    assert_eq!(states[0]["registrationId"], "fleet-7");
    // Registration states are deleted with their own right; If-Match is checked.
    assert_eq!(c.delete("/registrations/fleet-7", Some("\"stale\"")), 412);
    assert_eq!(c.delete("/registrations/fleet-7", None), 204);
    assert_eq!(c.get("/registrations/fleet-7").0, 404);
    // Deleting the enrollment refuses the device at once.
    assert_eq!(c.delete("/enrollments/api-device", None), 204);
    assert_denied(
        put_register(&device, &emu, "api-device", Some(&token("api-device", DEVICE_KEY))),
        "SAS signature does not match a key derived for 'api-device'",
    );
}

#[test]
fn a_disabled_enrollment_ends_the_registration_disabled() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let device = agent(&emu, None, Tls::Any);
    let (_, record) = c.put(
        "/enrollments/off-device",
        json!({"registrationId": "off-device", "provisioningStatus": "disabled",
               "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": DEVICE_KEY}}}),
    );
    let token = hsm_core::sas::Audience::Dps {
        id_scope: SCOPE.into(),
        registration_id: "off-device".into(),
    }
    .sign_with_key(&B64.decode(DEVICE_KEY).unwrap(), now() + 600);
    let body = provision(&device, &emu, "off-device", Some(&token));
    assert_eq!(body["status"], "disabled", "{body}");
    assert_eq!(body["registrationState"]["status"], "disabled");
    assert!(body["registrationState"].get("assignedHub").is_none(), "{body}");
    assert_eq!(c.get("/registrations/off-device").1["status"], "disabled");
    // Enabled again: assigned at once.
    let mut enabled = record;
    enabled["provisioningStatus"] = json!("enabled");
    assert_eq!(c.put("/enrollments/off-device", enabled).0, 200);
    assert_assigned(&provision(&device, &emu, "off-device", Some(&token)), "off-device");
    // A disabled group refuses its devices too.
    c.put(
        "/enrollmentGroups/off-group",
        json!({"enrollmentGroupId": "off-group", "provisioningStatus": "disabled",
               "attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": GROUP_KEY}}}),
    );
    let derived = hsm_core::sas::derive_device_key(GROUP_KEY, "member").unwrap();
    let member = hsm_core::sas::Audience::Dps {
        id_scope: SCOPE.into(),
        registration_id: "member".into(),
    }
    .sign_with_key(&derived, now() + 600);
    assert_eq!(provision(&device, &emu, "member", Some(&member))["status"], "disabled");
}

#[test]
fn concurrent_updates_with_the_same_etag_let_exactly_one_win() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let (_, record) = c.put(
        "/enrollments/contended",
        json!({"registrationId": "contended", "attestation": {"type": "symmetricKey"}}),
    );
    let etag = record["etag"].as_str().unwrap().to_string();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (c, etag, mut record) = (Client::owner(&emu), etag.clone(), record.clone());
                s.spawn(move || {
                    record["deviceId"] = json!(format!("writer-{i}"));
                    c.send("PUT", "/enrollments/contended", Some(record), &[("If-Match", &etag)])
                        .0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 7, "{statuses:?}");
    let winner = c.get("/enrollments/contended").1;
    assert!(winner["deviceId"].as_str().unwrap().starts_with("writer-"));
    assert_ne!(winner["etag"], etag.as_str());
}
