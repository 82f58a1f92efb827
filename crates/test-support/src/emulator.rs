//! The DPS emulator for tests: in-process ([`start`], [`config`]) with the test scope and hub, or the
//! real `dps-emulator` binary as a child process ([`Process`]).

use std::ffi::OsStr;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use dps_emulator::{Emulator, EmulatorConfig, Enrollment};

use crate::wait;

/// The id scope of the test emulators.
pub const SCOPE: &str = "0ne00000A0A";
/// The hub the test emulators assign.
pub const HUB: &str = "hub.example.test";
/// From shared/test-vectors.md: a group key and the key it derives for the registration id `device-0001`.
pub const GROUP_KEY: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
/// [`GROUP_KEY`] derived for `device-0001` (base64).
pub const GROUP_DEVICE_KEY: &str = "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=";
/// An individual enrollment's key (32 bytes).
pub const DEVICE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The emulator's configuration: the test scope and hub, and `enrollments`.
pub fn config(enrollments: Vec<Enrollment>) -> EmulatorConfig {
    EmulatorConfig {
        id_scope: SCOPE.to_string(),
        assigned_hub: HUB.to_string(),
        enrollments,
    }
}

/// An in-process emulator with [`config`]`(enrollments)` on a free port.
pub fn start(enrollments: Vec<Enrollment>) -> Emulator {
    Emulator::start(config(enrollments)).expect("the emulator starts")
}

/// Seconds since the epoch (SAS expiries).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// A DPS SAS token for `registration_id` in [`SCOPE`], signed with the base64 key `key_b64`.
pub fn sas(registration_id: &str, key_b64: &str, expiry: u64) -> String {
    let key = hsm_core::sas::decode_key("test key", key_b64).expect("a base64 key");
    hsm_core::sas::Audience::Dps {
        id_scope: SCOPE.to_string(),
        registration_id: registration_id.to_string(),
    }
    .sign_with_key(&key, expiry)
}

/// The first lines of a `dps-emulator` TOML configuration: the test scope and hub. Tests append their
/// enrollments and policies.
pub fn toml_config() -> String {
    format!("id_scope = \"{SCOPE}\"\nassigned_hub = \"{HUB}\"\n")
}

/// The `dps-emulator` binary running as a child process with a configuration written by the test;
/// killed on drop.
pub struct Process {
    /// The child process.
    pub child: Child,
    /// `127.0.0.1:port` of the HTTPS listener, from the binary's first line.
    pub endpoint: String,
    /// The server CA it wrote (`--server-ca-out`).
    pub server_ca_pem: String,
    /// The rest of its standard output, after the first line.
    pub stdout: Option<BufReader<ChildStdout>>,
    stderr: PathBuf,
}

impl Process {
    /// Start `binary` (the test's `env!("CARGO_BIN_EXE_dps-emulator")`) with the configuration text
    /// `toml` written to `dir/dps.toml`, `--server-ca-out dir/server-ca.pem` and `args`; wait (with a
    /// deadline) for its "listening on" line. Its standard error goes to `dir/stderr.log` (a pipe nobody
    /// reads could fill and stall it; [`Process::stop`] returns it).
    pub fn start(binary: impl AsRef<OsStr>, dir: &Path, toml: &str, args: &[&OsStr]) -> Process {
        let config = dir.join("dps.toml");
        std::fs::write(&config, toml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let ca_out = dir.join("server-ca.pem");
        let stderr_path = dir.join("stderr.log");
        let stderr =
            std::fs::File::create(&stderr_path).unwrap_or_else(|e| panic!("create {}: {e}", stderr_path.display()));
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("--server-ca-out")
            .arg(&ca_out)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the dps-emulator binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (line, rest) = wait::line(stdout, wait::DEADLINE, |_| true);
        let Some(endpoint) = line.strip_prefix("listening on ").and_then(|l| l.strip_suffix('\n')) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected first line {line:?}");
        };
        assert!(endpoint.starts_with("127.0.0.1:"), "{line}");
        let server_ca_pem = read(&ca_out);
        Process {
            endpoint: endpoint.to_string(),
            child,
            server_ca_pem,
            stdout: Some(rest),
            stderr: stderr_path,
        }
    }

    /// Send `signal` (`TERM`, `INT`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        signal_process(self.child.id(), signal);
    }

    /// Send `signal` and wait (with a deadline) for the exit: its status, the rest of standard
    /// output and all of standard error.
    pub fn stop(&mut self, signal: &str) -> (ExitStatus, String, String) {
        self.signal(signal);
        let status = wait::exit(&mut self.child, wait::DEADLINE);
        let mut out = String::new();
        if let Some(mut rest) = self.stdout.take() {
            let _ = rest.read_to_string(&mut out);
        }
        (status, out, read(&self.stderr))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kill -{signal} {pid}`.
pub fn signal_process(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A file the test's child wrote.
pub fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
