//! The swtpm fixture of `hsm_tpm::testing`, panicking on failure as tests want, and an HTTP
//! helper for the emulator tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub struct Swtpm(hsm_tpm::testing::Swtpm);

impl Swtpm {
    pub fn start() -> Self {
        Swtpm(hsm_tpm::testing::Swtpm::start().unwrap_or_else(|e| panic!("swtpm is required for these tests: {e}")))
    }

    pub fn tcti(&self) -> String {
        self.0.tcti()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.0.state_dir().to_path_buf()
    }

    pub fn stop(&mut self) {
        self.0.stop()
    }

    /// Send `signal` (`STOP`, `CONT`) to the swtpm process.
    pub fn signal(&self, signal: &str) {
        let pid = self.0.pid().expect("swtpm is running");
        let st = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{signal} {pid}");
    }

    pub fn restart(&mut self) {
        self.0.restart().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Send and return (status, JSON body) whatever the status.
pub fn send(req: ureq::Request, body: Option<&serde_json::Value>) -> (u16, serde_json::Value) {
    let r = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport: {e}"),
    };
    (resp.status(), resp.into_json().unwrap_or(serde_json::Value::Null))
}
