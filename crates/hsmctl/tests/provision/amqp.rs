//! `hsmctl provision --transport amqp|amqp-ws` against the emulator's AMQP listener and its HTTPS port
//! (issue 23): x509 assigned over both, a symmetric key assigned, a wrong key refused.

use crate::common::HUB;
use crate::setup::*;

#[test]
fn x509_and_symmetric_key_over_amqp() {
    let e = env();
    let x509 = x509_device(e.dir.path(), "x509", &e.root, "device-x509-amqp");
    for transport in ["amqp", "amqp-ws"] {
        let stdout = ok(&e.provision_over(transport, &x509, &[]));
        assert!(
            stdout.contains("registration id: device-x509-amqp"),
            "{transport}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("assigned hub: {HUB}")),
            "{transport}: {stdout}"
        );
    }

    let symm = |name: &str, key: &str| {
        symm_device(
            e.dir.path(),
            name,
            &format!("registration_id = \"device-sym\"\nsymmetric_key = \"{key}\""),
        )
    };
    let stdout = ok(&e.provision_over("amqp", &symm("good", DEVICE_KEY), &[]));
    assert!(stdout.contains("registration id: device-sym"), "{stdout}");

    let out = e.provision_over("amqp", &symm("bad", "d3Jvbmcta2V5LWZvci10aGUtZGV2aWNl"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("AMQP") && stderr.contains("refused the SASL authentication (outcome auth"),
        "{stderr}"
    );
}
