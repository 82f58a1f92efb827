//! The `hsm_abi_*` extensions: configuration from C and the library version.

use std::ffi::{c_char, c_int};
use std::path::{Path, PathBuf};

use hsm_core::config::Config;

use super::errors::to_code;
use super::ptr;
use crate::state;

/// Major version of the library (its C ABI is stable within a major version).
pub const HSM_ABI_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const HSM_ABI_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const HSM_ABI_VERSION_PATCH: u32 = 0;

/// The version as a static string "MAJOR.MINOR.PATCH"; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_version() -> *const c_char {
    ffi_boundary!("hsm_abi_version", {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast::<c_char>()
    })
}

/// Configure the library from a TOML file (relative paths in it are relative to the file's
/// directory). Replaces any earlier configuration for handles created afterwards; takes
/// precedence over `HSM_ABI_CONFIG`. Returns 0 or an error code (details:
/// `hsm_abi_last_error`); on error the previous configuration stays.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_configure_file(path: *const c_char) -> c_int {
    ffi_boundary!("hsm_abi_configure_file", {
        // SAFETY: promise of the caller, as documented.
        let r = unsafe { ptr::cstr("path", path) }
            .and_then(|p| Config::from_file(Path::new(p)))
            .map(state::set_config);
        to_code("hsm_abi_configure_file", r.map_err(Into::into))
    })
}

/// Configure the library from TOML text (relative paths in it are relative to the current
/// working directory at the time of this call). Otherwise like `hsm_abi_configure_file`.
///
/// # Safety
/// `toml` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_configure_toml(toml: *const c_char) -> c_int {
    ffi_boundary!("hsm_abi_configure_toml", {
        // SAFETY: promise of the caller, as documented.
        let r = unsafe { ptr::cstr("toml", toml) }
            .and_then(|text| {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                Config::from_toml(text, "<inline configuration>", &cwd)
            })
            .map(state::set_config);
        to_code("hsm_abi_configure_toml", r.map_err(Into::into))
    })
}

/// Forget the configuration set by `hsm_abi_configure_*` (and any loaded from
/// `HSM_ABI_CONFIG`, which is read again when needed). Existing handles are not affected.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_configure_clear() {
    ffi_boundary!("hsm_abi_configure_clear", { state::clear_config() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_package() {
        let v = format!("{HSM_ABI_VERSION_MAJOR}.{HSM_ABI_VERSION_MINOR}.{HSM_ABI_VERSION_PATCH}");
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(hsm_abi_version()) };
        assert_eq!(s.to_str().unwrap(), v);
    }
}
