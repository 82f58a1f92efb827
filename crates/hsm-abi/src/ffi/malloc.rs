//! The only place that allocates memory handed to C: with `malloc`, because the SDK releases
//! every returned string and buffer with `free()`.

use std::ffi::{c_char, c_uchar};

use hsm_core::Error;

use super::errors::{AbiError, AbiResult};

/// A `malloc`'d copy of `data` (at least one byte is allocated, so an empty result is not NULL).
pub(crate) fn malloc_bytes(data: &[u8]) -> AbiResult<*mut c_uchar> {
    let size = data.len().max(1);
    // SAFETY: malloc has no preconditions; the result is checked for NULL below.
    let p = unsafe { libc::malloc(size) }.cast::<c_uchar>();
    if p.is_null() {
        return Err(AbiError::OutOfMemory(size));
    }
    // SAFETY: `p` is a fresh allocation of at least `data.len()` bytes, disjoint from `data`.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
    Ok(p)
}

/// A `malloc`'d NUL-terminated copy of `s`; a string with an interior NUL is an error.
pub(crate) fn malloc_cstr(what: &'static str, s: &str) -> AbiResult<*mut c_char> {
    if s.as_bytes().contains(&0) {
        return Err(Error::Internal(format!("{what} contains a NUL byte and cannot be a C string")).into());
    }
    let size = s.len() + 1;
    // SAFETY: malloc has no preconditions; the result is checked for NULL below.
    let p = unsafe { libc::malloc(size) }.cast::<u8>();
    if p.is_null() {
        return Err(AbiError::OutOfMemory(size));
    }
    // SAFETY: `p` holds `s.len() + 1` bytes: the string, then the terminating NUL.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
        p.add(s.len()).write(0);
    }
    Ok(p.cast::<c_char>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_terminates() {
        let p = malloc_cstr("t", "héllo").unwrap();
        // SAFETY: a NUL-terminated string just allocated above; freed once.
        unsafe {
            assert_eq!(std::ffi::CStr::from_ptr(p).to_str().unwrap(), "héllo");
            libc::free(p.cast());
        }
        assert!(matches!(
            malloc_cstr("t", "a\0b"),
            Err(AbiError::Core(Error::Internal(_)))
        ));
        let b = malloc_bytes(&[1, 2, 3]).unwrap();
        // SAFETY: three bytes just allocated above; freed once.
        unsafe {
            assert_eq!(std::slice::from_raw_parts(b, 3), &[1, 2, 3]);
            libc::free(b.cast());
        }
        let empty = malloc_bytes(&[]).unwrap();
        assert!(!empty.is_null());
        // SAFETY: allocated above; freed once.
        unsafe { libc::free(empty.cast()) };
    }
}
