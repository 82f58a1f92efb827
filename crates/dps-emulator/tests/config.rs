//! The TOML configuration: a full file, defaults, and clear errors naming the file and the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use dps_emulator::{DEFAULT_ASSIGNED_HUB, Emulator, EmulatorConfig, Enrollment};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn full_file_loads_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("file root");
    let device = root.leaf("device-x509");
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    write(
        dir.path(),
        "certs/device.pem",
        &hsm_core::pem::certificates_to_pem(&device.chain),
    );
    write(dir.path(), "certs/root.pem", &root.pem());
    let path = write(
        dir.path(),
        "dps.toml",
        &format!(
            r#"
id_scope = "{SCOPE}"
assigned_hub = "{HUB}"

[[enrollment]]
type = "x509-individual"
registration_id = "device-x509"
certificate = "certs/device.pem"

[[enrollment]]
type = "x509-group"
name = "fleet"
ca = "certs/root.pem"

[[enrollment]]
type = "symmetric-individual"
registration_id = "sym-device"
primary_key = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLTAxMjM0NTY3ODk="
secondary_key = "c2Vjb25kYXJ5LWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc="

[[enrollment]]
type = "symmetric-group"
name = "group1"
primary_key = "{GROUP_KEY}"
"#
        ),
    );
    let config = EmulatorConfig::from_file(&path).unwrap();
    assert_eq!(config.id_scope, SCOPE);
    assert_eq!(config.assigned_hub, HUB);
    assert_eq!(config.enrollments.len(), 4);
    match &config.enrollments[0] {
        Enrollment::X509Individual {
            registration_id,
            certificate,
        } => {
            assert_eq!(registration_id, "device-x509");
            assert_eq!(certificate, &device.chain);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&config.enrollments[1], Enrollment::X509Group { name, ca } if name == "fleet" && ca[0] == root.der())
    );
    assert!(matches!(
        &config.enrollments[2],
        Enrollment::SymmetricIndividual {
            secondary_key: Some(_),
            ..
        }
    ));
    assert!(matches!(
        &config.enrollments[3],
        Enrollment::SymmetricGroup {
            secondary_key: None,
            ..
        }
    ));
    // Keys never show in Debug output.
    assert!(!format!("{config:?}").contains("cHJpbWFy"));

    let emu = Emulator::start(config).unwrap();
    assert_eq!(emu.id_scope(), SCOPE);
    let group_device = root.leaf("device-9");
    assert_assigned(
        &provision(&agent(&emu, Some(&device), Tls::Any), &emu, "device-x509", None),
        "device-x509",
    );
    assert_assigned(
        &provision(&agent(&emu, Some(&group_device), Tls::Any), &emu, "device-9", None),
        "device-9",
    );
    let token = sas("device-0001", GROUP_DEVICE_KEY, now() + 60);
    assert_assigned(
        &provision(&agent(&emu, None, Tls::Any), &emu, "device-0001", Some(&token)),
        "device-0001",
    );
}

#[test]
fn hub_defaults() {
    let config = EmulatorConfig::from_toml("id_scope = \"0ne1\"\n", Path::new(".")).unwrap();
    assert_eq!(config.assigned_hub, DEFAULT_ASSIGNED_HUB);
    assert_eq!(DEFAULT_ASSIGNED_HUB, "emulated-hub.azure-devices.net");
    assert!(config.enrollments.is_empty());
}

fn error_of(text: &str, dir: &Path) -> String {
    let path = write(dir, "bad.toml", text);
    let e = EmulatorConfig::from_file(&path).unwrap_err().to_string();
    assert!(e.contains("bad.toml"), "{e} does not name the file");
    e
}

#[test]
fn errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            "id_scope = \"s\"\nbogus = 1\n",
            "bogus: unknown key (expected one of: id_scope, assigned_hub, enrollment, state_dir, service_policy)",
        ),
        ("assigned_hub = \"h\"\n", "id_scope: missing (required)"),
        ("id_scope = 5\n", "id_scope: expected a string, found a integer"),
        (
            "id_scope = \"a/b\"\n",
            "id_scope: \"a/b\" must not contain '/' or spaces",
        ),
        (
            "id_scope = \"s\"\nenrollment = 3\n",
            "enrollment: expected [[enrollment]] sections, found a integer",
        ),
        (
            "id_scope = \"s\"\n[[enrollment]]\ntype = \"x509-magic\"\n",
            "enrollment[0].type: unknown enrollment type \"x509-magic\"",
        ),
        (
            "id_scope = \"s\"\n[[enrollment]]\ntype = \"symmetric-group\"\nname = \"g\"\nprimary_key = \"AAAA\"\nregistration_id = \"r\"\n",
            "enrollment[0].registration_id: unknown key for a symmetric-group enrollment (expected one of: type, name, primary_key, secondary_key)",
        ),
        (
            "id_scope = \"s\"\n[[enrollment]]\ntype = \"symmetric-individual\"\nregistration_id = \"r\"\nprimary_key = \"not base64!\"\n",
            "enrollment[0].primary_key: cannot parse primary_key: not valid base64",
        ),
        (
            "id_scope = \"s\"\n[[enrollment]]\ntype = \"symmetric-individual\"\nregistration_id = \"r\"\n",
            "enrollment[0].primary_key: missing (required)",
        ),
        (
            "id_scope = \"s\"\n[[enrollment]]\ntype = \"x509-individual\"\nregistration_id = \"r\"\ncertificate = \"missing.pem\"\n",
            "enrollment[0].certificate: cannot read \"missing.pem\"",
        ),
        (
            "id_scope = \"s\"\n[[enrollment]]\ntype = \"x509-group\"\nname = \"g\"\nca = \"bad.toml\"\n",
            "enrollment[0].ca: cannot parse bad.toml: no PEM CERTIFICATE block found",
        ),
        (
            "id_scope = \"s\"\n[[enrollment]]\ntype = \"symmetric-group\"\nname = \"g\"\nprimary_key = \"AAAA\"\n[[enrollment]]\ntype = \"symmetric-group\"\nname = \"g\"\nprimary_key = \"AAAA\"\n",
            "enrollment[1].name: a second symmetric-group 'g' enrollment",
        ),
        ("id_scope = \n", "(document): not valid TOML"),
    ];
    for (text, expected) in cases {
        let e = error_of(text, d);
        assert!(e.contains(expected), "{e:?} lacks {expected:?}");
    }
}

#[test]
fn configurations_built_in_code_are_checked_at_start() {
    let bad_key = config(vec![Enrollment::SymmetricGroup {
        name: "g".into(),
        primary_key: "%%%".into(),
        secondary_key: None,
    }]);
    let e = Emulator::start(bad_key).unwrap_err().to_string();
    assert!(
        e.contains("enrollment[0].primary_key") && e.contains("not valid base64"),
        "{e}"
    );
    let no_ca = config(vec![Enrollment::X509Group {
        name: "g".into(),
        ca: vec![],
    }]);
    let e = Emulator::start(no_ca).unwrap_err().to_string();
    assert!(e.contains("enrollment[0].ca: no CA certificate"), "{e}");
    let not_a_cert = config(vec![Enrollment::X509Group {
        name: "g".into(),
        ca: vec![b"junk".to_vec().into()],
    }]);
    let e = Emulator::start(not_a_cert).unwrap_err().to_string();
    assert!(
        e.contains("enrollment[0].ca: certificate 1 cannot be a trust anchor"),
        "{e}"
    );
}

#[test]
fn start_on_a_given_port_and_port_in_use() {
    let first = Emulator::start(config(vec![])).unwrap();
    let e = Emulator::start_on(config(vec![]), first.port())
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("binding 127.0.0.1:{}", first.port())), "{e}");
    let port = first.port();
    first.shutdown();
    let second = Emulator::start_on(config(vec![]), port).unwrap();
    assert_eq!(second.port(), port);
    assert_eq!(second.global_endpoint(), format!("127.0.0.1:{port}"));
    assert!(second.server_ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}
