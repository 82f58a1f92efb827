//! What the C-ABI tests share: the last error as text, a configuration that must be taken, a
//! malloc'd string taken back, one test at a time for the library's global configuration.
#![allow(dead_code)]

use std::ffi::{CStr, CString, c_char};
use std::sync::{Mutex, MutexGuard};

use hsm_abi::ffi::errors::{HSM_ABI_OK, hsm_abi_last_error};
use hsm_abi::ffi::ext::hsm_abi_configure_toml;

/// This thread's last error (`hsm_abi_last_error`).
pub fn last_error() -> String {
    let mut buf = vec![0 as c_char; 2048];
    // SAFETY: the buffer is writable for its length; the library NUL-terminates what it writes.
    unsafe { hsm_abi_last_error(buf.as_mut_ptr(), buf.len()) };
    // SAFETY: NUL-terminated above (the buffer starts zeroed).
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// Configures the library with the TOML document `toml`, which it must take.
pub fn configure(toml: &str) {
    let c = CString::new(toml).unwrap();
    // SAFETY: a NUL-terminated string that outlives the call.
    let rc = unsafe { hsm_abi_configure_toml(c.as_ptr()) };
    assert_eq!(rc, HSM_ABI_OK, "{}", last_error());
}

/// Takes a malloc'd C string from the library: a copy of it (`None` for NULL), the original freed.
pub fn take(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string the library malloc'd for the caller, freed once, here.
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    unsafe { libc::free(p.cast()) };
    Some(s)
}

/// The library's configuration is global: tests that set it run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static GLOBAL: Mutex<()> = Mutex::new(());
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A C string the library must return (not NULL), taken as `take` does.
pub fn take_some(p: *mut c_char) -> String {
    take(p).unwrap_or_else(|| panic!("NULL: {}", last_error()))
}
