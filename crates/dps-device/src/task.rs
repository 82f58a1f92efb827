//! Blocking device and network operations (key and TPM commands, TLS set-up, ureq calls) run on
//! tokio's blocking pool, so they never hold up the runtime.

use hsm_core::TpmIdentity;

use crate::error::Error;
use crate::types::SharedTpm;

/// Run a blocking device or network operation on tokio's blocking pool.
pub(crate) async fn blocking_task<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a blocking task failed: {e}")))?
}

/// Run `f` on the shared TPM, on the blocking pool.
pub(crate) async fn with_tpm<T: Send + 'static>(
    tpm: &SharedTpm,
    f: impl FnOnce(&mut dyn TpmIdentity) -> hsm_core::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let tpm = tpm.clone();
    blocking_task(move || {
        let mut guard = tpm
            .lock()
            .map_err(|_| Error::Internal("the TPM lock is poisoned".into()))?;
        f(guard.as_mut()).map_err(Error::from)
    })
    .await
}
