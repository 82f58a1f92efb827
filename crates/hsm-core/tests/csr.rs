//! The PKCS#10 requests of `hsm_core::csr` byte for byte: an RSA PKCS#1 v1.5 signature is
//! deterministic, so a request from a fixed key and name has one right encoding. The digests were
//! taken from the requests rcgen made before the requests were written by our own encoder on
//! `der`: the bytes DPS and `openssl req` read did not change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm_core::file::FileKey;
use sha2::{Digest as _, Sha256};

fn digest(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

fn rsa_key() -> FileKey {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden-rsa.key.pem");
    FileKey::from_pem("golden RSA key", &std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn rsa_request_bytes_are_unchanged() {
    let der = hsm_core::csr::request_der(&rsa_key(), "golden-device").unwrap();
    assert_eq!(
        digest(&der),
        "19607686b7726ee92f0e07a084949b434acff90aa7f8c70709a18e1caafc8e6d"
    );
    let pem = hsm_core::csr::request_pem(&rsa_key(), "golden-device").unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"), "{pem}");
}

#[test]
fn a_request_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let key = FileKey::from_pem("P-256", EC_KEY.as_bytes()).unwrap();
    let path = dir.path().join("req.pem");
    std::fs::write(&path, hsm_core::csr::request_pem(&key, "device-0001").unwrap()).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["req", "-verify", "-noout", "-subject", "-in"])
        .arg(&path)
        .output()
        .expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("CN") && text.contains("device-0001"), "{text}");
}

#[test]
fn an_empty_common_name_is_refused() {
    let e = hsm_core::csr::request_der(&rsa_key(), "").unwrap_err().to_string();
    assert!(e.contains("common name"), "{e}");
}

const EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgeZbYWrlKJfu3P+Wf
XTk9cu1QSPiKXEgzYN3tJC+u4yShRANCAATJOHeQHA/7K+PNpXCErHI4tB41L9Zg
fWfk3sBmQwYBl+Jg2Lce9eMOH4uKgRzsoxWoeKQZaGeH1uWkaOE7Ncdt
-----END PRIVATE KEY-----
";
