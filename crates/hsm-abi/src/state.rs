//! The library's global configuration.
//!
//! A configuration set by the application ([`set_config`], `hsm_abi_configure_*`) wins; else
//! the file named by `HSM_ABI_CONFIG` is loaded at `init` (or at the first `create` when the
//! caller never called `init`). The last `deinit` forgets a configuration loaded from the
//! environment, so the next `init` reads the file again; a configuration set by the
//! application stays until it is replaced or cleared. A file caught mid-rewrite (empty or
//! incomplete) is not kept: an empty document is an error, and a configuration from the
//! environment that a backend could not open is forgotten, so a later call reads the file again.

use std::sync::{Arc, Mutex, MutexGuard};

use hsm_core::config::{CONFIG_ENV, Config};
use hsm_core::{Error, Result};

struct State {
    configured: Option<Arc<Config>>,
    from_env: Option<Arc<Config>>,
    inits: u64,
}

static STATE: Mutex<State> = Mutex::new(State {
    configured: None,
    from_env: None,
    inits: 0,
});

fn lock() -> MutexGuard<'static, State> {
    // The state stays consistent even if a holder panicked: every update is a single assignment.
    STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn env_is_set() -> bool {
    std::env::var_os(CONFIG_ENV).is_some_and(|v| !v.is_empty())
}

/// Use `config` for every handle created from now on (handles already created keep theirs).
pub(crate) fn set_config(config: Config) {
    lock().configured = Some(Arc::new(config));
}

/// Forget the configuration set by [`set_config`] and any loaded from the environment.
pub(crate) fn clear_config() {
    let mut s = lock();
    s.configured = None;
    s.from_env = None;
}

/// `hsm_client_*_init`: load the configuration from the environment if the application set
/// none. No configuration at all is not an error here (create reports it).
pub(crate) fn init() -> Result<()> {
    let mut s = lock();
    s.inits = s.inits.saturating_add(1);
    if s.configured.is_none() && s.from_env.is_none() && env_is_set() {
        s.from_env = Some(Arc::new(Config::from_env()?));
    }
    Ok(())
}

/// `hsm_client_*_deinit`: any number of times, in any order relative to `init`.
pub(crate) fn deinit() {
    let mut s = lock();
    s.inits = s.inits.saturating_sub(1);
    if s.inits == 0 {
        s.from_env = None;
    }
}

/// Open something from the current configuration; if that fails and the configuration was
/// loaded from the environment, forget it so the next call reads the file again (it may have
/// been caught while being rewritten).
pub(crate) fn open_with<T>(open: impl FnOnce(&Config) -> Result<T>) -> Result<T> {
    crate::install_backends();
    let config = current()?;
    let r = open(&config);
    if r.is_err() {
        let mut s = lock();
        if s.from_env.as_ref().is_some_and(|c| Arc::ptr_eq(c, &config)) {
            s.from_env = None;
        }
    }
    r
}

/// The configuration handles are opened from.
fn current() -> Result<Arc<Config>> {
    let mut s = lock();
    if let Some(c) = s.configured.as_ref().or(s.from_env.as_ref()) {
        return Ok(c.clone());
    }
    if env_is_set() {
        let c = Arc::new(Config::from_env()?);
        s.from_env = Some(c.clone());
        return Ok(c);
    }
    Err(Error::NotConfigured(format!(
        "no configuration: set {CONFIG_ENV} to a configuration file, or call hsm_abi_configure_file / \
         hsm_abi_configure_toml before creating a handle"
    )))
}
