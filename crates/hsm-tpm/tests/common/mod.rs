//! The swtpm fixture of `hsm_tpm::testing`, panicking on failure as tests want.
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

    pub fn restart(&mut self) {
        self.0.restart().unwrap_or_else(|e| panic!("{e}"))
    }
}
