//! The exported C functions, called from Rust the way the SDK calls them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Calling `extern "C"` functions and freeing what they return is unsafe by nature.
#![allow(unsafe_code)]

mod common;

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;

use common::{configure, serial, take};
use hsm_abi::ffi::errors::*;
use hsm_abi::ffi::ext::*;
use hsm_abi::ffi::sdk::*;
use hsm_abi::ffi::signer::*;
use rcgen::KeyPair;
use test_support::pki::{Ca, params};

const GROUP_KEY: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
const DERIVED_KEY: &str = "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=";

fn last_error() -> String {
    let mut buf = vec![0 as c_char; 1024];
    let n = unsafe { hsm_abi_last_error(buf.as_mut_ptr(), buf.len()) };
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap().to_string();
    assert_eq!(n, s.len() + 1);
    s
}

struct Device {
    chain_pem: String,
    key_pem: String,
}

/// A CA and a leaf with common name `cn`, written to `dir` as chain.pem (leaf first) and key.pem.
fn device(dir: &Path, cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> Device {
    let ca = Ca::root("test root");
    let leaf = ca.issue(params(cn), KeyPair::generate_for(alg).unwrap());
    let key_pem = leaf.key_pem();
    let chain_pem = leaf.with_intermediate(&ca).chain_pem();
    std::fs::write(dir.join("chain.pem"), &chain_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
    Device { chain_pem, key_pem }
}

fn x509_toml(dir: &Path, extra: &str) -> String {
    format!(
        "[x509]\nbackend = \"file\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n{extra}",
        dir.join("chain.pem").display(),
        dir.join("key.pem").display()
    )
}

fn x509() -> &'static HSM_CLIENT_X509_INTERFACE {
    unsafe { &*hsm_client_x509_interface() }
}

fn keys() -> &'static HSM_CLIENT_KEY_INTERFACE {
    unsafe { &*hsm_client_key_interface() }
}

fn tpm() -> &'static HSM_CLIENT_TPM_INTERFACE {
    unsafe { &*hsm_client_tpm_interface() }
}

#[test]
fn interface_tables_are_complete() {
    let x = x509();
    assert!(x.hsm_client_x509_create.is_some() && x.hsm_client_x509_destroy.is_some());
    assert!(x.hsm_client_get_cert.is_some() && x.hsm_client_get_key.is_some());
    assert!(x.hsm_client_get_common_name.is_some());
    let k = keys();
    assert!(k.hsm_client_key_create.is_some() && k.hsm_client_key_destroy.is_some());
    assert!(k.hsm_client_get_symm_key.is_some() && k.hsm_client_get_registration_name.is_some());
    assert!(k.hsm_client_set_symm_key_info.is_some());
    let t = tpm();
    assert!(t.hsm_client_tpm_create.is_some() && t.hsm_client_tpm_destroy.is_some());
    assert!(t.hsm_client_activate_identity_key.is_some() && t.hsm_client_get_ek.is_some());
    assert!(t.hsm_client_get_srk.is_some() && t.hsm_client_sign_with_identity.is_some());
    assert_eq!(size_of::<HSM_CLIENT_X509_INTERFACE>(), 5 * size_of::<*const c_void>());
    assert_eq!(size_of::<HSM_CLIENT_KEY_INTERFACE>(), 5 * size_of::<*const c_void>());
    assert_eq!(size_of::<HSM_CLIENT_TPM_INTERFACE>(), 6 * size_of::<*const c_void>());
    let s = unsafe { &*hsm_abi_signer_table() };
    assert_eq!(s.version, HSM_ABI_SIGNER_TABLE_VERSION);
    assert_eq!(s.struct_size as usize, size_of::<HSM_ABI_SIGNER_TABLE>());
    assert!(s.open.is_some() && s.key_info.is_some() && s.sign.is_some());
    assert!(s.close.is_some() && s.public_key.is_some());
}

#[test]
fn x509_sdk_sequence() {
    let _g = serial();
    for (alg, cn) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, "device-p256"),
        (&rcgen::PKCS_ECDSA_P384_SHA384, "device-p384"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = device(dir.path(), cn, alg);
        configure(&x509_toml(dir.path(), ""));
        assert_eq!(hsm_client_x509_init(), 0);
        assert_eq!(hsm_client_x509_init(), 0);
        let x = x509();
        unsafe {
            let h = x.hsm_client_x509_create.unwrap()();
            assert!(!h.is_null(), "{}", last_error());
            assert_eq!(take(x.hsm_client_get_common_name.unwrap()(h)).unwrap(), cn);
            assert_eq!(take(x.hsm_client_get_cert.unwrap()(h)).unwrap(), d.chain_pem);
            assert_eq!(take(x.hsm_client_get_key.unwrap()(h)).unwrap(), d.key_pem);
            x.hsm_client_x509_destroy.unwrap()(h);
        }
        hsm_client_x509_deinit();
        hsm_client_x509_deinit();
    }
    hsm_abi_configure_clear();
}

#[test]
fn x509_key_reference_token_opens_a_signer() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    device(dir.path(), "device-token", &rcgen::PKCS_ECDSA_P256_SHA256);
    configure(&x509_toml(dir.path(), "key_reference = \"token\"\n"));
    let x = x509();
    let token = unsafe {
        let h = x.hsm_client_x509_create.unwrap()();
        assert!(!h.is_null(), "{}", last_error());
        let t = take(x.hsm_client_get_key.unwrap()(h)).unwrap();
        x.hsm_client_x509_destroy.unwrap()(h);
        t
    };
    assert_eq!(token, format!("file:{}", dir.path().join("key.pem").display()));
    let c = CString::new(token).unwrap();
    let mut signer: *mut HSM_ABI_SIGNER = std::ptr::null_mut();
    assert_eq!(unsafe { hsm_abi_signer_open(c.as_ptr(), &mut signer) }, HSM_ABI_OK);
    unsafe { hsm_abi_signer_close(signer) };
    hsm_abi_configure_clear();
}

fn sign_and_verify(key: &KeyPair, scheme: u32, verify_alg: &'static dyn ring::signature::VerificationAlgorithm) {
    let pem = CString::new(key.serialize_pem()).unwrap();
    let table = unsafe { &*hsm_abi_signer_table() };
    let mut signer: *mut HSM_ABI_SIGNER = std::ptr::null_mut();
    unsafe {
        assert_eq!(
            table.open.unwrap()(pem.as_ptr(), &mut signer),
            HSM_ABI_OK,
            "{}",
            last_error()
        );
        let mut info: HSM_ABI_KEY_INFO = std::mem::zeroed();
        info.struct_size = 4;
        assert_eq!(table.key_info.unwrap()(signer, &mut info), HSM_ABI_ERR_STRUCT_SIZE);
        assert_eq!(info.algorithm, 0, "written on failure");
        info.struct_size = size_of::<HSM_ABI_KEY_INFO>() as u32;
        assert_eq!(table.key_info.unwrap()(signer, &mut info), HSM_ABI_OK);
        assert!(info.schemes[..info.scheme_count as usize].contains(&scheme));

        let msg = b"to be signed";
        let mut len = 0usize;
        let rc = table.sign.unwrap()(signer, scheme, msg.as_ptr(), msg.len(), std::ptr::null_mut(), &mut len);
        assert_eq!(rc, HSM_ABI_ERR_BUFFER_TOO_SMALL);
        assert_eq!(len, info.max_signature_len as usize);
        assert!(last_error().contains("too small"));
        let mut sig = vec![0u8; len];
        let rc = table.sign.unwrap()(signer, scheme, msg.as_ptr(), msg.len(), sig.as_mut_ptr(), &mut len);
        assert_eq!(rc, HSM_ABI_OK, "{}", last_error());
        sig.truncate(len);

        let mut spki: *mut u8 = std::ptr::null_mut();
        let mut spki_len = 0usize;
        assert_eq!(table.public_key.unwrap()(signer, &mut spki, &mut spki_len), HSM_ABI_OK);
        let der = std::slice::from_raw_parts(spki, spki_len).to_vec();
        libc::free(spki.cast());
        assert_eq!(der, rcgen::PublicKeyData::subject_public_key_info(key));
        table.close.unwrap()(signer);

        ring::signature::UnparsedPublicKey::new(verify_alg, key.public_key_raw())
            .verify(msg, &sig)
            .expect("signature verifies");
    }
}

#[test]
fn signer_table_round_trip() {
    sign_and_verify(
        &KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        0x0403,
        &ring::signature::ECDSA_P256_SHA256_ASN1,
    );
    sign_and_verify(
        &KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        0x0503,
        &ring::signature::ECDSA_P384_SHA384_ASN1,
    );
}

#[test]
fn signer_rejects_bad_input() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = CString::new(key.serialize_pem()).unwrap();
    let mut signer: *mut HSM_ABI_SIGNER = std::ptr::null_mut();
    unsafe {
        assert_eq!(
            hsm_abi_signer_open(std::ptr::null(), &mut signer),
            HSM_ABI_ERR_INVALID_ARGUMENT
        );
        assert!(signer.is_null());
        assert_eq!(
            hsm_abi_signer_open(pem.as_ptr(), std::ptr::null_mut()),
            HSM_ABI_ERR_INVALID_ARGUMENT
        );
        let unknown = CString::new("ftp:key").unwrap();
        assert_eq!(hsm_abi_signer_open(unknown.as_ptr(), &mut signer), HSM_ABI_ERR_PARSE);
        assert!(last_error().contains("unknown scheme `ftp:`"), "{}", last_error());
        let missing = CString::new("file:/nonexistent/key.pem").unwrap();
        assert_eq!(hsm_abi_signer_open(missing.as_ptr(), &mut signer), HSM_ABI_ERR_IO);
        assert!(last_error().contains("/nonexistent/key.pem"));
        assert!(signer.is_null());

        assert_eq!(hsm_abi_signer_open(pem.as_ptr(), &mut signer), HSM_ABI_OK);
        let mut sig = [0u8; 128];
        let mut len = sig.len();
        let msg = b"m";
        // RSA-PSS with an EC key, an unknown scheme, NULL message with a length, NULL sig_len.
        let rc = hsm_abi_signer_sign(signer, 0x0804, msg.as_ptr(), 1, sig.as_mut_ptr(), &mut len);
        assert_eq!(rc, HSM_ABI_ERR_UNSUPPORTED);
        let rc = hsm_abi_signer_sign(signer, 0x0807, msg.as_ptr(), 1, sig.as_mut_ptr(), &mut len);
        assert_eq!(rc, HSM_ABI_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("0x0807"));
        let rc = hsm_abi_signer_sign(signer, 0x0403, std::ptr::null(), 1, sig.as_mut_ptr(), &mut len);
        assert_eq!(rc, HSM_ABI_ERR_INVALID_ARGUMENT);
        let rc = hsm_abi_signer_sign(signer, 0x0403, msg.as_ptr(), 1, sig.as_mut_ptr(), std::ptr::null_mut());
        assert_eq!(rc, HSM_ABI_ERR_INVALID_ARGUMENT);
        assert_eq!(len, sig.len(), "not written on failure");
        let rc = hsm_abi_signer_sign(std::ptr::null(), 0x0403, msg.as_ptr(), 1, sig.as_mut_ptr(), &mut len);
        assert_eq!(rc, HSM_ABI_ERR_INVALID_ARGUMENT);
        // An empty message is fine.
        let rc = hsm_abi_signer_sign(signer, 0x0403, std::ptr::null(), 0, sig.as_mut_ptr(), &mut len);
        assert_eq!(rc, HSM_ABI_OK);
        hsm_abi_signer_close(signer);
        hsm_abi_signer_close(std::ptr::null_mut());
        let mut info: HSM_ABI_KEY_INFO = std::mem::zeroed();
        assert_eq!(
            hsm_abi_signer_key_info(std::ptr::null(), &mut info),
            HSM_ABI_ERR_INVALID_ARGUMENT
        );
    }
}

#[test]
fn symmetric_key_sequence() {
    let _g = serial();
    configure(&format!(
        "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"device-0001\"\ngroup_key = \"{GROUP_KEY}\"\n"
    ));
    let k = keys();
    unsafe {
        let h = k.hsm_client_key_create.unwrap()();
        assert!(!h.is_null(), "{}", last_error());
        assert_eq!(
            k.hsm_client_set_symm_key_info.unwrap()(h, std::ptr::null(), std::ptr::null()),
            0
        );
        assert_eq!(
            take(k.hsm_client_get_registration_name.unwrap()(h)).unwrap(),
            "device-0001"
        );
        assert_eq!(take(k.hsm_client_get_symm_key.unwrap()(h)).unwrap(), DERIVED_KEY);

        // Overrides: as given, on this handle only.
        let id = CString::new("other-device").unwrap();
        let key = CString::new("AAECAwQF").unwrap();
        assert_eq!(k.hsm_client_set_symm_key_info.unwrap()(h, id.as_ptr(), key.as_ptr()), 0);
        assert_eq!(
            take(k.hsm_client_get_registration_name.unwrap()(h)).unwrap(),
            "other-device"
        );
        assert_eq!(take(k.hsm_client_get_symm_key.unwrap()(h)).unwrap(), "AAECAwQF");
        let h2 = k.hsm_client_key_create.unwrap()();
        assert_eq!(
            take(k.hsm_client_get_registration_name.unwrap()(h2)).unwrap(),
            "device-0001"
        );

        // A bad key is refused and changes nothing.
        let bad = CString::new("not base64!").unwrap();
        assert_eq!(
            k.hsm_client_set_symm_key_info.unwrap()(h, std::ptr::null(), bad.as_ptr()),
            HSM_ABI_ERR_PARSE
        );
        assert!(last_error().contains("symm_key"), "{}", last_error());
        let empty = CString::new("").unwrap();
        assert_eq!(
            k.hsm_client_set_symm_key_info.unwrap()(h, empty.as_ptr(), std::ptr::null()),
            HSM_ABI_ERR_INVALID_ARGUMENT
        );
        assert_eq!(take(k.hsm_client_get_symm_key.unwrap()(h)).unwrap(), "AAECAwQF");
        k.hsm_client_key_destroy.unwrap()(h);
        k.hsm_client_key_destroy.unwrap()(h2);
    }
    hsm_abi_configure_clear();
}

#[test]
fn bad_handles_and_missing_configuration() {
    let _g = serial();
    hsm_abi_configure_clear();
    let (x, k, t) = (x509(), keys(), tpm());
    unsafe {
        // No configuration (HSM_ABI_CONFIG is not set in this test process).
        assert!(std::env::var_os("HSM_ABI_CONFIG").is_none());
        assert_eq!(hsm_client_x509_init(), 0);
        assert!(x.hsm_client_x509_create.unwrap()().is_null());
        assert!(last_error().contains("no configuration"), "{}", last_error());
        assert!(k.hsm_client_key_create.unwrap()().is_null());
        assert!(t.hsm_client_tpm_create.unwrap()().is_null());
        hsm_client_x509_deinit();

        // NULL handles.
        assert!(x.hsm_client_get_cert.unwrap()(std::ptr::null_mut()).is_null());
        assert!(last_error().contains("handle") && last_error().contains("NULL"));
        assert!(x.hsm_client_get_key.unwrap()(std::ptr::null_mut()).is_null());
        assert!(x.hsm_client_get_common_name.unwrap()(std::ptr::null_mut()).is_null());
        assert!(k.hsm_client_get_symm_key.unwrap()(std::ptr::null_mut()).is_null());
        assert!(k.hsm_client_get_registration_name.unwrap()(std::ptr::null_mut()).is_null());
        let rc = k.hsm_client_set_symm_key_info.unwrap()(std::ptr::null_mut(), std::ptr::null(), std::ptr::null());
        assert_eq!(rc, HSM_ABI_ERR_INVALID_ARGUMENT);
        let mut p: *mut u8 = std::ptr::null_mut();
        let mut n = 0usize;
        assert_eq!(t.hsm_client_get_ek.unwrap()(std::ptr::null_mut(), &mut p, &mut n), 1);
        assert_eq!(t.hsm_client_get_srk.unwrap()(std::ptr::null_mut(), &mut p, &mut n), 1);
        assert_eq!(
            t.hsm_client_activate_identity_key.unwrap()(std::ptr::null_mut(), [1u8].as_ptr(), 1),
            1
        );
        let rc = t.hsm_client_sign_with_identity.unwrap()(std::ptr::null_mut(), [1u8].as_ptr(), 1, &mut p, &mut n);
        assert_eq!(rc, 1);
        assert!(p.is_null() && n == 0);
        x.hsm_client_x509_destroy.unwrap()(std::ptr::null_mut());
        k.hsm_client_key_destroy.unwrap()(std::ptr::null_mut());
        t.hsm_client_tpm_destroy.unwrap()(std::ptr::null_mut());

        // A handle of another interface is refused, not misused.
        configure(&format!(
            "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"r\"\nsymmetric_key = \"{DERIVED_KEY}\"\n\
             [tpm]\nbackend = \"tpm-9000\"\n"
        ));
        let h = k.hsm_client_key_create.unwrap()();
        assert!(!h.is_null());
        assert!(x.hsm_client_get_cert.unwrap()(h).is_null());
        assert!(
            last_error().contains("is not a handle of the x509 interface"),
            "{}",
            last_error()
        );
        x.hsm_client_x509_destroy.unwrap()(h);
        assert!(last_error().contains("is not a handle of the x509 interface"));
        assert_eq!(take(k.hsm_client_get_registration_name.unwrap()(h)).unwrap(), "r");
        k.hsm_client_key_destroy.unwrap()(h);

        // Configured sections that cannot be opened.
        assert!(x.hsm_client_x509_create.unwrap()().is_null());
        assert!(last_error().contains("[x509] is missing"), "{}", last_error());
        assert!(t.hsm_client_tpm_create.unwrap()().is_null());
        assert!(last_error().contains("backend \"tpm-9000\" is not built into this library"));
    }
    let toml = CString::new("[x509\n").unwrap();
    assert_eq!(unsafe { hsm_abi_configure_toml(toml.as_ptr()) }, HSM_ABI_ERR_CONFIG);
    assert_eq!(
        unsafe { hsm_abi_configure_toml(std::ptr::null()) },
        HSM_ABI_ERR_INVALID_ARGUMENT
    );
    let missing = CString::new("/nonexistent/hsm.toml").unwrap();
    assert_eq!(unsafe { hsm_abi_configure_file(missing.as_ptr()) }, HSM_ABI_ERR_IO);
    assert!(last_error().contains("/nonexistent/hsm.toml"));
    hsm_abi_configure_clear();
}

#[test]
fn file_backend_errors_are_named() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    device(dir.path(), "device-a", &rcgen::PKCS_ECDSA_P256_SHA256);
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(dir.path().join("other.pem"), other.serialize_pem()).unwrap();
    let x = x509();
    let cases = [
        (
            format!(
                "[x509]\nbackend = \"file\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
                dir.path().join("chain.pem").display(),
                dir.path().join("other.pem").display()
            ),
            "does not match",
        ),
        (
            format!(
                "[x509]\nbackend = \"file\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
                dir.path().join("none.pem").display(),
                dir.path().join("key.pem").display()
            ),
            "none.pem",
        ),
        ("[x509]\nbackend = \"magic\"\n".to_string(), "built in: file"),
    ];
    for (toml, expected) in cases {
        configure(&toml);
        assert!(unsafe { x.hsm_client_x509_create.unwrap()() }.is_null());
        assert!(last_error().contains(expected), "{expected}: {}", last_error());
    }
    hsm_abi_configure_clear();
}

#[test]
fn handles_are_shared_and_created_across_threads() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = device(dir.path(), "device-threads", &rcgen::PKCS_ECDSA_P256_SHA256);
    configure(&x509_toml(dir.path(), ""));
    let x = x509();
    let shared = unsafe { x.hsm_client_x509_create.unwrap()() } as usize;
    assert_ne!(shared, 0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..20 {
                    unsafe {
                        let own = x.hsm_client_x509_create.unwrap()();
                        assert!(!own.is_null(), "{}", last_error());
                        for h in [own, shared as *mut c_void] {
                            assert_eq!(take(x.hsm_client_get_cert.unwrap()(h)).unwrap(), d.chain_pem);
                            assert_eq!(take(x.hsm_client_get_key.unwrap()(h)).unwrap(), d.key_pem);
                        }
                        x.hsm_client_x509_destroy.unwrap()(own);
                    }
                }
            });
        }
    });
    unsafe { x.hsm_client_x509_destroy.unwrap()(shared as *mut c_void) };
    hsm_abi_configure_clear();
}

#[test]
fn error_strings_and_last_error_truncation() {
    for code in all_codes() {
        let s = unsafe { CStr::from_ptr(hsm_abi_error_string(code)) }.to_str().unwrap();
        assert_ne!(s, "unknown error code", "code {code}");
    }
    for code in [-1, 13, 99, 101, 600, i32::MAX] {
        let s = unsafe { CStr::from_ptr(hsm_abi_error_string(code)) }.to_str().unwrap();
        assert_eq!(s, "unknown error code");
    }
    // A fresh thread has no last error; then truncation keeps the NUL.
    std::thread::spawn(|| {
        assert_eq!(unsafe { hsm_abi_last_error(std::ptr::null_mut(), 0) }, 1);
        assert_eq!(
            unsafe { hsm_abi_configure_toml(std::ptr::null()) },
            HSM_ABI_ERR_INVALID_ARGUMENT
        );
        let full = unsafe { hsm_abi_last_error(std::ptr::null_mut(), 0) };
        assert!(full > 10);
        let mut buf = [0x55 as c_char; 8];
        assert_eq!(unsafe { hsm_abi_last_error(buf.as_mut_ptr(), buf.len()) }, full);
        assert_eq!(buf[7], 0);
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert_eq!(s, "hsm_abi");
    })
    .join()
    .unwrap();
}
