//! Misused handles (issue 12): a handle destroyed twice, a stale handle whose slot was reused by
//! a newer one, a handle of another interface and a foreign pointer are reported with an error
//! naming the kind; nothing is freed twice and the live handle keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Calling `extern "C"` functions and freeing what they return is unsafe by nature.
#![allow(unsafe_code)]

mod common;

use std::ffi::{CString, c_void};
use std::path::Path;

use common::{configure, last_error, serial, take};
use hsm_abi::ffi::errors::*;
use hsm_abi::ffi::sdk::*;
use hsm_abi::ffi::signer::*;

/// A key-info struct for `key_info` to fill: its size set, nothing else.
fn empty_key_info() -> HSM_ABI_KEY_INFO {
    HSM_ABI_KEY_INFO {
        struct_size: size_of::<HSM_ABI_KEY_INFO>() as u32,
        algorithm: 0,
        curve_or_bits: 0,
        scheme_count: 0,
        schemes: [0; HSM_ABI_MAX_SCHEMES],
        max_signature_len: 0,
    }
}

/// Set this thread's last error to something unrelated, so a check sees only what follows.
fn reset_last_error() {
    let x = unsafe { &*hsm_client_x509_interface() };
    assert!(unsafe { x.hsm_client_get_cert.unwrap()(std::ptr::null_mut()) }.is_null());
    assert!(last_error().contains("is NULL"), "{}", last_error());
}

/// A self-signed device certificate and its key in `dir`; configures the library with them.
fn configure_device(dir: &Path) {
    let id = test_support::pki::self_signed("device-handles", test_support::pki::KeyType::P256);
    std::fs::write(dir.join("chain.pem"), id.cert_pem()).unwrap();
    std::fs::write(dir.join("key.pem"), id.key_pem()).unwrap();
    let toml = format!(
        "[x509]\nbackend = \"file\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        dir.join("chain.pem").display(),
        dir.join("key.pem").display()
    );
    configure(&toml);
}

#[test]
fn destroying_a_stale_handle_reports_it_and_leaves_the_new_handle_alive() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    configure_device(dir.path());
    let x = unsafe { &*hsm_client_x509_interface() };
    unsafe {
        let h1 = x.hsm_client_x509_create.unwrap()();
        assert!(!h1.is_null(), "{}", last_error());
        x.hsm_client_x509_destroy.unwrap()(h1);
        let h2 = x.hsm_client_x509_create.unwrap()();
        assert!(!h2.is_null(), "{}", last_error());
        reset_last_error();
        x.hsm_client_x509_destroy.unwrap()(h1);
        assert!(
            last_error().contains("x509 handle was already destroyed"),
            "{}",
            last_error()
        );
        assert!(x.hsm_client_get_cert.unwrap()(h1).is_null());
        assert!(last_error().contains("already destroyed"), "{}", last_error());
        assert_eq!(
            take(x.hsm_client_get_common_name.unwrap()(h2)).as_deref(),
            Some("device-handles"),
            "{}",
            last_error()
        );
        x.hsm_client_x509_destroy.unwrap()(h2);
        reset_last_error();
        x.hsm_client_x509_destroy.unwrap()(h2);
        assert!(last_error().contains("already destroyed"), "{}", last_error());
    }
}

#[test]
fn a_signer_closed_twice_is_reported_not_freed_twice() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    configure_device(dir.path());
    let t = unsafe { &*hsm_abi_signer_table() };
    let token = CString::new(format!("file:{}", dir.path().join("key.pem").display())).unwrap();
    unsafe {
        let mut s1: *mut HSM_ABI_SIGNER = std::ptr::null_mut();
        assert_eq!(t.open.unwrap()(token.as_ptr(), &mut s1), HSM_ABI_OK, "{}", last_error());
        t.close.unwrap()(s1);
        let mut s2: *mut HSM_ABI_SIGNER = std::ptr::null_mut();
        assert_eq!(t.open.unwrap()(token.as_ptr(), &mut s2), HSM_ABI_OK, "{}", last_error());
        reset_last_error();
        t.close.unwrap()(s1);
        assert!(
            last_error().contains("signer handle was already destroyed"),
            "{}",
            last_error()
        );
        let mut info = empty_key_info();
        assert_eq!(t.key_info.unwrap()(s1, &mut info), HSM_ABI_ERR_INVALID_ARGUMENT);
        assert_eq!(t.key_info.unwrap()(s2, &mut info), HSM_ABI_OK, "{}", last_error());
        assert_eq!(info.algorithm, HSM_ABI_KEY_ALGORITHM_EC);
        t.close.unwrap()(s2);
        reset_last_error();
        t.close.unwrap()(s2);
        assert!(last_error().contains("already destroyed"), "{}", last_error());
    }
}

#[test]
fn a_handle_of_another_interface_or_a_foreign_pointer_is_reported() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    configure_device(dir.path());
    let x = unsafe { &*hsm_client_x509_interface() };
    let t = unsafe { &*hsm_abi_signer_table() };
    let mut info = empty_key_info();
    unsafe {
        let h = x.hsm_client_x509_create.unwrap()();
        assert!(!h.is_null(), "{}", last_error());
        let code = t.key_info.unwrap()(h.cast::<HSM_ABI_SIGNER>().cast_const(), &mut info);
        assert_eq!(code, HSM_ABI_ERR_INVALID_ARGUMENT);
        let e = last_error();
        assert!(e.contains("is not a handle of the signer interface"), "{e}");
        assert!(e.contains("x509"), "{e}");
        let mut sig = [0u8; 128];
        let mut len = sig.len();
        let code = t.sign.unwrap()(
            h.cast_const().cast(),
            0x0403,
            b"m".as_ptr(),
            1,
            sig.as_mut_ptr(),
            &mut len,
        );
        assert_eq!(code, HSM_ABI_ERR_INVALID_ARGUMENT);
        t.close.unwrap()(h.cast());
        assert!(
            last_error().contains("is not a handle of the signer interface"),
            "{}",
            last_error()
        );
        // Still open after the refused close.
        assert!(
            take(x.hsm_client_get_common_name.unwrap()(h)).is_some(),
            "{}",
            last_error()
        );
        x.hsm_client_x509_destroy.unwrap()(h);

        // Memory of the caller's that is no handle at all.
        let mut foreign = [0u64; 8];
        let p = foreign.as_mut_ptr().cast::<c_void>();
        assert!(x.hsm_client_get_cert.unwrap()(p).is_null());
        assert!(
            last_error().contains("is not a handle of the x509 interface"),
            "{}",
            last_error()
        );
        x.hsm_client_x509_destroy.unwrap()(p);
        assert!(
            last_error().contains("is not a handle of the x509 interface"),
            "{}",
            last_error()
        );
    }
}

#[test]
fn handles_created_and_destroyed_on_many_threads_stay_distinct() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    configure_device(dir.path());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let x = unsafe { &*hsm_client_x509_interface() };
                for _ in 0..50 {
                    unsafe {
                        let h = x.hsm_client_x509_create.unwrap()();
                        assert!(!h.is_null());
                        assert_eq!(
                            take(x.hsm_client_get_common_name.unwrap()(h)).as_deref(),
                            Some("device-handles")
                        );
                        x.hsm_client_x509_destroy.unwrap()(h);
                        assert!(x.hsm_client_get_cert.unwrap()(h).is_null());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
