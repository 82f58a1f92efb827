//! CRUD of individual enrollments and enrollment groups, etags (stale ones refused, concurrent writers).

use base64::Engine as _;
use serde_json::json;

use crate::api::*;
use crate::common::*;

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
