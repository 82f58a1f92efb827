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
pub const LOG_ENV: &str = "HSM_ABI_LOG";

static LOGGING: Once = Once::new();

/// Called first by every export: installs the stderr subscriber once if `HSM_ABI_LOG` is set.
pub(crate) fn enter() {
    LOGGING.call_once(|| {
        let Some(filter) = std::env::var_os(LOG_ENV) else {
            return;
        };
        let filter = filter.to_string_lossy().into_owned();
        let filter = tracing_subscriber::EnvFilter::try_new(&filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        // An application that installed its own global subscriber keeps it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    });
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
