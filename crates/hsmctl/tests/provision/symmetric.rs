//! Symmetric key attestation: individual and group enrollments over HTTPS and MQTT, wrong keys and expired
//! tokens refused.

use crate::common::HUB;
use crate::setup::*;

#[test]
fn symmetric_group_over_mqtt_is_assigned_with_payload() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "grp",
        &format!("registration_id = \"device-0002\"\ngroup_key = \"{GROUP_KEY}\""),
    );
    let out = ok(&e.provision_mqtt(&cfg, &["--json", "--payload", r#"{"modelId":"dtmi:test;1"}"#]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deviceId"], "device-0002");
    assert_eq!(v["assignedHub"], HUB);
}

#[test]
fn symmetric_wrong_key_over_mqtt_is_refused_at_connect() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "bad",
        "registration_id = \"device-sym\"\nsymmetric_key = \"d3Jvbmcta2V5LXdyb25nLWtleQ==\"",
    );
    let out = e.provision_mqtt(&cfg, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("MQTT") && stderr.contains("CONNACK"), "{stderr}");
}

#[test]
fn symmetric_individual_is_assigned() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "sym",
        &format!("registration_id = \"device-sym\"\nsymmetric_key = \"{DEVICE_KEY}\""),
    );
    let out = ok(&e.provision(&cfg, &[]));
    assert!(out.contains("device id: device-sym"), "{out}");
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
}

#[test]
fn symmetric_group_is_assigned_with_derived_key() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "grp",
        &format!("registration_id = \"device-0001\"\ngroup_key = \"{GROUP_KEY}\""),
    );
    let out = ok(&e.provision(&cfg, &["--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["deviceId"], "device-0001");
    assert_eq!(v["assignedHub"], HUB);
}

#[test]
fn symmetric_wrong_key_is_refused() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "bad",
        "registration_id = \"device-sym\"\nsymmetric_key = \"d3Jvbmcta2V5LXdyb25nLWtleQ==\"",
    );
    refused(&e.provision(&cfg, &[]), "signature");
}

#[test]
fn symmetric_expired_token_is_refused() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "sym",
        &format!("registration_id = \"device-sym\"\nsymmetric_key = \"{DEVICE_KEY}\""),
    );
    refused(&e.provision(&cfg, &["--sas-expiry", "1000"]), "expired");
}
