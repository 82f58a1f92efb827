//! dps-service against the emulator's service API: CRUD of each record type, etags, bulk with partial
//! failures and re-runs, paging, 401/403, and enrollments made here then used by dps-device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use dps_service::bulk::{self, BulkOptions, ItemReport, Outcome};
use dps_service::input::{CsvEnrollments, JsonLines};
use dps_service::models::{SymmetricKeyAttestation, X509Attestation};
use dps_service::{
    Attestation, BulkMode, EnrollmentGroup, Error, IndividualEnrollment, ProvisioningStatus, TpmAttestation,
};
use zeroize::Zeroizing;

const DEVICE_KEY: &str = "ZGV2aWNlLWtleS1mb3ItZHBzLXNlcnZpY2UtdGVzdHMtMQ==";

fn sym(key: Option<&str>) -> Attestation {
    Attestation::symmetric_key(SymmetricKeyAttestation::new(
        key.map(|k| Zeroizing::new(k.to_string())),
        None,
    ))
}

#[test]
fn individual_enrollments_of_each_type_round_trip_with_etags() {
    let emu = start();
    let c = owner(&emu);
    let pki = pki("x509-dev");
    let cases = [
        ("tpm-dev", Attestation::tpm(TpmAttestation::new(ek(1), None))),
        (
            "x509-dev",
            Attestation::x509(X509Attestation::client_certificate(pki.leaf_pem.clone())),
        ),
        ("sym-dev", sym(Some(DEVICE_KEY))),
    ];
    for (id, att) in cases {
        let mut e = IndividualEnrollment::new(id, att.clone());
        e.device_id = Some(format!("{id}-device"));
        let created = c.put_enrollment(&e).unwrap();
        assert_eq!(created.registration_id, id);
        assert_eq!(created.attestation.kind, att.kind);
        assert_eq!(c.get_enrollment_attestation(id).unwrap(), created.attestation, "{id}");
        let etag1 = created.common.etag.clone().expect("the service sets an etag");

        let mut got = c.get_enrollment(id).unwrap();
        assert_eq!(got.device_id.as_deref(), Some(format!("{id}-device").as_str()));
        assert_eq!(got.common.etag.as_deref(), Some(etag1.as_str()));

        // Update with the current etag: accepted, new etag.
        got.common.provisioning_status = Some(ProvisioningStatus::Disabled);
        let updated = c.put_enrollment(&got).unwrap();
        assert_eq!(updated.common.provisioning_status, Some(ProvisioningStatus::Disabled));
        let etag2 = updated.common.etag.clone().unwrap();
        assert_ne!(etag1, etag2);

        // The stale etag: 412 on update and on delete, and the record is unchanged.
        got.common.etag = Some(etag1.clone());
        got.common.provisioning_status = Some(ProvisioningStatus::Enabled);
        let e412 = c.put_enrollment(&got).unwrap_err();
        assert!(matches!(e412, Error::PreconditionFailed { .. }), "{e412}");
        assert!(e412.to_string().contains(id), "{e412}");
        let e412 = c.delete_enrollment(id, Some(&etag1)).unwrap_err();
        assert_eq!(e412.status(), Some(412), "{e412}");
        assert_eq!(
            c.get_enrollment(id).unwrap().common.provisioning_status,
            Some(ProvisioningStatus::Disabled)
        );

        c.delete_enrollment(id, Some(&etag2)).unwrap();
        let gone = c.get_enrollment(id).unwrap_err();
        assert!(matches!(gone, Error::NotFound { .. }), "{gone}");
        assert!(matches!(
            c.delete_enrollment(id, None).unwrap_err(),
            Error::NotFound { .. }
        ));
    }
}

#[test]
fn enrollment_groups_x509_and_symmetric_round_trip() {
    let emu = start();
    let c = owner(&emu);
    let pki = pki("leaf");
    for (id, att) in [
        (
            "x509-group",
            Attestation::x509(X509Attestation::signing_certificate(pki.ca_pem.clone())),
        ),
        ("sym-group", sym(None)),
    ] {
        let created = c.put_group(&EnrollmentGroup::new(id, att)).unwrap();
        if let Some(k) = &created.attestation.symmetric_key {
            assert!(k.primary_key.is_some(), "the service generates the keys");
        }
        // The attestation mechanism call answers the group's mechanism, keys included.
        let mechanism = c.get_group_attestation(id).unwrap();
        assert_eq!(mechanism.kind, created.attestation.kind);
        if let Some(k) = &created.attestation.symmetric_key {
            let read = mechanism.symmetric_key.as_ref().expect("the keys");
            assert_eq!(read.primary_key, k.primary_key);
        }
        let mut g = c.get_group(id).unwrap();
        assert_eq!(g.enrollment_group_id, id);
        g.common.iot_hub_host_name = Some(HUB.into());
        let etag = c.put_group(&g).unwrap().common.etag.unwrap();
        assert!(matches!(
            c.delete_group(id, Some("\"stale\"")).unwrap_err(),
            Error::PreconditionFailed { .. }
        ));
        c.delete_group(id, Some(&etag)).unwrap();
        assert!(matches!(c.get_group(id).unwrap_err(), Error::NotFound { .. }));
    }
    let groups: Vec<_> = c.query_groups("SELECT * FROM enrollmentGroups", None).collect();
    assert!(groups.is_empty(), "{groups:?}");
}

fn records(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"registrationId\":\"{prefix}-{i:05}\",\"attestation\":{{\"type\":\"symmetricKey\",\"symmetricKey\":{{\"primaryKey\":\"{DEVICE_KEY}\"}}}}}}\n"
            )
        })
        .collect()
}

#[test]
fn bulk_reports_every_failure_by_id_and_a_rerun_reports_existing_records() {
    let emu = start();
    let c = owner(&emu);
    // 23 good records, one the service refuses (bad id), one line that is not JSON.
    let mut text = records(23, "bulk");
    text.insert_str(
        0,
        "{\"registrationId\":\"bad id!\",\"attestation\":{\"type\":\"symmetricKey\"}}\n",
    );
    text.push_str("{not json\n");
    for in_flight in [1, 3] {
        let mut reports: Vec<ItemReport> = Vec::new();
        let input = JsonLines::<_, IndividualEnrollment>::new(text.as_bytes(), "enrollments.jsonl");
        let options = BulkOptions {
            in_flight,
            ..BulkOptions::default()
        };
        let s = bulk::run(&c, input, &options, |r| reports.push(r.clone())).unwrap();
        assert_eq!(s.total(), 25, "{s:?}");
        assert_eq!(s.calls, 3, "24 records in calls of 10");
        let bad = reports.iter().find(|r| r.id == "bad id!").unwrap();
        assert_eq!(bad.line, Some(1));
        assert!(
            matches!(&bad.outcome, Outcome::Failed { code: Some(c), message } if c / 1000 == 400 && message.contains("bad id!")),
            "{bad:?}"
        );
        let unreadable = reports.iter().find(|r| r.line == Some(25)).unwrap();
        assert!(
            matches!(&unreadable.outcome, Outcome::Failed { message, .. } if message.starts_with("key must be a string")),
            "{unreadable:?}"
        );
        if in_flight == 1 {
            assert_eq!((s.done, s.already_existed, s.failed), (23, 0, 2), "{s:?}");
        } else {
            // The re-run: nothing created twice, nothing fatal.
            assert_eq!((s.done, s.already_existed, s.failed), (0, 23, 2), "{s:?}");
        }
    }
    assert_eq!(c.query_enrollments("SELECT * FROM enrollments", None).count(), 23);

    // Delete in bulk from the same file: the missing record is named.
    c.delete_enrollment("bulk-00007", None).unwrap();
    let mut failed = Vec::new();
    let input = JsonLines::<_, IndividualEnrollment>::new(text.as_bytes(), "enrollments.jsonl");
    let options = BulkOptions {
        mode: BulkMode::Delete,
        ..BulkOptions::default()
    };
    let s = bulk::run(&c, input, &options, |r| {
        if matches!(r.outcome, Outcome::Failed { .. }) {
            failed.push(r.id.clone());
        }
    })
    .unwrap();
    failed.sort();
    assert_eq!(failed, ["", "bad id!", "bulk-00007"], "{s:?}");
    assert_eq!(c.query_enrollments("SELECT * FROM enrollments", None).count(), 0);
}

#[test]
fn bulk_from_csv_and_groups() {
    let emu = start();
    let c = owner(&emu);
    let csv = format!(
        "registrationId,attestation,primaryKey,endorsementKey,provisioningStatus\n\
         csv-1,symmetricKey,{DEVICE_KEY},,\n\
         csv-2,tpm,,{},disabled\n\
         csv-3,symmetricKey,,,\n",
        ek(7)
    );
    let s = bulk::run(
        &c,
        CsvEnrollments::new(csv.as_bytes(), "f.csv").unwrap(),
        &BulkOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!((s.done, s.failed), (3, 0), "{s:?}");
    assert_eq!(
        c.get_enrollment("csv-2").unwrap().common.provisioning_status,
        Some(ProvisioningStatus::Disabled)
    );
    let groups = "{\"enrollmentGroupId\":\"g1\",\"attestation\":{\"type\":\"symmetricKey\"}}\n\
                  {\"enrollmentGroupId\":\"g2\",\"attestation\":{\"type\":\"tpm\",\"tpm\":{\"endorsementKey\":\"AA==\"}}}\n";
    let mut reports = Vec::new();
    let input = JsonLines::<_, EnrollmentGroup>::new(groups.as_bytes(), "groups.jsonl");
    let s = bulk::run(&c, input, &BulkOptions::default(), |r| reports.push(r.clone())).unwrap();
    assert_eq!((s.done, s.failed), (1, 1), "{reports:?}");
    assert!(matches!(
        &reports.iter().find(|r| r.id == "g2").unwrap().outcome,
        Outcome::Failed { .. }
    ));
    c.get_group("g1").unwrap();
}

#[test]
fn queries_page_through_every_record() {
    let emu = start();
    let c = owner(&emu);
    let text = records(53, "page");
    let input = JsonLines::<_, IndividualEnrollment>::new(text.as_bytes(), "x");
    assert_eq!(bulk::run(&c, input, &BulkOptions::default(), |_| {}).unwrap().done, 53);
    let mut q = c.query_enrollments("SELECT * FROM enrollments", Some(10));
    let mut ids: Vec<String> = q.by_ref().map(|e| e.unwrap().registration_id).collect();
    assert_eq!(q.pages(), 6);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 53);
    assert_eq!(ids[0], "page-00000");
    // A page size the service refuses: the error is yielded, then the iteration ends.
    let mut bad = c.query_enrollments("SELECT * FROM enrollments", Some(0));
    assert!(matches!(bad.next(), Some(Err(Error::Service { status: 400, .. }))));
    assert!(bad.next().is_none());
}

#[test]
fn bad_keys_are_401_and_missing_rights_403() {
    let emu = start();
    let wrong = client_for(&emu, OWNER, READER_KEY);
    let e = wrong.get_enrollment("x").unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    let unknown = client_for(&emu, "nobody", OWNER_KEY);
    assert!(matches!(
        unknown.query_enrollments("SELECT * FROM enrollments", None).next(),
        Some(Err(Error::Unauthorized { .. }))
    ));

    // An expired token (made with the crate's own signer) is refused too.
    let cs = dps_service::ConnectionString::parse(&format!(
        "HostName={};SharedAccessKeyName={OWNER};SharedAccessKey={OWNER_KEY}",
        emu.global_endpoint()
    ))
    .unwrap();
    let expired = cs.sas_token(hsm_core::sas::expiry_in(std::time::Duration::ZERO) - 60);
    let agent = ureq::AgentBuilder::new()
        .tls_config(GrowingRoots::new(ca_certs(&emu)).tls_config())
        .build();
    let r = agent
        .get(&format!(
            "https://{}/enrollments/x?api-version=2021-10-01",
            emu.global_endpoint()
        ))
        .set("Authorization", &expired)
        .call();
    assert!(matches!(r, Err(ureq::Error::Status(401, _))), "{r:?}");

    owner(&emu)
        .put_enrollment(&IndividualEnrollment::new("r1", sym(None)))
        .unwrap();
    let reader = client_for(&emu, READER, READER_KEY);
    assert_eq!(reader.get_enrollment("r1").unwrap().registration_id, "r1");
    let e = reader
        .put_enrollment(&IndividualEnrollment::new("r2", sym(None)))
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e}");
    assert!(matches!(
        reader.delete_enrollment("r1", None).unwrap_err(),
        Error::Forbidden { .. }
    ));
    let e = reader
        .bulk_enrollments(BulkMode::Create, &[IndividualEnrollment::new("r3", sym(None))])
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e}");
    assert!(matches!(
        reader.delete_registration("r1", None).unwrap_err(),
        Error::Forbidden { .. }
    ));
}

fn device(emu: &dps_emulator::Emulator, transport: dps_device::Transport) -> dps_device::blocking::ProvisioningClient {
    let mut roots = rustls::RootCertStore::empty();
    for c in ca_certs(emu) {
        roots.add(c).unwrap();
    }
    let endpoint = match transport {
        dps_device::Transport::Mqtt => emu.mqtt_endpoint(),
        _ => emu.global_endpoint(),
    };
    dps_device::ProvisioningClient::builder(SCOPE)
        .endpoint(&endpoint)
        .transport(transport)
        .trust_roots(roots)
        .timeout(std::time::Duration::from_secs(20))
        .build_blocking()
        .unwrap()
}

fn key_identity(id: &str, key_b64: &str) -> dps_device::Attestation {
    let key = hsm_core::sas::decode_key("key", key_b64).unwrap();
    dps_device::Attestation::SymmetricKey(Arc::new(hsm_core::file::FileSymmetric::new(id.into(), key)))
}

#[test]
fn api_created_enrollments_register_over_https_and_mqtt_and_disabled_ones_are_refused() {
    let emu = start();
    let c = owner(&emu);
    for (id, transport) in [
        ("api-https", dps_device::Transport::Https),
        ("api-mqtt", dps_device::Transport::Mqtt),
    ] {
        let mut e = IndividualEnrollment::new(id, sym(Some(DEVICE_KEY)));
        e.device_id = Some(format!("{id}-dev"));
        c.put_enrollment(&e).unwrap();
        let a = device(&emu, transport)
            .register(&key_identity(id, DEVICE_KEY), None)
            .unwrap();
        assert_eq!((a.status.as_str(), a.assigned_hub.as_str()), ("assigned", HUB));
        let state = c.get_registration(id).unwrap();
        assert_eq!(
            state.status,
            Some(dps_service::models::EnrollmentStatus::Assigned),
            "{state:?}"
        );
        assert_eq!(state.assigned_hub.as_deref(), Some(HUB));

        // Disabled through the API: the next registration is refused at once.
        let mut e = c.get_enrollment(id).unwrap();
        e.common.provisioning_status = Some(ProvisioningStatus::Disabled);
        e.registration_state = None;
        c.put_enrollment(&e).unwrap();
        let refused = device(&emu, transport).register(&key_identity(id, DEVICE_KEY), None);
        assert!(refused.is_err(), "{id}: a disabled enrollment registered: {refused:?}");

        c.delete_registration(id, None).unwrap();
        assert!(matches!(c.get_registration(id).unwrap_err(), Error::NotFound { .. }));
    }

    // A symmetric group made here: a device with the derived key registers; the group's registrations
    // are listed.
    let g = c.put_group(&EnrollmentGroup::new("api-group", sym(None))).unwrap();
    let Some(k) = &g.attestation.symmetric_key else {
        panic!("{g:?}")
    };
    let group_key = k.primary_key.clone().unwrap();
    for i in 0..3 {
        let id = format!("member-{i}");
        let derived = hsm_core::sas::encode_key(&hsm_core::sas::derive_device_key(&group_key, &id).unwrap());
        device(&emu, dps_device::Transport::Https)
            .register(&key_identity(&id, &derived), None)
            .unwrap();
    }
    let mut q = c.query_registrations("api-group", Some(2));
    let mut ids: Vec<String> = q.by_ref().map(|r| r.unwrap().registration_id.unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["member-0", "member-1", "member-2"]);
    assert_eq!(q.pages(), 2);
}
