//! What every issuance test uses: CSRs, an emulator that issues, issued identities, renewal options, and a
//! device registered with a CSR.

use std::sync::Arc;
use std::time::Duration;

use dps_device::RenewalOptions;
use dps_emulator::{Emulator, Enrollment, IssuanceOptions, ServerOptions};
use hsm_core::file::{FileX509, KeyReference};
use rcgen::KeyPair;

use crate::common::*;

/// A fresh P-384 key and its DER CSR with subject CN `cn`.
pub fn csr(cn: &str) -> (KeyPair, Vec<u8>) {
    let (der, key) = test_support::pki::csr(cn, KeyType::P384);
    (key, der)
}

pub fn sym_enrollment(id: &str) -> Enrollment {
    Enrollment::SymmetricIndividual {
        registration_id: id.into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }
}

pub fn emulator_with(enrollments: Vec<Enrollment>, issuance: IssuanceOptions) -> Emulator {
    Emulator::start_with(
        test_support::emulator::config(enrollments),
        0,
        ServerOptions {
            issuance,
            ..ServerOptions::default()
        },
    )
    .unwrap()
}

pub fn issuing_root(emu: &Emulator) -> Vec<u8> {
    hsm_core::pem::parse_certificates("issuing CA", emu.issuing_ca_pem().as_bytes()).unwrap()[0].to_vec()
}

/// The issued chain and key as a file identity (what the issued-identity store holds).
pub fn issued_identity(dir: &std::path::Path, name: &str, chain: &[Vec<u8>], key: &KeyPair) -> Arc<FileX509> {
    let pem: String = chain
        .iter()
        .map(|der| format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", b64(der)))
        .collect();
    let (cert, keyp) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, pem).unwrap();
    std::fs::write(&keyp, key.serialize_pem()).unwrap();
    Arc::new(FileX509::open(&cert, &keyp, KeyReference::Token).unwrap())
}

pub fn b64(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

pub fn renewal_options() -> RenewalOptions {
    RenewalOptions {
        timeout: Duration::from_secs(20),
        retry_floor: Duration::ZERO,
        ..RenewalOptions::default()
    }
}

pub async fn register_issued(emu: &Emulator, mqtt: bool, id: &str) -> (KeyPair, Vec<u8>, Vec<Vec<u8>>) {
    let (key, csr) = csr(id);
    let client = match mqtt {
        true => mqtt_client(emu, options()),
        false => https_client(emu, options()),
    };
    let a = client
        .register_with_csr(&symmetric(id, DEVICE_KEY), None, None, &csr)
        .await
        .unwrap();
    assert_assigned(&a, id);
    let chain = a.issued_certificate_chain.clone().unwrap();
    (key, csr, chain)
}
