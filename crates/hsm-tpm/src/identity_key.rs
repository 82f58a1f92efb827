//! The identity key at its persistent handle: replaced step by step so that a working key exists after
//! every step (staged first), found at the staging handle after an interrupted activation, tidied at open.

use hsm_core::{Error, Result};
use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::structures::Public;

use crate::handles::staging_handle;
use crate::objects::{password, persistent_handle, read_public};
use crate::session::{Session, retry};
use crate::{error, templates};

/// A step of `replace_identity_key` after which a test can make activation fail
/// ([`crate::Tpm::fail_activation_after`], feature `testing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationStep {
    /// The new key is persisted at the staging handle.
    Staged,
    /// The old key at the identity handle is evicted.
    OldEvicted,
    /// The new key is persisted at the identity handle (the staging copy is still there).
    Persisted,
}

pub(crate) fn evict(s: &mut Session, handle: u32, what: &str) -> Result<()> {
    if let Some(obj) = s.persistent(handle)? {
        let p = persistent_handle(handle)?;
        retry(|| password(s, |ctx| ctx.evict_control(Provision::Owner, obj, p)))
            .map_err(|e| error::tpm(format!("evict {what} at 0x{handle:08x}"), e))?;
        s.forget(handle);
    }
    Ok(())
}

pub(crate) fn persist(s: &mut Session, loaded: ObjectHandle, handle: u32, what: &str) -> Result<()> {
    let p = persistent_handle(handle)?;
    retry(|| password(s, |ctx| ctx.evict_control(Provision::Owner, loaded, p)))
        .map_err(|e| error::tpm(format!("persist {what} at 0x{handle:08x}"), e))?;
    s.forget(handle);
    Ok(())
}

/// Persist the loaded new identity key at `h` so that a working key exists after every step:
/// when `h` holds a key, the new one is first persisted at the staging handle (a leftover
/// there is evicted first), then the old one is evicted, the new one persisted at `h` and the
/// staging copy evicted. When `h` is empty (an earlier activation stopped half-way and the
/// key lives at the staging handle), the new key goes straight to `h`. Signing uses the
/// staging handle while `h` is empty.
pub(crate) fn replace_identity_key(
    s: &mut Session,
    loaded: ObjectHandle,
    h: u32,
    fail_after: Option<ActivationStep>,
) -> Result<()> {
    let staging = staging_handle(h);
    let injected = |step: ActivationStep| -> Result<()> {
        if fail_after == Some(step) {
            return Err(error::device("activate", format!("injected failure after {step:?}")));
        }
        Ok(())
    };
    if s.persistent(h)?.is_some() {
        if staged_identity(s, h)?.is_some() {
            evict(s, staging, "a leftover staged identity key")?;
        } else if s.persistent(staging)?.is_some() {
            return Err(error::device(
                "activate",
                format!(
                    "0x{staging:08x}, the handle a new identity key is staged at, holds another object (not an HMAC key); free it or choose another identity_handle"
                ),
            ));
        }
        persist(s, loaded, staging, "the new identity key (staged)")?;
        injected(ActivationStep::Staged)?;
        evict(s, h, "the old identity key")?;
        injected(ActivationStep::OldEvicted)?;
    }
    persist(s, loaded, h, "the identity key")?;
    injected(ActivationStep::Persisted)?;
    if staged_identity(s, h)?.is_some() {
        evict(s, staging, "the staged identity key")?;
    }
    Ok(())
}

/// The key at the staging handle of `h` if it is one (an HMAC key, as the identity key is);
/// another object there is none of ours and is left alone.
pub(crate) fn staged_identity(s: &mut Session, h: u32) -> Result<Option<ObjectHandle>> {
    let staging = staging_handle(h);
    let Some(o) = s.persistent_cached(staging)? else {
        return Ok(None);
    };
    match read_public(s, o, "the object at the staging handle")? {
        Public::KeyedHash { .. } => Ok(Some(o)),
        _ => Ok(None),
    }
}

/// The identity key's handle and object: the staged key when there is one (an activation
/// stopped after staging it, so it is the newest), else the key at `h`.
pub(crate) fn identity_object(s: &mut Session, h: u32) -> Result<Option<(u32, ObjectHandle)>> {
    if let Some(o) = staged_identity(s, h)? {
        return Ok(Some((staging_handle(h), o)));
    }
    Ok(s.persistent(h)?.map(|o| (h, o)))
}

/// At open: a staged identity key that equals the one at `h` (an activation stopped after
/// persisting it at `h`) is evicted; one that is the only or the newer key stays (it signs)
/// until the next activation puts a key at `h` again.
pub(crate) fn tidy_staged_identity(s: &mut Session, h: u32) -> Result<()> {
    let staging = staging_handle(h);
    let Some(staged) = staged_identity(s, h)? else {
        return Ok(());
    };
    let Some(current) = s.persistent(h)? else {
        tracing::warn!(
            "the identity key is at the staging handle 0x{staging:08x} (an activation was interrupted); the next activation moves it to 0x{h:08x}"
        );
        return Ok(());
    };
    let a = read_public(s, staged, "the staged identity key")?;
    let b = read_public(s, current, "the identity key")?;
    if templates::tpm2b_public(&a)? == templates::tpm2b_public(&b)? {
        evict(s, staging, "the staged copy of the identity key")
    } else {
        tracing::warn!(
            "the newest identity key is at the staging handle 0x{staging:08x} (an activation was interrupted); the next activation moves it to 0x{h:08x}"
        );
        Ok(())
    }
}

pub(crate) fn no_identity_key(h: u32) -> Error {
    Error::Device {
        origin: hsm_core::Origin::Tpm,
        op: "sign with the identity key".into(),
        rv: 0,
        message: format!("no identity key at 0x{h:08x}: activate one first (activate_identity_key)"),
    }
}
