//! The swtpm of `hsm_tpm::testing`, panicking on failure as tests want (a missing swtpm fails the
//! test, never skips it).

use std::path::PathBuf;

pub use hsm_tpm::testing::Tabrmd;

/// A running swtpm (see [`Swtpm::start`]).
pub struct Swtpm(pub hsm_tpm::testing::Swtpm);

impl Swtpm {
    /// A fresh swtpm (empty state) on a free port pair, stopped on drop.
    pub fn start() -> Self {
        Swtpm(hsm_tpm::testing::Swtpm::start().unwrap_or_else(|e| panic!("swtpm is required for these tests: {e}")))
    }

    /// The TCTI string that reaches it (`swtpm:host=...,port=N`).
    pub fn tcti(&self) -> String {
        self.0.tcti()
    }

    /// The directory of its state (NV, persistent keys).
    pub fn state_dir(&self) -> PathBuf {
        self.0.state_dir().to_path_buf()
    }

    /// The TPM command port (from the TCTI `swtpm:host=...,port=N`).
    pub fn port(&self) -> u16 {
        let tcti = self.tcti();
        tcti.rsplit("port=")
            .next()
            .and_then(|p| p.split(',').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the TCTI {tcti}"))
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    /// Stop the process (shut down cleanly, killed after 5 s); the state directory stays.
    pub fn stop(&mut self) {
        self.0.stop()
    }

    /// Send `signal` (`STOP`, `CONT`) to the swtpm process.
    pub fn signal(&self, signal: &str) {
        crate::emulator::signal_process(self.0.pid().expect("swtpm is running"), signal);
    }

    /// Stop and start again on the same ports with the same state.
    pub fn restart(&mut self) {
        self.0.restart().unwrap_or_else(|e| panic!("restart swtpm: {e}"))
    }
}
