//! IoT Hub authentication through the SDK's TPM interface with an HMAC key held in a SoftHSM2
//! token (`[tpm] backend = "pkcs11"`): sign_with_identity signs on the token and matches a
//! software HMAC with the same key; the TPM-only calls fail clearly.
#![cfg(feature = "pkcs11")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unsafe_code)]

mod common;

use common::{configure, last_error};
use hsm_abi::ffi::errors::*;
use hsm_abi::ffi::sdk::*;

#[test]
fn hub_sas_signed_by_a_token_secret() {
    let token = test_support::softhsm::fixture();
    let key: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37)).collect();
    let uri = token.uri("object=hub-key");
    let stored = hsm_pkcs11::tools::import_secret(&uri, &key).unwrap().to_token_string();

    let toml = format!("[tpm]\nbackend = \"pkcs11\"\nregistration_id = \"device-hub\"\nkey = \"{stored}\"\n");
    configure(&toml);

    let tpm = unsafe { &*hsm_client_tpm_interface() };
    let h = unsafe { tpm.hsm_client_tpm_create.unwrap()() };
    assert!(!h.is_null(), "{}", last_error());

    let aud = hsm_core::sas::Audience::Hub {
        host: "hub.example.net".into(),
        device_id: "device-hub".into(),
    };
    let data = aud.string_to_sign(1767225600);
    let (mut sig, mut sig_len) = (std::ptr::null_mut(), 0usize);
    let rc =
        unsafe { tpm.hsm_client_sign_with_identity.unwrap()(h, data.as_ptr(), data.len(), &mut sig, &mut sig_len) };
    assert_eq!(rc, HSM_ABI_OK, "{}", last_error());
    let got = unsafe { std::slice::from_raw_parts(sig, sig_len) }.to_vec();
    unsafe { libc::free(sig.cast()) };
    assert_eq!(got, hsm_core::sas::hmac_sha256(&key, data.as_bytes()));

    // The token has no EK: a clear error, and the out-params stay untouched.
    let (mut ek, mut ek_len) = (std::ptr::null_mut(), 0usize);
    let rc = unsafe { tpm.hsm_client_get_ek.unwrap()(h, &mut ek, &mut ek_len) };
    assert_ne!(rc, HSM_ABI_OK);
    assert!(ek.is_null() && ek_len == 0);
    let e = last_error();
    assert!(
        e.contains("not supported") && e.contains("hsm_client_get_ek") && e.contains("TPM attestation"),
        "{e}"
    );
    // Nor an SRK or an activation: the table asks the backend for TPM attestation, which a
    // token-held HMAC key does not offer.
    let (mut srk, mut srk_len) = (std::ptr::null_mut(), 0usize);
    let rc = unsafe { tpm.hsm_client_get_srk.unwrap()(h, &mut srk, &mut srk_len) };
    assert_ne!(rc, HSM_ABI_OK);
    assert!(srk.is_null() && srk_len == 0);
    assert!(last_error().contains("hsm_client_get_srk"), "{}", last_error());
    let blob = [0u8; 8];
    let rc = unsafe { tpm.hsm_client_activate_identity_key.unwrap()(h, blob.as_ptr(), blob.len()) };
    assert_ne!(rc, HSM_ABI_OK);
    let e = last_error();
    assert!(
        e.contains("hsm_client_activate_identity_key") && e.contains("pkcs11"),
        "{e}"
    );
    // The handle still signs afterwards.
    let (mut sig, mut sig_len) = (std::ptr::null_mut(), 0usize);
    let rc =
        unsafe { tpm.hsm_client_sign_with_identity.unwrap()(h, data.as_ptr(), data.len(), &mut sig, &mut sig_len) };
    assert_eq!(rc, HSM_ABI_OK, "{}", last_error());
    unsafe { libc::free(sig.cast()) };
    unsafe { tpm.hsm_client_tpm_destroy.unwrap()(h) };
}
