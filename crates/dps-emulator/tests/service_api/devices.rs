//! Devices registering with enrollments created through the API, and disabled enrollments and groups.

use base64::Engine as _;
use dps_emulator::Enrollment;
use serde_json::json;

use crate::api::*;
use crate::common::*;

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
