//! A device's return code reaches C: after a failure on a SoftHSM2 token,
//! `hsm_abi_last_error_origin` names PKCS#11 and `hsm_abi_last_error_rv` is the module's CK_RV
//! (a wrong PIN, a token that is not there); a failure that is not a device's has neither.
#![cfg(feature = "pkcs11")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unsafe_code)]

mod common;

use common::{configure, last_error};
use hsm_abi::ffi::errors::*;
use hsm_abi::ffi::sdk::*;

const CKR_PIN_INCORRECT: u64 = 0xA0;
const CKR_TOKEN_NOT_PRESENT: u64 = 0xE0;

/// Sign through the SDK's TPM interface with the configured key (the key opens in create, so
/// a PIN or a token problem fails there, with NULL). Whether it signed.
fn sign_once() -> bool {
    let tpm = unsafe { &*hsm_client_tpm_interface() };
    let h = unsafe { tpm.hsm_client_tpm_create.unwrap()() };
    if h.is_null() {
        return false;
    }
    let data = b"hub.example.net/devices/device-rv\n1767225600";
    let (mut sig, mut sig_len) = (std::ptr::null_mut(), 0usize);
    let rc =
        unsafe { tpm.hsm_client_sign_with_identity.unwrap()(h, data.as_ptr(), data.len(), &mut sig, &mut sig_len) };
    if rc == HSM_ABI_OK {
        unsafe { libc::free(sig.cast()) };
    }
    unsafe { tpm.hsm_client_tpm_destroy.unwrap()(h) };
    rc == HSM_ABI_OK
}

#[test]
fn device_return_codes_reach_c() {
    let token = test_support::softhsm::fixture();
    let (hsm, pin) = (&token.hsm, &token.pin_file);
    let key = [7u8; 32];
    let uri = token.uri("object=rv-key");
    let stored = hsm_pkcs11::tools::import_secret(&uri, &key).unwrap().to_token_string();
    let section =
        |key: &str| format!("[tpm]\nbackend = \"pkcs11\"\nregistration_id = \"device-rv\"\nkey = \"{key}\"\n");

    // The right PIN signs.
    configure(&section(&stored));
    assert!(sign_once(), "{}", last_error());

    // A wrong PIN: PKCS#11, CKR_PIN_INCORRECT.
    let wrong = hsm.pin_file("wrong.pin", "9999").unwrap();
    let wrong_key = stored.replace(&pin.display().to_string(), &wrong.display().to_string());
    assert_ne!(wrong_key, stored, "the stored token names the PIN file: {stored}");
    configure(&section(&wrong_key));
    assert!(!sign_once());
    assert_eq!(hsm_abi_last_error_origin(), HSM_ABI_ERR_PKCS11, "{}", last_error());
    assert_eq!(hsm_abi_last_error_rv() as u64, CKR_PIN_INCORRECT, "{}", last_error());

    // A token that is not there: PKCS#11, CKR_TOKEN_NOT_PRESENT.
    let absent = stored.replace(&format!("token={}", test_support::softhsm::LABEL), "token=absent");
    assert_ne!(absent, stored, "the stored token names its token: {stored}");
    configure(&section(&absent));
    assert!(!sign_once());
    assert_eq!(hsm_abi_last_error_origin(), HSM_ABI_ERR_PKCS11, "{}", last_error());
    assert_eq!(
        hsm_abi_last_error_rv() as u64,
        CKR_TOKEN_NOT_PRESENT,
        "{}",
        last_error()
    );

    // A failure that is not a device's replaces the device code.
    let tpm = unsafe { &*hsm_client_tpm_interface() };
    let (mut ek, mut ek_len) = (std::ptr::null_mut(), 0usize);
    let rc = unsafe { tpm.hsm_client_get_ek.unwrap()(std::ptr::null_mut(), &mut ek, &mut ek_len) };
    assert_eq!(rc, HSM_ABI_ERR_INVALID_ARGUMENT);
    assert_eq!(hsm_abi_last_error_origin(), HSM_ABI_OK);
    assert_eq!(hsm_abi_last_error_rv(), 0);
}
