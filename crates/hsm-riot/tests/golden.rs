//! The DICE certificates byte for byte. DICE keys sign with RFC 6979 nonces and the golden group
//! CA's key is RSA (PKCS#1 v1.5, deterministic), so a chain from a fixed UDS, firmware,
//! registration id and validity has one right encoding. The digests were taken from the chains
//! rcgen made before the certificates were written by our own encoder on `der`: the DeviceID and
//! Alias certificates a device presents did not change by one byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm_riot::{CaSigner, Fwid, Uds, Validity, derive_keys, issue_chain};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

fn digest(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

fn keys() -> hsm_riot::DiceKeys {
    let uds = Uds::from_bytes(Zeroizing::new((0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5a).collect())).unwrap();
    derive_keys(&uds, &Fwid::of_bytes(b"golden firmware")).unwrap()
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn self_signed_chain_bytes_are_unchanged() {
    let chain = issue_chain(&keys(), "golden-device", &Validity::default(), None).unwrap();
    assert!(chain.ca_chain.is_empty());
    assert_eq!(
        digest(&chain.device_id),
        "05a04e96d0250ea692820667728f94d2854c215f33fcbdb316de995992637954",
        "DeviceID"
    );
    assert_eq!(
        digest(&chain.alias),
        "b5dee558cec206db9af1783359f39db2ba7832a282e9a9590939be89d78f8f84",
        "Alias"
    );
}

#[test]
fn utc_time_validity_bytes_are_unchanged() {
    // 2026-01-01T00:00:00Z for 365 days: UTCTime on both ends (GeneralizedTime from 2050 on).
    let not_before = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let validity = Validity {
        not_before,
        not_after: not_before + time::Duration::days(365),
    };
    let chain = issue_chain(&keys(), "golden-device", &validity, None).unwrap();
    assert_eq!(
        digest(&chain.device_id),
        "c25c4b660ffb8fc19f7dee163929926704b12f3ebb9b7bcfd0b1b35a2ba6ba16",
        "DeviceID"
    );
    assert_eq!(
        digest(&chain.alias),
        "0846ce79df44b2237c5036cf2482eb60814ec4a955c30272083bda6954ba7ef1",
        "Alias"
    );
}

#[test]
fn ca_signed_chain_bytes_are_unchanged() {
    let key = String::from_utf8(data("golden-ca.key.pem")).unwrap();
    let ca = CaSigner::from_pem("golden CA", &data("golden-ca.cert.pem"), "golden CA key", &key).unwrap();
    let chain = issue_chain(&keys(), "golden-device", &Validity::default(), Some(&ca)).unwrap();
    assert_eq!(chain.ca_chain.len(), 1);
    assert_eq!(
        digest(&chain.device_id),
        "93e57777bd4b5c4f8cb5a70567621f40f70462cef7e1887aaf4fe8c01e5eeffd",
        "DeviceID"
    );
    assert_eq!(
        digest(&chain.alias),
        "b5dee558cec206db9af1783359f39db2ba7832a282e9a9590939be89d78f8f84",
        "Alias"
    );
}
