//! The command line around provisioning: bad configurations, a closed stdout, `derive-key` and `sas` against
//! the test vectors and through the configured identity.

use std::process::Command;

use crate::common::SCOPE;
use crate::setup::*;

#[test]
fn bad_configuration_is_a_clear_error() {
    let e = env();
    let cfg = symm_device(
        e.dir.path(),
        "broken",
        "registration_id = \"x\"\nsymmetric_key = \"not base64!\"",
    );
    let out = e.provision(&cfg, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.toml") && stderr.contains("symmetric_key"),
        "{stderr}"
    );
}

/// A reader that went away (`hsmctl ... | head -1`) ends hsmctl quietly, never with a panic;
/// other write errors are reported.
#[test]
fn closed_or_failing_stdout_is_no_panic() {
    let args = [
        "derive-key",
        "--group-key",
        GROUP_KEY,
        "--registration-id",
        "device-0001",
    ];
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args(args)
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "closed pipe: {:?} {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A full device: an error naming standard output, exit status 1.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args(args)
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("writing to standard output") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn derive_key_and_sas_match_the_test_vectors() {
    let derived = hsmctl(&[
        "derive-key",
        "--group-key",
        GROUP_KEY,
        "--registration-id",
        "device-0001",
    ]);
    assert_eq!(derived.trim(), "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=");
    let token = hsmctl(&[
        "sas",
        "dps",
        "--id-scope",
        SCOPE,
        "--registration-id",
        "device-0001",
        "--key",
        derived.trim(),
        "--expiry",
        "1767225600",
    ]);
    assert_eq!(
        token.trim(),
        "SharedAccessSignature sr=0ne00000A0A%2fregistrations%2fdevice-0001&sig=sWSjFs4E5KYQNTTlI1ZWkgs5AaRrTQvh2QKwI5650IA%3d&se=1767225600&skn=registration"
    );
}

#[test]
fn sas_from_configuration_signs_through_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = symm_device(
        dir.path(),
        "grp",
        &format!("registration_id = \"device-0001\"\ngroup_key = \"{GROUP_KEY}\""),
    );
    let token = hsmctl(&[
        "sas",
        "dps",
        "--id-scope",
        SCOPE,
        "--config",
        cfg.to_str().unwrap(),
        "--expiry",
        "1767225600",
    ]);
    assert!(
        token.contains("sig=sWSjFs4E5KYQNTTlI1ZWkgs5AaRrTQvh2QKwI5650IA%3d"),
        "{token}"
    );
    let hub = hsmctl(&[
        "sas",
        "hub",
        "--host",
        "h.example",
        "--device-id",
        "d1",
        "--key",
        "a2V5",
        "--expiry",
        "10",
    ]);
    assert!(
        hub.starts_with("SharedAccessSignature sr=h.example/devices/d1&sig="),
        "{hub}"
    );
    assert!(!hub.contains("skn="));
}
