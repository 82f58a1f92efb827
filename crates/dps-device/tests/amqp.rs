//! What is AMQP's own in a refusal (`ConnectionRefused` code 5, as MQTT's CONNACK 5) (the shared cases, assignment and refusals over both AMQP transports, are rows
//! of `transports.rs`): a wrong key is refused at SASL, before the connection opens; an untrusted chain (no
//! SASL: the TLS client certificate) when the links attach, and the same client is then admitted with an
//! enrolled identity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dps_device::{Error, Transport};
use dps_emulator::Enrollment;

#[tokio::test]
async fn a_wrong_key_is_refused_at_sasl() {
    let emu = emulator(vec![Enrollment::SymmetricIndividual {
        registration_id: "amqp-symm".into(),
        primary_key: DEVICE_KEY.into(),
        secondary_key: None,
    }]);
    let e = amqp_client(&emu, options())
        .register(&symmetric("amqp-symm", GROUP_DEVICE_KEY), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::ConnectionRefused { transport: Transport::Amqp, code: 5, reason, source: Some(_) }
            if reason.contains("refused the SASL authentication (outcome auth")),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn an_untrusted_chain_is_refused_at_attach() {
    let dir = tempfile::tempdir().unwrap();
    let enrolled = Ca::root("enrolled");
    let rogue = Ca::root("rogue");
    let emu = emulator(vec![Enrollment::X509Group {
        name: "fleet".into(),
        ca: vec![enrolled.der()],
    }]);
    let client = amqp_client(&emu, options());
    let e = client
        .register(&x509(rogue.file_identity(dir.path(), "dev-r", &[])), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::ConnectionRefused { transport: Transport::Amqp, code: 5, reason, source: Some(_) }
            if reason.contains("link (amqp:unauthorized-access): certificate chain does not verify to any enrollment")),
        "{e:?}"
    );
    assert!(!e.is_retryable(), "{e:?}");
    // The same client with an enrolled identity is admitted: the refusal was about the chain.
    assert_assigned(
        &client
            .register(&x509(enrolled.file_identity(dir.path(), "dev-a", &[])), None)
            .await
            .unwrap(),
        "dev-a",
    );
}
