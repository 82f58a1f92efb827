//! An open ESAPI context and what is cached for it (persistent handles, the input buffer size), the
//! hierarchy authorization applied to it, and the bounded retry of a command the TPM asks to send again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hsm_core::{Error, Result};
use tss_esapi::Context;
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::structures::CapabilityData;
use zeroize::Zeroizing;

use crate::error;

/// How often a command answered with TPM_RC_RETRY / YIELDED / TESTING is sent again.
const RETRIES: u32 = 20;

/// Hierarchy authorization values, applied to every (re)opened context.
#[derive(Clone, Default)]
pub struct HierarchyAuth {
    /// The owner hierarchy's authorization value.
    pub owner: Option<Zeroizing<Vec<u8>>>,
    /// The endorsement hierarchy's authorization value.
    pub endorsement: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for HierarchyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HierarchyAuth")
            .field("owner", &self.owner.as_ref().map(|_| "<set>"))
            .field("endorsement", &self.endorsement.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// An open ESAPI context and what is cached for it.
pub struct Session {
    pub(crate) ctx: Context,
    persistent: HashMap<u32, ObjectHandle>,
    /// Handles found empty by [`Session::persistent_cached`] (until [`Session::forget`]).
    absent: HashSet<u32>,
    input_buffer: Option<usize>,
}

impl Session {
    /// A session over a freshly opened context: nothing cached yet.
    pub(crate) fn new(ctx: Context) -> Session {
        Session {
            ctx,
            persistent: HashMap::new(),
            absent: HashSet::new(),
            input_buffer: None,
        }
    }

    /// The ESYS object of a persistent handle, or `None` when nothing is persisted there.
    pub(crate) fn persistent(&mut self, handle: u32) -> Result<Option<ObjectHandle>> {
        if let Some(h) = self.persistent.get(&handle) {
            return Ok(Some(*h));
        }
        let tpm_handle = PersistentTpmHandle::new(handle)
            .map_err(|e| Error::invalid("handle", format!("0x{handle:08x} is not a persistent handle: {e}")))?;
        // Ask whether the handle exists before making an ESYS object of it: ESYS logs a
        // failed TR_FromTPMPublic as an ERROR on stderr, and an empty handle is no error here.
        let listed = retry(|| {
            self.ctx
                .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, handle, 1))
        })
        .map_err(|e| error::tpm(format!("list persistent handles from 0x{handle:08x}"), e))?;
        let exists = match listed {
            (CapabilityData::Handles(list), _) => list.iter().any(|h| u32::from(*h) == handle),
            (other, _) => {
                return Err(Error::Internal(format!(
                    "TPM2_GetCapability(TPM_CAP_HANDLES) answered with {other:?}"
                )));
            }
        };
        if !exists {
            return Ok(None);
        }
        let found = retry(|| {
            self.ctx
                .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
        });
        match found {
            Ok(h) => {
                self.persistent.insert(handle, h);
                Ok(Some(h))
            }
            Err(e) if error::raw_rc(&e).is_some_and(error::is_missing_handle) => Ok(None),
            Err(e) => Err(error::tpm(format!("read persistent handle 0x{handle:08x}"), e)),
        }
    }

    /// Forget a cached persistent handle (it was evicted).
    pub(crate) fn forget(&mut self, handle: u32) {
        self.persistent.remove(&handle);
        self.absent.remove(&handle);
    }

    /// Like [`Session::persistent`], and an empty handle stays known empty on this session
    /// until [`Session::forget`] (for a handle this process is the only one to fill, checked
    /// on every signature).
    pub(crate) fn persistent_cached(&mut self, handle: u32) -> Result<Option<ObjectHandle>> {
        if self.absent.contains(&handle) {
            return Ok(None);
        }
        let found = self.persistent(handle)?;
        if found.is_none() {
            self.absent.insert(handle);
        }
        Ok(found)
    }

    /// TPM_PT_INPUT_BUFFER: the largest buffer TPM2_HMAC and SequenceUpdate accept.
    pub(crate) fn input_buffer(&mut self) -> Result<usize> {
        if let Some(n) = self.input_buffer {
            return Ok(n);
        }
        let v = retry(|| {
            self.ctx
                .execute_without_session(|ctx| ctx.get_tpm_property(tss_esapi::constants::PropertyTag::InputBuffer))
        })
        .map_err(|e| error::tpm("read TPM_PT_INPUT_BUFFER", e))?;
        // The spec's minimum is 1024; ESAPI's TPM2B_MAX_BUFFER holds at most 1024.
        let n = v.map(|v| v as usize).unwrap_or(1024).clamp(1, 1024);
        self.input_buffer = Some(n);
        Ok(n)
    }
}

/// Run `f` again while the TPM answers RETRY, YIELDED or TESTING, a bounded number of times.
pub(crate) fn retry<T>(mut f: impl FnMut() -> tss_esapi::Result<T>) -> tss_esapi::Result<T> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(e) if attempt < RETRIES && error::raw_rc(&e).is_some_and(error::is_retryable) => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tss_esapi::constants::response_code::Tss2ResponseCode;

    fn rc(v: u32) -> tss_esapi::Error {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(v))
    }

    #[test]
    fn raw_codes_survive_the_wrapper() {
        for v in [0x922u32, 0x18b, 0x000a_000a, 0x0007_0007] {
            assert_eq!(error::raw_rc(&rc(v)), Some(v));
        }
    }

    #[test]
    fn retries_are_bounded_and_only_for_retry_warnings() {
        let mut calls = 0;
        let r = retry(|| {
            calls += 1;
            if calls < 3 { Err(rc(0x922)) } else { Ok(calls) }
        });
        assert_eq!(r.unwrap(), 3);

        let mut calls = 0;
        let r: tss_esapi::Result<()> = retry(|| {
            calls += 1;
            Err(rc(0x90a))
        });
        assert!(r.is_err());
        assert_eq!(calls, RETRIES + 1);

        let mut calls = 0;
        let r: tss_esapi::Result<()> = retry(|| {
            calls += 1;
            Err(rc(0x18b))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
