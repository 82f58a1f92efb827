//! PKCS#11 modules: loaded and `C_Initialize`d once per process, shared by every user.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use hsm_core::{Error, Result};

use crate::uri::Pkcs11Uri;

/// The module used when neither the URI nor the configuration names one (Debian's SoftHSM2).
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Directories searched for a `module-name` (p11-kit and distribution conventions).
const MODULE_DIRS: [&str; 6] = [
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/local/lib/pkcs11",
    "/usr/lib/softhsm",
];

/// A loaded, initialized PKCS#11 module.
pub struct Module {
    path: PathBuf,
    ctx: Pkcs11,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

impl Module {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cryptoki context (initialized).
    pub fn context(&self) -> &Pkcs11 {
        &self.ctx
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Which module file a URI means: its `module-path`, its `module-name` looked up in the usual
/// directories, the given default, or [`DEFAULT_MODULE`].
pub fn resolve_module_path(uri: &Pkcs11Uri, default: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = &uri.module_path {
        return Ok(p.clone());
    }
    if let Some(name) = &uri.module_name {
        let candidates = [format!("{name}.so"), format!("lib{name}.so"), name.clone()];
        for dir in MODULE_DIRS {
            for c in &candidates {
                let p = Path::new(dir).join(c);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        return Err(Error::parse(
            "PKCS#11 URI attribute `module-name`",
            format!(
                "no module `{name}` found in {}; give module-path instead",
                MODULE_DIRS.join(", ")
            ),
        ));
    }
    Ok(default.map_or_else(|| PathBuf::from(DEFAULT_MODULE), Path::to_path_buf))
}

/// Load and initialize the module at `path`, or return the one already loaded.
pub fn module(path: &Path) -> Result<Arc<Module>> {
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::io("open PKCS#11 module", path, e))?;
    let mut map = registry()
        .lock()
        .map_err(|_| Error::Internal("PKCS#11 module registry lock poisoned".into()))?;
    if let Some(m) = map.get(&canonical) {
        return Ok(m.clone());
    }
    let ctx = Pkcs11::new(&canonical).map_err(|e| crate::error::device(format!("load {}", path.display()), e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Another component of this process (a C library) initialized it: share it.
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(crate::error::device(format!("C_Initialize {}", path.display()), e)),
    }
    let m = Arc::new(Module {
        path: canonical.clone(),
        ctx,
    });
    map.insert(canonical, m.clone());
    Ok(m)
}
