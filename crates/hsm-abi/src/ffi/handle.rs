//! Opaque handles given to C: every object the library hands out (SDK HSM handles, signers,
//! TLS IO instances, built-in vendor identities) is registered in one process-wide table of
//! generation-checked slots, and C gets a token naming the slot and its generation, never an
//! address. A NULL, foreign, stale (already destroyed, even when its slot or memory was
//! reused since) or wrong-kind handle is looked up in the table and reported; freed memory is
//! never read.
//!
//! A token is `generation << HALF | (slot + 1)` with `HALF` half the bits of a pointer: it is
//! never NULL, and a slot's generation changes on every destroy, so an old token of a reused
//! slot no longer matches. A lookup is one uncontended mutex and a vector index.

use std::any::TypeId;
use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard};

use hsm_core::Error;

/// A kind of handle: its name in errors.
pub(crate) trait HandleKind: 'static {
    const NAME: &'static str;
}

const HALF: u32 = usize::BITS / 2;
const LOW: usize = (1 << HALF) - 1;

struct Live {
    kind: TypeId,
    name: &'static str,
    /// `Box::into_raw` of the object, as an address (the table stays `Send`).
    object: usize,
    /// Frees `object` as the type it was registered with.
    free: unsafe fn(usize),
}

struct Slot {
    generation: usize,
    live: Option<Live>,
}

struct Table {
    slots: Vec<Slot>,
    vacant: Vec<usize>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    slots: Vec::new(),
    vacant: Vec::new(),
});

fn table() -> MutexGuard<'static, Table> {
    // Every update keeps the table consistent before anything can panic.
    TABLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// # Safety
/// `object` came from `Box::into_raw(Box<T>)` and is freed once.
unsafe fn free_box<T>(object: usize) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(object as *mut T) });
}

fn token(slot: usize, generation: usize) -> *mut c_void {
    (((generation & LOW) << HALF) | (slot + 1)) as *mut c_void
}

/// Register `inner` and give C its token; an error when the table is full (2^32 live handles
/// on 64-bit targets, 65,535 on 32-bit ones).
pub(crate) fn into_raw<T: HandleKind>(inner: T) -> Result<*mut c_void, Error> {
    let mut t = table();
    let slot = match t.vacant.pop() {
        Some(slot) => slot,
        None if t.slots.len() < LOW => {
            t.slots.push(Slot {
                generation: 1,
                live: None,
            });
            t.slots.len() - 1
        }
        None => {
            return Err(Error::invalid(
                "handle",
                format!("cannot create a {} handle: {LOW} handles are open", T::NAME),
            ));
        }
    };
    let object = Box::into_raw(Box::new(inner)) as usize;
    let s = &mut t.slots[slot];
    s.live = Some(Live {
        kind: TypeId::of::<T>(),
        name: T::NAME,
        object,
        free: free_box::<T>,
    });
    Ok(token(slot, s.generation))
}

/// The slot of a live handle of kind `T`, or why `p` is not one.
fn find<T: HandleKind>(t: &Table, p: *const c_void) -> Result<usize, Error> {
    if p.is_null() {
        return Err(Error::invalid("handle", "is NULL"));
    }
    let value = p as usize;
    let (slot, generation) = ((value & LOW).wrapping_sub(1), value >> HALF);
    let Some(s) = t.slots.get(slot) else {
        return Err(Error::invalid(
            "handle",
            format!("is not a handle of the {} interface", T::NAME),
        ));
    };
    match &s.live {
        Some(live) if s.generation & LOW == generation => {
            if live.kind == TypeId::of::<T>() {
                Ok(slot)
            } else {
                Err(Error::invalid(
                    "handle",
                    format!(
                        "is not a handle of the {} interface (it is a handle of the {} interface)",
                        T::NAME,
                        live.name
                    ),
                ))
            }
        }
        _ if generation < s.generation & LOW => Err(Error::invalid(
            "handle",
            format!("this {} handle was already destroyed", T::NAME),
        )),
        _ => Err(Error::invalid(
            "handle",
            format!("is not a handle of the {} interface", T::NAME),
        )),
    }
}

/// Borrow the object behind a handle.
///
/// # Safety
/// `p` may be anything; if it is a live handle of kind `T`, it is not destroyed while the
/// reference is used.
pub(crate) unsafe fn get<'a, T: HandleKind>(p: *const c_void) -> Result<&'a T, Error> {
    let t = table();
    let slot = find::<T>(&t, p)?;
    let object = t.slots[slot].live.as_ref().map(|l| l.object).unwrap_or_default() as *const T;
    // SAFETY: a live slot of kind `T` holds `Box::into_raw` of a `T`, freed only by `destroy`,
    // which the caller promises does not run while the reference is used.
    unsafe { object.as_ref() }.ok_or_else(|| Error::Internal("a live handle without an object".into()))
}

/// Destroy a handle; NULL is a no-op. A stale, foreign or wrong-kind handle is an error and
/// nothing is freed.
///
/// # Safety
/// `p` may be anything; no reference from [`get`] on the same handle is in use.
pub(crate) unsafe fn destroy<T: HandleKind>(p: *const c_void) -> Result<(), Error> {
    if p.is_null() {
        return Ok(());
    }
    let live = {
        let mut t = table();
        let slot = find::<T>(&t, p)?;
        let s = &mut t.slots[slot];
        s.generation = s.generation.wrapping_add(1);
        let live = s.live.take();
        t.vacant.push(slot);
        live
    };
    if let Some(live) = live {
        // SAFETY: the slot held this object until now and no longer does, so it is freed once,
        // with the type it was registered with; the lock is released so a destructor may
        // create or destroy other handles.
        unsafe { (live.free)(live.object) };
    }
    Ok(())
}
