//! Opaque handles given to C: `Box::into_raw` of a `#[repr(C)]` wrapper whose first field is
//! a magic number per handle kind, so a NULL handle, a handle of another interface or one
//! already destroyed (while its memory is still mapped) is reported instead of misused.

use std::ffi::c_void;

use hsm_core::Error;

/// A kind of handle: its magic number and its name in errors.
pub(crate) trait HandleKind {
    const MAGIC: u64;
    const NAME: &'static str;
}

const DEAD: u64 = 0xdead_dead_dead_dead;

#[repr(C)]
struct Handle<T> {
    magic: u64,
    inner: T,
}

/// Box `inner` and give C a pointer to it.
pub(crate) fn into_raw<T: HandleKind>(inner: T) -> *mut c_void {
    Box::into_raw(Box::new(Handle { magic: T::MAGIC, inner })).cast()
}

/// Check the magic number at `p`.
///
/// # Safety
/// `p` is NULL or was returned by [`into_raw`] (for any kind) and not freed.
unsafe fn check<T: HandleKind>(p: *mut c_void) -> Result<*mut Handle<T>, Error> {
    if p.is_null() {
        return Err(Error::invalid("handle", "is NULL"));
    }
    // SAFETY: every handle is a `#[repr(C)] Handle<_>` whose first field is the `u64` magic,
    // and the allocation is aligned for it (caller's promise).
    let magic = unsafe { p.cast::<u64>().read() };
    if magic == T::MAGIC {
        Ok(p.cast())
    } else if magic == DEAD {
        Err(Error::invalid(
            "handle",
            format!("this {} handle was already destroyed", T::NAME),
        ))
    } else {
        Err(Error::invalid(
            "handle",
            format!("is not a handle of the {} interface", T::NAME),
        ))
    }
}

/// Borrow the object behind a handle.
///
/// # Safety
/// As for [`check`]; the handle is not destroyed while the reference is used.
pub(crate) unsafe fn get<'a, T: HandleKind>(p: *mut c_void) -> Result<&'a T, Error> {
    // SAFETY: forwarded promise; `check` verified the kind, so the pointee is a `Handle<T>`.
    unsafe { check::<T>(p).map(|h| &(*h).inner) }
}

/// Destroy a handle; NULL is a no-op. Returns an error for a handle of another kind.
///
/// # Safety
/// As for [`check`]; no other thread uses the handle during or after this call.
pub(crate) unsafe fn destroy<T: HandleKind>(p: *mut c_void) -> Result<(), Error> {
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: forwarded promise.
    let h = unsafe { check::<T>(p)? };
    // SAFETY: `h` came from `Box::into_raw` in `into_raw::<T>` (kind checked) and is freed once:
    // the magic is overwritten first so a second destroy is reported while memory is mapped.
    unsafe {
        (*h).magic = DEAD;
        drop(Box::from_raw(h));
    }
    Ok(())
}
