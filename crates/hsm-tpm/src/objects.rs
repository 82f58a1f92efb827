//! TPM objects on a connection's session: their public part, a primary key created and persisted once,
//! a transient object flushed.

use hsm_core::{Error, Result};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::Public;

use crate::session::{Session, retry};
use crate::{error, templates};

pub(crate) fn password<T>(s: &mut Session, f: impl FnOnce(&mut tss_esapi::Context) -> T) -> T {
    s.ctx.execute_with_session(Some(AuthSession::Password), f)
}

pub(crate) fn persistent_handle(h: u32) -> Result<Persistent> {
    PersistentTpmHandle::new(h)
        .map(Persistent::Persistent)
        .map_err(|e| Error::invalid("handle", format!("0x{h:08x}: {e}")))
}

/// Read the public area of an object.
pub(crate) fn read_public(s: &mut Session, handle: ObjectHandle, what: &str) -> Result<Public> {
    retry(|| {
        s.ctx
            .execute_without_session(|ctx| ctx.read_public(KeyHandle::from(handle)))
    })
    .map(|(public, _, _)| public)
    .map_err(|e| error::tpm(format!("read public part of {what}"), e))
}

/// Use the key persisted at `handle`, or create a primary key in `hierarchy` and persist it.
pub(crate) fn ensure_primary(
    s: &mut Session,
    handle: u32,
    hierarchy: Hierarchy,
    template: Public,
    what: &str,
) -> Result<(Vec<u8>, bool)> {
    if let Some(h) = s.persistent(handle)? {
        let public = read_public(s, h, what)?;
        return Ok((templates::tpm2b_public(&public)?, false));
    }
    tracing::info!("creating the {what} and persisting it at 0x{handle:08x}");
    let created = retry(|| {
        password(s, |ctx| {
            ctx.create_primary(hierarchy, template.clone(), None, None, None, None)
        })
    })
    .map_err(|e| error::tpm(format!("create the {what}"), e))?;
    let transient = ObjectHandle::from(created.key_handle);
    let persisted = persistent_handle(handle).and_then(|p| {
        retry(|| password(s, |ctx| ctx.evict_control(Provision::Owner, transient, p)))
            .map_err(|e| error::tpm(format!("persist the {what} at 0x{handle:08x}"), e))
    });
    flush(s, transient);
    let persisted = persisted?;
    s.forget(handle);
    let _ = persisted;
    Ok((templates::tpm2b_public(&created.out_public)?, true))
}

pub(crate) fn flush(s: &mut Session, handle: ObjectHandle) {
    if let Err(e) = retry(|| s.ctx.flush_context(handle)) {
        tracing::warn!("flushing a transient TPM object failed: {e}");
    }
}
