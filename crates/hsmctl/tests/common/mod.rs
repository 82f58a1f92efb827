//! The hsmctl integration tests' scope and hub, their P-256 CAs (from `test_support`), and `hsmctl provision`
//! against a DPS (the emulator or a test's own server).
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::{Command, Output};

use dps_emulator::Emulator;

pub use test_support::emulator::{HUB, SCOPE};
pub use test_support::pki::Ca;

/// A self-signed P-256 root CA.
pub fn ca(cn: &str) -> Ca {
    Ca::root(cn)
}

/// `hsmctl provision` over `transport` (`None`: no `--transport`, hsmctl's default, HTTPS) to `endpoint`,
/// trusting the CA file `server_ca`, with the device `config`; the caller adds arguments and runs it.
pub fn provision_command(transport: Option<&str>, endpoint: &str, server_ca: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
    command.arg("provision");
    if let Some(transport) = transport {
        command.args(["--transport", transport]);
    }
    command
        .args(["--id-scope", SCOPE, "--global-endpoint", endpoint, "--trusted-ca"])
        .arg(server_ca)
        .arg("--config")
        .arg(config);
    command
}

/// The emulator's listener for hsmctl's `--transport` value (`None`: its default, HTTPS).
pub fn listener(emulator: &Emulator, transport: Option<&str>) -> String {
    match transport {
        None | Some("https" | "mqtt-ws" | "amqp-ws") => emulator.global_endpoint(),
        Some("mqtt") => emulator.mqtt_endpoint(),
        Some("amqp") => emulator.amqp_endpoint(),
        Some(other) => panic!("the tests know no emulator listener for --transport {other}"),
    }
}

/// `hsmctl provision` over `transport` against the emulator's listener for it, trusting the emulator's CA
/// (written in `server_ca`), with the device `config` and `extra` arguments.
pub fn provision(
    emulator: &Emulator,
    server_ca: &Path,
    transport: Option<&str>,
    config: &Path,
    extra: &[&str],
) -> Output {
    provision_command(transport, &listener(emulator, transport), server_ca, config)
        .args(extra)
        .output()
        .unwrap()
}

/// The standard output of a command that succeeded (else the test fails, showing both outputs).
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
