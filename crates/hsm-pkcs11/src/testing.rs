//! A SoftHSM2 token directory for tests and benchmarks (feature `testing`).
//!
//! [`SoftHsm::create`] makes a temp dir with a `softhsm2.conf` whose token directory is inside
//! it, and [`SoftHsm::init_token`] runs `softhsm2-util --init-token --free`. SoftHSM reads
//! `SOFTHSM2_CONF` when the module is initialized, once per process: the caller sets it (for
//! this process before the first PKCS#11 call, or on child processes) to [`SoftHsm::conf`].
//! A missing `softhsm2` package is an error, never a skip. SoftHSM lists only the tokens that
//! exist when a process initializes it; the backend re-initializes the module when a token is
//! not found, but creating every token a test process needs first keeps tests simple.

use std::path::{Path, PathBuf};
use std::process::Command;

use hsm_core::{Error, Result};

use crate::module::DEFAULT_MODULE;

/// A SoftHSM2 configuration and token directory in a temp dir (removed on drop).
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    pub fn create() -> Result<Self> {
        if !Path::new(DEFAULT_MODULE).is_file() {
            return Err(Error::NotConfigured(format!(
                "SoftHSM2 module {DEFAULT_MODULE} is missing: install the `softhsm2` package"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("softhsm-")
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).map_err(|e| Error::io("create token dir", &tokens, e))?;
        let conf = dir.path().join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        std::fs::write(&conf, text).map_err(|e| Error::io("write softhsm2.conf", &conf, e))?;
        Ok(SoftHsm { dir, conf })
    }

    /// The configuration file (the value for `SOFTHSM2_CONF`).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The token directory.
    pub fn token_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// The module path (Debian's SoftHSM2).
    pub fn module(&self) -> &'static Path {
        Path::new(DEFAULT_MODULE)
    }

    /// The temp dir (for PIN files and the like).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Create and initialize a token with `label`, SO PIN and user PIN.
    pub fn init_token(&self, label: &str, so_pin: &str, pin: &str) -> Result<()> {
        self.util(&[
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            pin,
        ])
    }

    /// Delete every token (the directory contents), as if the device had been removed.
    pub fn remove_tokens(&self) -> Result<()> {
        let dir = self.token_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list token dir", &dir, e))?;
        for entry in entries {
            let p = entry.map_err(|e| Error::io("list token dir", &dir, e))?.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| Error::io("remove token", &p, e))?;
        }
        Ok(())
    }

    /// Write a PIN file in the temp dir and return its path.
    pub fn pin_file(&self, name: &str, pin: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(name);
        std::fs::write(&p, pin).map_err(|e| Error::io("write PIN file", &p, e))?;
        Ok(p)
    }

    /// Run `softhsm2-util` with this configuration.
    pub fn util(&self, args: &[&str]) -> Result<()> {
        let out = Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .map_err(|e| Error::io("run softhsm2-util (install the `softhsm2` package)", "softhsm2-util", e))?;
        if !out.status.success() {
            return Err(Error::Internal(format!(
                "softhsm2-util {} failed: {}{}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }
}
