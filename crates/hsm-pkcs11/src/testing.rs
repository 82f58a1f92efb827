//! PKCS#11 modules under test, with their tokens in temp dirs (feature `testing`): SoftHSM2
//! ([`SoftHsm`]) and tpm2-pkcs11 on its own swtpm ([`Tpm2Pkcs11`]), both behind [`TestModule`]
//! so one suite of assertions runs on each.
//!
//! [`SoftHsm::create`] makes a temp dir with a `softhsm2.conf` whose token directory is inside
//! it, and [`SoftHsm::init_token`] runs `softhsm2-util --init-token --free`. SoftHSM reads
//! `SOFTHSM2_CONF` when the module is initialized, once per process: the caller sets it (for
//! this process before the first PKCS#11 call, or on child processes) to [`SoftHsm::conf`].
//! A missing `softhsm2` package is an error, never a skip. SoftHSM lists only the tokens that
//! exist when a process initializes it; the backend re-initializes the module when a token is
//! not found, but creating every token a test process needs first keeps tests simple.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use hsm_core::{Error, Result};

use crate::module::DEFAULT_MODULE;
use crate::uri::Pkcs11Uri;

/// Which module a [`TestModule`] is (for the few assertions that differ between tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// SoftHSM2.
    SoftHsm2,
    /// tpm2-pkcs11 over a TPM (swtpm in tests).
    Tpm2Pkcs11,
}

/// A PKCS#11 module under test: its library, a temp dir, the environment the module reads at
/// `C_Initialize` (set it in this process before the first PKCS#11 call, and on child
/// processes), and a way to make an initialized token with a user PIN.
pub trait TestModule: Send + Sync {
    /// Which module this is.
    fn kind(&self) -> ModuleKind;
    /// The module library.
    fn module(&self) -> &Path;
    /// The temp dir (for PIN files and the like).
    fn path(&self) -> &Path;
    /// Environment variables the module reads when it is initialized.
    fn environment(&self) -> Vec<(&'static str, OsString)>;
    /// Create and initialize a token with `label`, SO PIN and user PIN.
    fn init_token(&self, label: &str, so_pin: &str, pin: &str) -> Result<()>;
    /// Write a PIN file in the temp dir and return its path.
    fn pin_file(&self, name: &str, pin: &str) -> Result<PathBuf> {
        let p = self.path().join(name);
        std::fs::write(&p, pin).map_err(|e| Error::io("write PIN file", &p, e))?;
        Ok(p)
    }
}

/// A SoftHSM2 configuration and token directory in a temp dir (removed on drop).
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// A fresh SoftHSM2 configuration and token directory; an error when SoftHSM2 is not installed.
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
        TestModule::pin_file(self, name, pin)
    }

    /// Run `softhsm2-util` with this configuration.
    pub fn util(&self, args: &[&str]) -> Result<()> {
        let mut command = Command::new("softhsm2-util");
        command.args(args).env("SOFTHSM2_CONF", &self.conf);
        run_tool(
            command,
            "softhsm2-util",
            args,
            "run softhsm2-util (install the `softhsm2` package)",
        )
    }
}

impl TestModule for SoftHsm {
    fn kind(&self) -> ModuleKind {
        ModuleKind::SoftHsm2
    }

    fn module(&self) -> &Path {
        SoftHsm::module(self)
    }

    fn path(&self) -> &Path {
        SoftHsm::path(self)
    }

    fn environment(&self) -> Vec<(&'static str, OsString)> {
        vec![("SOFTHSM2_CONF", self.conf.clone().into_os_string())]
    }

    fn init_token(&self, label: &str, so_pin: &str, pin: &str) -> Result<()> {
        SoftHsm::init_token(self, label, so_pin, pin)
    }
}

/// tpm2-pkcs11 (Debian `libtpm2-pkcs11-1`) on a swtpm of its own behind the tpm2-abrmd
/// resource manager, with its store (the SQLite database of token metadata and wrapped keys)
/// in a temp dir. The module reads `TPM2_PKCS11_STORE` and `TPM2_PKCS11_TCTI`, the tabrmd TCTI
/// `DBUS_SESSION_BUS_ADDRESS` ([`TestModule::environment`]). The store, its primary key and
/// the tokens are made with `tpm2_ptool` (Debian `libtpm2-pkcs11-tools`, which runs
/// `tpm2-tools`), so nothing in this process touches the module before the tests do:
/// tpm2-pkcs11 reads its store when it is initialized and does not see objects added to it
/// later by another process. Everything stops when this is dropped.
///
/// Why a resource manager: tpm2-pkcs11 keeps its primary key, the token's unsealed wrapping
/// key and every key it used loaded in the TPM. On a bare swtpm (3 transient object slots, like
/// many TPM chips) the second key generation of a process already fails with
/// `CKR_GENERAL_ERROR` (TPM: "out of memory for object contexts"). Devices run it over the
/// kernel's `/dev/tpmrm0` or tpm2-abrmd, which swap objects out.
pub struct Tpm2Pkcs11 {
    tabrmd: hsm_tpm::testing::Tabrmd,
    dir: tempfile::TempDir,
    module: PathBuf,
}

impl Tpm2Pkcs11 {
    /// A tpm2-pkcs11 store in a temp dir over a fresh swtpm and tpm2-abrmd; an error when the module or the
    /// TPM tools are missing.
    pub fn create() -> Result<Self> {
        let module = crate::module::resolve_module_path(
            &Pkcs11Uri {
                module_name: Some("tpm2_pkcs11".into()),
                ..Pkcs11Uri::default()
            },
            None,
        )
        .map_err(|e| Error::NotConfigured(format!("tpm2-pkcs11: {e} (install the `libtpm2-pkcs11-1` package)")))?;
        let tabrmd = hsm_tpm::testing::Tabrmd::start()?;
        let dir = tempfile::Builder::new()
            .prefix("tpm2-pkcs11-")
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        let t = Tpm2Pkcs11 { tabrmd, dir, module };
        let store = t.store();
        std::fs::create_dir(&store).map_err(|e| Error::io("create tpm2-pkcs11 store", &store, e))?;
        t.ptool(&["init"])?;
        Ok(t)
    }

    /// The store directory (`TPM2_PKCS11_STORE`).
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The resource manager and swtpm under the module.
    pub fn tabrmd(&mut self) -> &mut hsm_tpm::testing::Tabrmd {
        &mut self.tabrmd
    }

    /// Import an HMAC-SHA256 key into `token` with `tpm2_ptool import` (tpm2-pkcs11 refuses
    /// `C_CreateObject` for secret keys and has no `CKM_GENERIC_SECRET_KEY_GEN`). Call it
    /// before this process first uses the module.
    pub fn import_hmac_key(&self, token: &str, label: &str, key: &[u8], pin: &str) -> Result<()> {
        let file = self.dir.path().join(format!("{label}.hmac"));
        std::fs::write(&file, key).map_err(|e| Error::io("write HMAC key file", &file, e))?;
        let path = file.display().to_string();
        let r = self.ptool(&[
            "import",
            "--label",
            token,
            "--key-label",
            label,
            "--userpin",
            pin,
            "--privkey",
            &path,
            "--algorithm",
            "hmac:sha256",
        ]);
        let _ = std::fs::remove_file(&file);
        r
    }

    /// Run `tpm2_ptool COMMAND ... --path STORE` against this instance.
    pub(crate) fn ptool(&self, args: &[&str]) -> Result<()> {
        let mut command = Command::new("tpm2_ptool");
        command
            .args(args)
            .arg("--path")
            .arg(self.store())
            .env("TPM2TOOLS_TCTI", self.tabrmd.tcti())
            .env("DBUS_SESSION_BUS_ADDRESS", self.tabrmd.bus_address());
        run_tool(
            command,
            "tpm2_ptool",
            args,
            "run tpm2_ptool (install `libtpm2-pkcs11-tools`)",
        )
    }
}

impl TestModule for Tpm2Pkcs11 {
    fn kind(&self) -> ModuleKind {
        ModuleKind::Tpm2Pkcs11
    }

    fn module(&self) -> &Path {
        &self.module
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn environment(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("TPM2_PKCS11_STORE", self.store().into_os_string()),
            ("TPM2_PKCS11_TCTI", self.tabrmd.tcti().into()),
            ("DBUS_SESSION_BUS_ADDRESS", self.tabrmd.bus_address().into()),
        ]
    }

    /// `tpm2_ptool addtoken` under the store's primary key (id 1, made by `create`).
    fn init_token(&self, label: &str, so_pin: &str, pin: &str) -> Result<()> {
        let (so, user, label) = (
            format!("--sopin={so_pin}"),
            format!("--userpin={pin}"),
            format!("--label={label}"),
        );
        self.ptool(&["addtoken", "--pid=1", &label, &so, &user])
    }
}

/// Runs `command`, the tool `tool` given `args`; `install` says what to install when it cannot start. A
/// failure is an error with the tool's output.
fn run_tool(mut command: Command, tool: &'static str, args: &[&str], install: &'static str) -> Result<()> {
    let out = command.output().map_err(|e| Error::io(install, tool, e))?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "{tool} {} failed: {}{}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}
