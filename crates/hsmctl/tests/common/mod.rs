//! The hsmctl integration tests' scope and hub, their P-256 CAs (from `test_support`), and `hsmctl provision`
//! against a DPS (the emulator or a test's own server).
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dps_emulator::{Emulator, ServerOptions, ServicePolicy};

pub use test_support::emulator::{HUB, SCOPE};
pub use test_support::pki::Ca;

/// The key of the service API's `owner` policy in the tests' emulators.
pub const OWNER_KEY: &str = "b3duZXIta2V5LWZvci10aGUtaHNtY3RsLXRlc3RzLTAwMA==";

/// An emulator with no enrollment whose service API takes the `owner` policy (`OWNER_KEY`), with no
/// retry-after: its CA written to `dir/server-ca.pem`, its connection string, also written to `dir/cs`.
pub struct ServiceApi {
    pub emulator: Emulator,
    pub server_ca: PathBuf,
    pub connection_string: zeroize::Zeroizing<String>,
    pub connection_string_file: PathBuf,
}

pub fn service_api(dir: &Path) -> ServiceApi {
    let emulator = Emulator::start_with(
        test_support::emulator::config(vec![]),
        0,
        ServerOptions {
            retry_after: std::time::Duration::ZERO,
            service_policies: vec![ServicePolicy::owner("owner", OWNER_KEY)],
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let server_ca = dir.join("server-ca.pem");
    std::fs::write(&server_ca, emulator.server_ca_pem()).unwrap();
    let connection_string = emulator.service_connection_string(None).unwrap();
    let connection_string_file = dir.join("cs");
    std::fs::write(&connection_string_file, connection_string.as_bytes()).unwrap();
    ServiceApi {
        emulator,
        server_ca,
        connection_string,
        connection_string_file,
    }
}

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

/// `hsmctl certs --csr`: a leaf for the CSR file `csr`, issued by `root` (written into `dir` for the
/// command); the directory the leaf is written to, `dir/issued`.
pub fn certify_csr(dir: &Path, root: &Ca, csr: &Path) -> PathBuf {
    let root_pem = dir.join("root.pem");
    let root_key = dir.join("root.key.pem");
    std::fs::write(&root_pem, root.pem()).unwrap();
    std::fs::write(&root_key, root.key_pem()).unwrap();
    let out = dir.join("issued");
    let certs = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .args(["certs", "--out-dir"])
        .arg(&out)
        .arg("--ca-cert")
        .arg(&root_pem)
        .arg("--ca-key")
        .arg(&root_key)
        .arg("--csr")
        .arg(csr)
        .output()
        .unwrap();
    ok(&certs);
    out
}

/// A device of `ca` named `cn` in `dir`: its chain (leaf and issuing CA) and key as `NAME-chain.pem` and
/// `NAME-key.pem`, its configuration `NAME.toml` (file backend); the configuration's path.
pub fn x509_device(dir: &Path, name: &str, ca: &Ca, cn: &str) -> PathBuf {
    let key_id = ca.leaf(cn);
    let (leaf, key) = (key_id.cert_pem(), key_id.key_pair());
    std::fs::write(dir.join(format!("{name}-chain.pem")), format!("{leaf}{}", ca.pem())).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!("[x509]\nbackend = \"file\"\ncertificate = \"{name}-chain.pem\"\nprivate_key = \"{name}-key.pem\"\n"),
    )
    .unwrap();
    cfg
}
