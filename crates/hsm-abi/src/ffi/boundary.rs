//! Support of [`ffi_boundary!`]: fallback values, panic recording and logging set-up.

use std::any::Any;
use std::ffi::{c_int, c_ulong};
use std::sync::Once;

use super::errors::{self, AbiError};

/// The value an export returns when its body panicked.
pub(crate) trait Fallback {
    fn fallback() -> Self;
}

impl Fallback for c_int {
    fn fallback() -> Self {
        errors::HSM_ABI_ERR_PANIC
    }
}

impl<T> Fallback for *mut T {
    fn fallback() -> Self {
        std::ptr::null_mut()
    }
}

impl<T> Fallback for *const T {
    fn fallback() -> Self {
        std::ptr::null()
    }
}

impl Fallback for () {
    fn fallback() -> Self {}
}

impl Fallback for usize {
    fn fallback() -> Self {
        0
    }
}

impl Fallback for c_ulong {
    fn fallback() -> Self {
        0
    }
}

/// The environment variable that turns logging to stderr on (a `tracing` filter: `warn`, `debug`...).
pub(crate) const LOG_ENV: &str = "HSM_ABI_LOG";

static LOGGING: Once = Once::new();

/// Called first by every export: installs the stderr subscriber once if `HSM_ABI_LOG` is set.
pub(crate) fn enter() {
    LOGGING.call_once(|| {
        let Some(filter) = std::env::var_os(LOG_ENV) else {
            return;
        };
        // An application that installed its own global subscriber keeps it.
        let _ = tracing_subscriber::util::SubscriberInitExt::try_init(log_to_stderr(&filter.to_string_lossy()));
    });
}

/// The stderr subscriber for an `HSM_ABI_LOG` value: `target=level` directives and a bare default
/// level (`warn`, `hsm_pkcs11=debug,warn`); anything else reads as `warn`. A `Targets` filter,
/// not an `EnvFilter`: that one's span and field matching brings a regex engine, a tenth of
/// the C library's size (BENCHMARKS.md, "C library size").
fn log_to_stderr(filter: &str) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;

    let targets = filter
        .parse::<Targets>()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::WARN));
    // The formatter lets everything through; `targets` decides.
    tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .finish()
        .with(targets)
}

/// Record a caught panic as this thread's last error.
pub(crate) fn panicked(op: &'static str, payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    errors::record(op, &AbiError::Panic(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics_int() -> c_int {
        ffi_boundary!("panics_int", {
            if std::hint::black_box(true) {
                panic!("deliberate panic in a test");
            }
            0
        })
    }

    fn panics_ptr() -> *mut u8 {
        ffi_boundary!("panics_ptr", {
            let v: Vec<u8> = Vec::new();
            // Index out of bounds: a bug caught at the boundary.
            v.as_ptr()
                .wrapping_add(usize::from(v[std::hint::black_box(3)]))
                .cast_mut()
        })
    }

    /// `HSM_ABI_LOG` values: per-target levels, a default level, and `warn` for nonsense.
    #[test]
    fn log_filter_directives() {
        use tracing::Level;
        // [hsm_pkcs11 debug, hsm_core debug, hsm_core warn]
        let enabled = |filter: &str| {
            tracing::subscriber::with_default(log_to_stderr(filter), || {
                [
                    tracing::enabled!(target: "hsm_pkcs11::session", Level::DEBUG),
                    tracing::enabled!(target: "hsm_core", Level::DEBUG),
                    tracing::enabled!(target: "hsm_core", Level::WARN),
                ]
            })
        };
        assert_eq!(enabled("hsm_pkcs11=debug,warn"), [true, false, true]);
        assert_eq!(enabled("debug"), [true, true, true]);
        assert_eq!(enabled("error"), [false, false, false]);
        assert_eq!(enabled("not a filter ==="), [false, false, true]);
    }

    #[test]
    fn panics_become_fallback_values_and_last_errors() {
        assert_eq!(panics_int(), errors::HSM_ABI_ERR_PANIC);
        let e = errors::last_error();
        assert!(
            e.contains("panics_int") && e.contains("deliberate panic in a test"),
            "{e}"
        );
        assert!(panics_ptr().is_null());
        assert!(errors::last_error().contains("index out of bounds"));
    }
}
