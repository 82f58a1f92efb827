//! Tests of the enrollment records (`records.rs`).

use super::*;

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digests of the configuration's enrollments are those earlier versions stored (the text they
/// digested, written out here), so an upgrade does not seed them again.
#[test]
fn seed_digests_are_those_of_earlier_versions() {
    let symmetric = |secondary: Option<&str>| Enrollment::SymmetricIndividual {
        registration_id: "d".into(),
        primary_key: "k".into(),
        secondary_key: secondary.map(str::to_string),
    };
    let old = r#"{"attestation":{"symmetricKey":{"primaryKey":"k","secondaryKey":null},"type":"symmetricKey"},"registrationId":"d"}"#;
    assert_eq!(seed_digest(&from_enrollment(&symmetric(None))), sha256_hex(old));
    let old = r#"{"attestation":{"symmetricKey":{"primaryKey":"k","secondaryKey":"s"},"type":"symmetricKey"},"registrationId":"d"}"#;
    assert_eq!(seed_digest(&from_enrollment(&symmetric(Some("s")))), sha256_hex(old));
    let group = Enrollment::SymmetricGroup {
        name: "g".into(),
        primary_key: "k".into(),
        secondary_key: None,
    };
    let old = r#"{"attestation":{"symmetricKey":{"primaryKey":"k","secondaryKey":null},"type":"symmetricKey"},"enrollmentGroupId":"g"}"#;
    assert_eq!(seed_digest(&from_enrollment(&group)), sha256_hex(old));
    let tpm = Enrollment::TpmIndividual {
        registration_id: "t".into(),
        endorsement_key: "ek".into(),
    };
    let old = r#"{"attestation":{"tpm":{"endorsementKey":"ek"},"type":"tpm"},"registrationId":"t"}"#;
    assert_eq!(seed_digest(&from_enrollment(&tpm)), sha256_hex(old));
}
