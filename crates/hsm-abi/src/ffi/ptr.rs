//! Checked conversions of pointers that come in from C. NULL and invalid UTF-8 are errors
//! naming the argument; validity beyond that is the caller's promise (each function's
//! `# Safety`).

use std::ffi::{CStr, c_char};
use std::ptr::NonNull;

use hsm_core::Error;

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn cstr<'a>(what: &'static str, p: *const c_char) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::invalid(what, "is NULL"));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Error::invalid(what, format!("is not UTF-8: {e}")))
}

/// Like [`cstr`], but NULL is `None`.
///
/// # Safety
/// As for [`cstr`].
pub(crate) unsafe fn opt_cstr<'a>(what: &'static str, p: *const c_char) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded promise of the caller.
    unsafe { cstr(what, p) }.map(Some)
}

/// A byte-buffer argument; NULL is accepted only with `len == 0`.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that stay valid and unchanged for `'a`.
pub(crate) unsafe fn slice<'a>(what: &'static str, p: *const u8, len: usize) -> Result<&'a [u8], Error> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::invalid(what, format!("is NULL with a length of {len}")))
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(what, format!("length {len} is out of range")));
    }
    // SAFETY: non-NULL, `len` readable bytes by the caller's promise, len checked above.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A writable byte buffer; NULL is an error.
///
/// # Safety
/// `p` is NULL or points to `len` writable bytes, not aliased, valid for `'a`.
pub(crate) unsafe fn slice_mut<'a>(what: &'static str, p: *mut u8, len: usize) -> Result<&'a mut [u8], Error> {
    if p.is_null() {
        return Err(Error::invalid(what, "is NULL"));
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(what, format!("length {len} is out of range")));
    }
    // SAFETY: non-NULL, `len` writable unaliased bytes by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// An output parameter: checked for NULL up front, written only on success.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// # Safety
    /// `p` is NULL or valid for writing a `T` (its old value need not be initialized).
    pub(crate) unsafe fn new(what: &'static str, p: *mut T) -> Result<Self, Error> {
        NonNull::new(p)
            .map(Out)
            .ok_or_else(|| Error::invalid(what, "output parameter is NULL"))
    }

    /// The raw pointer, to read a field the caller initialized.
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.0.as_ptr()
    }

    /// Read the current value (for in/out parameters).
    ///
    /// # Safety
    /// The pointee must be initialized.
    pub(crate) unsafe fn read(&self) -> T {
        // SAFETY: valid for reads (constructor's promise) and initialized (this call's promise).
        unsafe { self.0.as_ptr().read() }
    }

    pub(crate) fn write(self, value: T) {
        // SAFETY: valid for writes by the promise given to `new`; `write` does not read or drop
        // the old value, which may be uninitialized.
        unsafe { self.0.as_ptr().write(value) }
    }
}
