//! TPM attestation over HTTPS on a fresh swtpm: challenge, activation, SAS signed in the TPM, hub key at
//! assignment; a second registration reuses the keys; another TPM is refused; MQTT is refused up front; a
//! CSR sent with TPM attestation gets an issued chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use dps_device::Attestation;
use dps_emulator::{Emulator, Enrollment};
use hsm_core::TpmIdentity;
use hsm_tpm::testing::Swtpm;

fn open(tpm: &Swtpm) -> Attestation {
    let t: Box<dyn TpmIdentity> = Box::new(hsm_tpm::Tpm::open(hsm_tpm::TpmOptions::new(tpm.tcti())).unwrap());
    Attestation::Tpm(Arc::new(Mutex::new(t)))
}

/// The TPM of `swtpm` and its registration id (from its EK), and an emulator with its individual enrollment.
fn enrolled(swtpm: &Swtpm) -> (Attestation, String, Emulator) {
    let attestation = open(swtpm);
    let Attestation::Tpm(tpm) = &attestation else {
        unreachable!()
    };
    let ek = tpm.lock().unwrap().endorsement_key().unwrap();
    let registration_id = hsm_tpm::registration_id(&ek);
    let emu = emulator(vec![Enrollment::TpmIndividual {
        registration_id: registration_id.clone(),
        endorsement_key: base64::engine::general_purpose::STANDARD.encode(&ek),
    }]);
    (attestation, registration_id, emu)
}

#[tokio::test]
async fn tpm_attestation_is_assigned_and_another_tpm_is_refused() {
    let swtpm = Swtpm::start().unwrap();
    let (attestation, registration_id, emu) = enrolled(&swtpm);
    let client = https_client(&emu, options());
    for _ in 0..2 {
        let a = client.register(&attestation, None).await.unwrap();
        assert_tpm_assigned(&a, &registration_id);
    }

    let other = Swtpm::start().unwrap();
    let e = service_error(client.register_as(&open(&other), Some(&registration_id), None).await);
    assert_eq!(e.status, 401, "{e}");
}

#[tokio::test]
async fn tpm_onboarding_gets_an_issued_certificate() {
    let swtpm = Swtpm::start().unwrap();
    let (attestation, registration_id, emu) = enrolled(&swtpm);
    let (csr, _key) = test_support::pki::csr(&registration_id, KeyType::P384);
    let a = https_client(&emu, options())
        .register_with_csr(&attestation, None, None, &csr)
        .await
        .unwrap();
    assert_assigned(&a, &registration_id);
    let chain = a.issued_certificate_chain.unwrap();
    dps_device::verify_issued_chain(&chain, &csr, &registration_id).unwrap();
}
