//! PKCS#11 modules: loaded and `C_Initialize`d once per process, shared by every user.
//!
//! Some modules (SoftHSM2 among them) learn which tokens exist only in `C_Initialize`: a token
//! that is removed and comes back, or one created after the process started, stays invisible
//! until the module is initialized again. [`Module::reinitialize`] does that (`C_Finalize`, then
//! `C_Initialize`) when a token cannot be found, but only for a module this backend initialized
//! itself. Every use of a session holds the module's gate for reading ([`Module::enter`]); the
//! re-initialization holds it for writing and bumps the module generation, so no operation is
//! in flight while it runs and every session opened before it is known to be void.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

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
    /// The process's `C_Initialize` was ours (not another component's): only then may the
    /// backend finalize and re-initialize the module.
    owned: bool,
    /// The module generation, bumped by each re-initialization.
    gate: RwLock<u64>,
    /// Serializes `C_Login` across every user of the module (see [`Module::login_lock`]).
    login: Mutex<()>,
    /// When the module was last re-initialized, and the least time between two.
    rescan: Mutex<Rescan>,
}

/// The least time between two re-initializations of a module, by default: a token that stays
/// away costs one `C_Finalize`/`C_Initialize` a second at most, however often it is asked for
/// (each one makes every other user of the module open sessions and log in again).
pub(crate) const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(1);

struct Rescan {
    last: Option<Instant>,
    interval: Duration,
}

impl Rescan {
    fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= self.interval)
    }
}

/// Proof that no re-initialization runs while it is held; derefs to the module generation.
pub(crate) type Entered<'a> = RwLockReadGuard<'a, u64>;

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("path", &self.path).finish()
    }
}

impl Module {
    /// The module library's path, as it was loaded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cryptoki context (initialized). Sessions opened on it directly are not protected
    /// from a re-initialization: hold [`Module::enter`] while using them.
    pub fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// Hold off re-initialization while sessions of this module are used. Never call it
    /// twice on one thread (a waiting re-initialization would block the second call).
    pub fn enter(&self) -> Result<Entered<'_>> {
        self.gate
            .read()
            .map_err(|_| Error::Internal("PKCS#11 module gate poisoned".into()))
    }

    /// [`Module::enter`] if that needs no waiting (`None` while a re-initialization or an
    /// exclusive user holds the module, or is waiting for it). For drops, which may run on a
    /// thread that already holds the gate.
    pub fn try_enter(&self) -> Option<Entered<'_>> {
        self.gate.try_read().ok()
    }

    /// Held around "is the token logged in? if not, `C_Login`". Login state belongs to the
    /// application, not to one `Token` object, and a `C_Login` on a token that is already
    /// logged in is not harmless everywhere: SoftHSM2 then fails key generation running on
    /// other threads at that moment with `CKR_GENERAL_ERROR`.
    pub(crate) fn login_lock(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.login
            .lock()
            .map_err(|_| Error::Internal("PKCS#11 module login lock poisoned".into()))
    }

    /// The module to this thread alone (no other operation runs meanwhile; sessions stay
    /// valid). For object creation: SoftHSM2 fails a key generation or object import that runs
    /// while another thread searches the same token's objects (`CKR_GENERAL_ERROR`). Never
    /// call it while holding [`Module::enter`].
    pub(crate) fn exclusive(&self) -> Result<RwLockWriteGuard<'_, u64>> {
        self.gate
            .write()
            .map_err(|_| Error::Internal("PKCS#11 module gate poisoned".into()))
    }

    /// Whether `Module::reinitialize` may run (this backend initialized the module).
    pub fn can_reinitialize(&self) -> bool {
        self.owned
    }

    /// Set the least time between two re-initializations (`DEFAULT_RESCAN_INTERVAL`);
    /// `Duration::ZERO` lets every failed lookup re-initialize.
    pub fn set_rescan_interval(&self, interval: Duration) -> Result<()> {
        self.rescan_state()?.interval = interval;
        Ok(())
    }

    fn rescan_state(&self) -> Result<std::sync::MutexGuard<'_, Rescan>> {
        self.rescan
            .lock()
            .map_err(|_| Error::Internal("PKCS#11 module rescan state poisoned".into()))
    }

    /// `C_Finalize` and `C_Initialize` again so the module looks for its tokens anew. `seen` is
    /// the generation the caller entered with: when another thread re-initialized the module
    /// since, this does nothing more. Within the rescan interval of the last
    /// re-initialization it does nothing either (returns `false`). Every session of the
    /// module is void afterwards (callers forget them; see `Token`). Must be called without
    /// holding [`Module::enter`].
    pub(crate) fn reinitialize(&self, seen: u64) -> Result<bool> {
        if !self.owned {
            return Err(Error::Internal(format!(
                "PKCS#11 module {} was initialized by another component of this process; not re-initializing it",
                self.path.display()
            )));
        }
        // Cheap check first: waiting for the gate stalls every other user of the module.
        if !self.rescan_state()?.due() {
            return Ok(false);
        }
        let mut generation = self
            .gate
            .write()
            .map_err(|_| Error::Internal("PKCS#11 module gate poisoned".into()))?;
        if *generation != seen {
            return Ok(true);
        }
        {
            let mut rescan = self.rescan_state()?;
            if !rescan.due() {
                return Ok(false);
            }
            rescan.last = Some(Instant::now());
        }
        tracing::warn!(module = %self.path.display(), "PKCS#11: re-initializing the module to look for its tokens again");
        match self.ctx.clone().finalize() {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) => {}
            Err(e) => return Err(crate::error::device(format!("C_Finalize {}", self.path.display()), e)),
        }
        // Every session is gone from here on, whether or not C_Initialize succeeds.
        *generation += 1;
        match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(true),
            Err(e) => Err(crate::error::device(
                format!("C_Initialize {} (re-initializing)", self.path.display()),
                e,
            )),
        }
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Which module file a URI means: its `module-path`, its `module-name` looked up in the usual
/// directories, the given default, or [`DEFAULT_MODULE`].
pub(crate) fn resolve_module_path(uri: &Pkcs11Uri, default: Option<&Path>) -> Result<PathBuf> {
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
    let owned = match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => true,
        // Another component of this process (a C library) initialized it: share it.
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => false,
        Err(e) => return Err(crate::error::device(format!("C_Initialize {}", path.display()), e)),
    };
    let m = Arc::new(Module {
        path: canonical.clone(),
        ctx,
        owned,
        gate: RwLock::new(0),
        login: Mutex::new(()),
        rescan: Mutex::new(Rescan {
            last: None,
            interval: DEFAULT_RESCAN_INTERVAL,
        }),
    });
    map.insert(canonical, m.clone());
    Ok(m)
}
