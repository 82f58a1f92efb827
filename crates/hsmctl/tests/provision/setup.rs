//! What every provisioning test uses: an emulator with an X.509 group, a symmetric individual enrollment
//! and a symmetric group; device configurations; `hsmctl provision` over every transport; outcome checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dps_emulator::{Emulator, Enrollment};

use crate::common::{Ca, ca, provision, provision_command};
pub use crate::common::{ok, x509_device};

pub const GROUP_KEY: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
pub const DEVICE_KEY: &str = "c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==";

pub fn symm_device(dir: &Path, name: &str, body: &str) -> PathBuf {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, format!("[symmetric_key]\nbackend = \"file\"\n{body}\n")).unwrap();
    cfg
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub emulator: Emulator,
    pub server_ca: PathBuf,
    pub root: Ca,
}

pub fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("test group root");
    let emulator = Emulator::start(test_support::emulator::config(vec![
        Enrollment::X509Group {
            name: "x509-group".into(),
            ca: hsm_core::pem::parse_certificates("root", root.pem().as_bytes()).unwrap(),
        },
        Enrollment::SymmetricIndividual {
            registration_id: "device-sym".into(),
            primary_key: DEVICE_KEY.into(),
            secondary_key: None,
        },
        Enrollment::SymmetricGroup {
            name: "symm-group".into(),
            primary_key: GROUP_KEY.into(),
            secondary_key: None,
        },
    ]))
    .unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, emulator.server_ca_pem()).unwrap();
    Env {
        dir,
        emulator,
        server_ca,
        root,
    }
}

impl Env {
    /// `hsmctl provision` (over HTTPS, hsmctl's default) against the emulator.
    pub fn provision(&self, config: &Path, extra: &[&str]) -> Output {
        provision(&self.emulator, &self.server_ca, None, config, extra)
    }

    /// The same as a command, for the caller to add to and run.
    pub fn provision_command(&self, config: &Path) -> Command {
        provision_command(None, &self.emulator.global_endpoint(), &self.server_ca, config)
    }

    /// `hsmctl provision --transport mqtt` against the emulator's MQTT listener.
    pub fn provision_mqtt(&self, config: &Path, extra: &[&str]) -> Output {
        provision(&self.emulator, &self.server_ca, Some("mqtt"), config, extra)
    }

    /// `hsmctl provision --transport transport` against the emulator's listener for it.
    pub fn provision_over(&self, transport: &str, config: &Path, extra: &[&str]) -> Output {
        provision(&self.emulator, &self.server_ca, Some(transport), config, extra)
    }
}

pub fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("401"), "no 401 in: {stderr}");
    assert!(stderr.contains(&needle.to_lowercase()), "no {needle:?} in: {stderr}");
}

pub fn hsmctl(args: &[&str]) -> String {
    ok(&Command::new(env!("CARGO_BIN_EXE_hsmctl")).args(args).output().unwrap())
}
