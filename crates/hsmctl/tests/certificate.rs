//! `hsmctl provision --issue-certificate` and `hsmctl certificate request|renew|confirm|status`
//! against the DPS emulator (keys in files here; the same store on SoftHSM2 is tested in
//! hsm-issued), and hsmctl killed (HSM_ISSUED_CRASH_AT) at each step of a renewal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dps_emulator::{Emulator, Enrollment, IssuanceOptions, IssuingCa, ServerOptions};

use test_support::emulator::HUB;
use test_support::emulator::SCOPE;
const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";
const ID: &str = "issued-cli";

struct Env {
    dir: tempfile::TempDir,
    emulator: Emulator,
    server_ca: PathBuf,
    config: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_support::pki::Ca::root_with("cli issuing CA", test_support::pki::KeyType::P384, |_| {});
    let emulator = Emulator::start_with(
        test_support::emulator::config(vec![
            Enrollment::SymmetricIndividual {
                registration_id: ID.into(),
                primary_key: DEVICE_KEY.into(),
                secondary_key: None,
            },
            Enrollment::X509Group {
                name: "issued".into(),
                ca: vec![ca.der().clone()],
            },
        ]),
        0,
        ServerOptions {
            issuance: IssuanceOptions {
                ca: Some(IssuingCa {
                    certificate_pem: ca.pem(),
                    key_pem: ca.key_pem().into(),
                }),
                ..IssuanceOptions::default()
            },
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, emulator.server_ca_pem()).unwrap();
    let config = dir.path().join("device.toml");
    std::fs::write(
        &config,
        format!(
            "[x509]\nbackend = \"issued\"\nstore = \"issued\"\nregistration_id = \"{ID}\"\nkeys = \"file\"\n\n\
             [symmetric_key]\nbackend = \"file\"\nregistration_id = \"{ID}\"\nsymmetric_key = \"{DEVICE_KEY}\"\n"
        ),
    )
    .unwrap();
    Env {
        dir,
        emulator,
        server_ca,
        config,
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Env {
    fn hsmctl(&self, args: &[&str], crash_at: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
        cmd.args(args).env_remove("HSM_ISSUED_CRASH_AT");
        if let Some(step) = crash_at {
            cmd.env("HSM_ISSUED_CRASH_AT", step);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.hsmctl(args, None);
        assert!(o.status.success(), "hsmctl {args:?}: {}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    fn config(&self) -> &str {
        self.config.to_str().unwrap()
    }

    fn dps_args<'a>(&'a self, endpoint: &'a str, transport: &'a str) -> Vec<&'a str> {
        vec![
            "--config",
            self.config(),
            "--id-scope",
            SCOPE,
            "--global-endpoint",
            endpoint,
            "--transport",
            transport,
            "--trusted-ca",
            self.server_ca.to_str().unwrap(),
            "--timeout",
            "20",
        ]
    }

    fn renew_hub(&self, crash_at: Option<&str>) -> Output {
        let endpoint = self.emulator.mqtt_endpoint();
        self.hsmctl(
            &[
                "certificate",
                "renew",
                "hub",
                "--config",
                self.config(),
                "--hub",
                HUB,
                "--endpoint",
                &endpoint,
                "--trusted-ca",
                self.server_ca.to_str().unwrap(),
                "--timeout",
                "20",
            ],
            crash_at,
        )
    }

    fn status(&self) -> String {
        self.ok(&["certificate", "status", "--config", self.config()])
    }

    fn store(&self) -> &Path {
        self.dir.path()
    }
}

fn line<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no `{field}` in:\n{status}"))
        .trim()
}

#[test]
fn issue_at_registration_renew_both_ways_confirm_and_status() {
    let e = env();
    let status = e.status();
    assert!(status.contains("none issued yet"), "{status}");

    // Onboarding with the symmetric key, over MQTT.
    let mqtt = e.emulator.mqtt_endpoint();
    let mut args = vec!["provision", "--issue-certificate", "--attestation", "symmetric-key"];
    args.extend(e.dps_args(&mqtt, "mqtt"));
    let out = e.ok(&args);
    assert!(out.contains(&format!("assigned hub: {HUB}")), "{out}");
    let status = e.status();
    assert_eq!(line(&status, "generation:"), "1");
    assert_eq!(line(&status, "subject:"), format!("CN={ID}"));
    assert!(line(&status, "key:").starts_with("file:"), "{status}");
    assert!(line(&status, "issuer:").contains("cli issuing CA"), "{status}");
    // Renewal due at 80 % of the emulator's default 30 days: 24 days after notBefore.
    assert!(line(&status, "renewal due:").contains("80 %"), "{status}");
    let valid = line(&status, "valid:");
    assert!(valid.contains(" to "), "{status}");

    // IoT Hub renewal: generation 2, generation 1 kept until 2 is used.
    let o = e.renew_hub(None);
    assert!(o.status.success(), "{}", text(&o));
    let status = e.status();
    assert_eq!(line(&status, "generation:"), "2");
    assert!(line(&status, "previous:").starts_with("generation 1 kept"), "{status}");

    // Re-registration with the issued certificate over HTTPS: generation 2 worked, so 1 goes.
    let https = e.emulator.global_endpoint();
    let mut args = vec!["certificate", "renew", "dps"];
    args.extend(e.dps_args(&https, "https"));
    e.ok(&args);
    let status = e.status();
    assert_eq!(line(&status, "generation:"), "3");
    assert!(line(&status, "previous:").starts_with("generation 2 kept"), "{status}");
    assert!(!e.store().join("issued/issued-issued-cli-1.key.pem").exists());

    // Confirmed after use: only generation 3 remains.
    e.ok(&["certificate", "confirm", "--config", e.config()]);
    let status = e.status();
    assert!(!status.contains("previous:"), "{status}");
    let mut files: Vec<String> = std::fs::read_dir(e.store().join("issued"))
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "issued-issued-cli-3.chain.pem",
            "issued-issued-cli-3.key.pem",
            "state.toml"
        ]
    );

    // `certificate request` with the onboarding key again: a new generation.
    let mut args = vec!["certificate", "request", "--attestation", "symmetric-key"];
    args.extend(e.dps_args(&https, "https"));
    e.ok(&args);
    assert_eq!(line(&e.status(), "generation:"), "4");
}

#[test]
fn hub_unreachable_keeps_the_identity_and_the_error_is_shown() {
    let e = env();
    let mqtt = e.emulator.mqtt_endpoint();
    let mut args = vec!["provision", "--issue-certificate"];
    args.extend(e.dps_args(&mqtt, "mqtt"));
    e.ok(&args);
    let before = e.status();
    // Nothing listens on port 1.
    let o = e.hsmctl(
        &[
            "certificate",
            "renew",
            "hub",
            "--config",
            e.config(),
            "--hub",
            HUB,
            "--endpoint",
            "127.0.0.1:1",
            "--trusted-ca",
            e.server_ca.to_str().unwrap(),
            "--timeout",
            "5",
        ],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("127.0.0.1:1") || err.contains("onnect"), "{}", text(&o));
    let after = e.status();
    assert_eq!(line(&after, "generation:"), line(&before, "generation:"));
    assert!(after.contains("pending:"), "{after}");
    // And it still renews once the hub is reachable, with a new key (generation 2, the
    // pending one, is dropped; numbers are never reused).
    let o = e.renew_hub(None);
    assert!(o.status.success(), "{}", text(&o));
    let status = e.status();
    assert_eq!(line(&status, "generation:"), "3");
    assert!(!status.contains("pending:"), "{status}");
}

#[test]
fn hsmctl_killed_at_each_step_of_a_renewal_leaves_a_working_identity() {
    use std::os::unix::process::ExitStatusExt as _;
    for step in hsm_issued::STEPS {
        let e = env();
        let mqtt = e.emulator.mqtt_endpoint();
        let mut args = vec!["provision", "--issue-certificate"];
        args.extend(e.dps_args(&mqtt, "mqtt"));
        e.ok(&args);
        let o = e.renew_hub(None);
        assert!(o.status.success(), "{}", text(&o));
        // Generation 2 current, 1 retired: the next renewal confirms 2 (deleting 1), makes 3
        // and passes every step.
        let o = e.renew_hub(Some(step));
        assert_eq!(o.status.signal(), Some(6), "{step}: hsmctl aborted there: {}", text(&o));
        let status = e.status();
        let generation: u32 = line(&status, "generation:").parse().unwrap();
        assert!((2..=3).contains(&generation), "{step}: {status}");
        // The identity still opens and signs through the library's registry.
        let config = hsm_core::config::Config::from_file(&e.config).unwrap();
        let id = hsm::open_x509(&config).unwrap();
        let key = id.signing_key().unwrap();
        let leaf = &id.certificate_chain().unwrap()[0];
        assert_eq!(
            key.public_key_spki().unwrap(),
            hsm_core::pem::public_key_spki(leaf).unwrap()
        );
        key.sign(hsm_core::SignatureScheme::EcdsaP384Sha384, b"still works")
            .unwrap();
        // The next run completes.
        let o = e.renew_hub(None);
        assert!(o.status.success(), "{step}: {}", text(&o));
        let status = e.status();
        assert!(!status.contains("pending:"), "{step}: {status}");
        e.ok(&["certificate", "confirm", "--config", e.config()]);
        let mut keys: Vec<String> = std::fs::read_dir(e.store().join("issued"))
            .unwrap()
            .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".key.pem"))
            .collect();
        keys.sort();
        assert_eq!(keys.len(), 1, "{step}: one key left: {keys:?}");
    }
}
