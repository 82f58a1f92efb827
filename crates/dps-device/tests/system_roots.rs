//! `ClientBuilder::system_roots`: the operating system's store as rustls-native-certs reads it,
//! here pointed at the emulator's CA with `SSL_CERT_FILE` (as a user points it at another bundle).
//! One test in its own binary: the variable is set before any other thread runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dps_device::{Error, ProvisioningClient};
use dps_emulator::Enrollment;

#[test]
fn the_system_store_is_read_and_trusted_instead_of_the_mozilla_roots() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "system".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, emu.server_ca_pem()).unwrap();
    // SAFETY: the only test of this binary, and no other thread has been started by it yet (the
    // emulator's threads do not read the environment).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SSL_CERT_FILE", &bundle);
        std::env::remove_var("SSL_CERT_DIR");
    }
    let builder = || {
        ProvisioningClient::builder(SCOPE)
            .endpoint(&emu.global_endpoint())
            .options(options())
    };
    let a = builder()
        .system_roots()
        .build_blocking()
        .unwrap()
        .register(&symmetric("system", DEVICE_KEY), None)
        .unwrap();
    assert_assigned(&a, "system");

    // The default, the Mozilla store, does not know the emulator's CA.
    let e = builder()
        .build_blocking()
        .unwrap()
        .register(&symmetric("system", DEVICE_KEY), None)
        .unwrap_err();
    assert!(matches!(&e, Error::Tls { .. }), "{e:?}");

    // A store without a usable certificate is a typed error naming it, with its cause.
    std::fs::write(&bundle, "no certificate here\n").unwrap();
    match builder().system_roots().build() {
        Err(e @ Error::SystemRoots { .. }) => assert!(e.to_string().contains("system root store"), "{e}"),
        other => panic!("expected a system store error, got {other:?}"),
    }
}
