//! A configuration file caught mid-rewrite (issue 12): an empty or incomplete document is an
//! error, not a cached configuration, and a later call reads the file again (without the
//! application calling deinit).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Setting the environment and calling `extern "C"` functions is unsafe by nature.
#![allow(unsafe_code)]

mod common;

use common::last_error;
use hsm_abi::ffi::ext::*;
use hsm_abi::ffi::sdk::*;

// The only test of this binary: it owns the process environment.
#[test]
fn an_empty_or_partial_configuration_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hsm.toml");
    let full = "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"r1\"\nsymmetric_key = \"AAECAw==\"\n";
    hsm_abi_configure_clear();
    unsafe { std::env::set_var("HSM_ABI_CONFIG", &path) };
    let k = unsafe { &*hsm_client_key_interface() };
    let create_and_destroy = || unsafe {
        let h = k.hsm_client_key_create.unwrap()();
        let ok = !h.is_null();
        k.hsm_client_key_destroy.unwrap()(h);
        ok
    };

    // Empty (truncated to zero by the rewriter): init and create fail, naming the problem.
    std::fs::write(&path, "").unwrap();
    assert_ne!(hsm_client_x509_init(), 0);
    assert!(last_error().contains("empty or incomplete"), "{}", last_error());
    assert!(!create_and_destroy());
    std::fs::write(&path, full).unwrap();
    assert!(create_and_destroy(), "{}", last_error());

    // Partial: the section header and backend written, the keys not yet.
    hsm_client_x509_deinit();
    hsm_client_x509_deinit();
    let partial: String = full.split_inclusive('\n').take(2).collect();
    std::fs::write(&path, partial).unwrap();
    assert_eq!(hsm_client_x509_init(), 0, "{}", last_error());
    assert!(!create_and_destroy());
    assert!(last_error().contains("symmetric_key"), "{}", last_error());
    // Rewritten completely: the next create works, still without any deinit.
    std::fs::write(&path, full).unwrap();
    assert!(create_and_destroy(), "{}", last_error());
    hsm_client_x509_deinit();
    unsafe { std::env::remove_var("HSM_ABI_CONFIG") };
}
