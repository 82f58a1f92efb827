//! `ProvisioningClient::builder`: a client from the id scope, the transport, a trusted PEM file and a
//! timeout, over every transport; the defaults (global endpoint, Mozilla roots); a bad PEM file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use dps_device::{Attestation, Error, GLOBAL_ENDPOINT, ProvisioningClient, Transport};
use dps_emulator::Enrollment;
use hsm_core::file::FileSymmetric;

fn enrolled() -> dps_emulator::Emulator {
    emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "built".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }])
}

#[tokio::test]
async fn a_built_client_registers_over_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    for t in Transport::ALL {
        let emu = enrolled();
        let ca = dir.path().join(format!("{}.pem", t.name()));
        std::fs::write(&ca, emu.server_ca_pem()).unwrap();
        let client = ProvisioningClient::builder(SCOPE)
            .endpoint(&endpoint(&emu, t))
            .transport(t)
            .trust_pem_file(&ca)
            .options(options())
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        assert_eq!(client.options().timeout, Duration::from_secs(15), "{t}");
        let a = client.register(&symmetric("built", DEVICE_KEY), None).await;
        assert_assigned(&a.unwrap_or_else(|e| panic!("{t}: {e}")), "built");
    }
}

#[test]
fn a_built_blocking_client_registers_with_a_boxed_identity() {
    let emu = enrolled();
    let client = ProvisioningClient::builder(SCOPE)
        .endpoint(&emu.global_endpoint())
        .trust_roots(dps_device::rustls::RootCertStore::from_iter(
            roots(&emu.server_ca_pem()).roots,
        ))
        .options(options())
        .build_blocking()
        .unwrap();
    // What `hsm::open_symmetric` returns, a Box, taken without a conversion by the caller.
    let key = hsm_core::sas::decode_key("test key", DEVICE_KEY).unwrap();
    let boxed: Box<dyn hsm_core::SymmetricIdentity> = Box::new(FileSymmetric::new("built".into(), key));
    let a = client.register(&Attestation::symmetric_key(boxed), None).unwrap();
    assert_assigned(&a, "built");
}

#[tokio::test]
async fn the_default_roots_are_the_public_ones_not_any() {
    // The Mozilla store does not hold the emulator's test CA: the handshake must fail.
    let emu = enrolled();
    let e = ProvisioningClient::builder(SCOPE)
        .endpoint(&emu.global_endpoint())
        .options(options())
        .build()
        .unwrap()
        .register(&symmetric("built", DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Tls { message, .. } if message.contains("UnknownIssuer")),
        "{e:?}"
    );
    assert_eq!(GLOBAL_ENDPOINT, "global.azure-devices-provisioning.net");
}

#[test]
fn an_unreadable_or_empty_pem_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    match ProvisioningClient::builder(SCOPE).trust_pem_file(&missing).build() {
        Err(e @ Error::TrustRoots { .. }) => {
            assert!(e.to_string().contains("missing.pem"), "{e}");
            assert!(std::error::Error::source(&e).is_some(), "{e:?}");
        }
        other => panic!("expected a trusted-CA error, got {other:?}"),
    }
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let e = ProvisioningClient::builder(SCOPE)
        .trust_pem_file(&empty)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("empty.pem"), "{e}");
}
