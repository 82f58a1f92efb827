#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The SDK's TPM attestation on swtpm: EK/SRK creation and reuse, both EK templates, real
//! activation blobs, corrupted blobs, large-input HMAC, restart recovery.
//! Modules by concern; the helpers all of them use are here.

#[path = "../common/mod.rs"]
mod common;

mod activation;
mod keys;
mod robustness;

use common::Swtpm;
use hsm_core::TpmIdentity;
use hsm_tpm::{EkTemplate, Tpm, TpmOptions, service};

pub fn opts(tpm: &Swtpm, template: EkTemplate) -> TpmOptions {
    let mut o = TpmOptions::new(tpm.tcti());
    o.ek_template = template;
    o
}

pub fn activate(t: &mut Tpm) -> Vec<u8> {
    let ek = t.endorsement_key().unwrap();
    let srk = t.storage_root_key().unwrap();
    let a = service::make_activation(&ek, &srk).unwrap();
    t.activate_identity_key(&a.blob).unwrap();
    a.key.to_vec()
}
