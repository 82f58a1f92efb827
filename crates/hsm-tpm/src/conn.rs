//! One shared, serialized connection per TCTI, with reconnection and bounded retries.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use hsm_core::{Error, Result};
use tss_esapi::Context;
use tss_esapi::handles::ObjectHandle;
use tss_esapi::structures::Auth;
use tss_esapi::tcti_ldr::TctiNameConf;
use zeroize::Zeroizing;

use crate::error;
use crate::session::{HierarchyAuth, Session};

/// The TCTI used when the configuration names none: `TPM2TOOLS_TCTI`, else `TCTI`, else the
/// kernel resource manager `device:/dev/tpmrm0`.
pub fn default_tcti() -> String {
    for var in ["TPM2TOOLS_TCTI", "TCTI"] {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return v.trim().to_string();
            }
        }
    }
    "device:/dev/tpmrm0".to_string()
}

/// Default bound of one TPM operation (`TpmConn::set_command_timeout`).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Operations that generate keys (RSA primary keys take seconds on real TPMs) get this many
/// times the command timeout.
pub(crate) const KEYGEN_FACTOR: u32 = 12;

/// What one job on the worker sees: the session slot (empty until opened) and the state
/// shared with the connection.
type Job = Box<dyn FnOnce(&mut Option<Session>, &Shared) + Send>;

/// State shared by a [`TpmConn`] and its worker thread.
struct Shared {
    tcti: String,
    auth: Mutex<HierarchyAuth>,
    /// Set when a caller gave up waiting for the TPM; cleared (and the session reopened) when
    /// the worker's command returns. While set, callers fail at once.
    stuck: AtomicBool,
}

/// A connection to one TPM, shared by every key and identity of the process that uses the
/// same TCTI. One worker thread owns the ESAPI context and runs one operation at a time;
/// callers wait for it at most the command timeout. A lost connection is reopened once per
/// call; a TPM that does not answer in time fails the caller with an error naming the TCTI
/// and the timeout, and every other caller at once until it answers again.
pub struct TpmConn {
    shared: Arc<Shared>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    timeout_ms: AtomicU64,
}

impl std::fmt::Debug for TpmConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmConn")
            .field("tcti", &self.shared.tcti)
            .field("command_timeout", &self.command_timeout())
            .finish_non_exhaustive()
    }
}

/// The worker: runs jobs in order; after a job whose caller gave up (the TPM was stuck), the
/// context is dropped so that the next job reconnects.
fn worker(shared: Arc<Shared>, jobs: mpsc::Receiver<Job>) {
    let mut session: Option<Session> = None;
    while let Ok(job) = jobs.recv() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut session, &shared)));
        if r.is_err() {
            // A panic inside tss-esapi leaves a context of unknown state: drop it.
            session = None;
        }
        if shared.stuck.swap(false, Ordering::SeqCst) {
            tracing::warn!(tcti = %shared.tcti, "the TPM answered again; reconnecting");
            session = None;
        }
    }
}

type Registry = Mutex<HashMap<String, Weak<TpmConn>>>;

/// The registry key of a TCTI string: `swtpm`/`mssim` options sorted, with their defaults
/// filled in, so that two spellings of one simulator share one connection (swtpm serves a
/// single client: a second connection would wait for the first to close).
fn registry_key(tcti: &str) -> String {
    let (name, conf) = tcti.split_once(':').unwrap_or((tcti, ""));
    match name {
        "swtpm" | "mssim" if !conf.contains('/') => {
            let mut host = "localhost".to_string();
            let mut port = "2321".to_string();
            let mut rest = Vec::new();
            for kv in conf.split(',').filter(|s| !s.is_empty()) {
                match kv.split_once('=') {
                    Some(("host", v)) => host = v.to_string(),
                    Some(("port", v)) => port = v.to_string(),
                    _ => rest.push(kv.to_string()),
                }
            }
            rest.sort();
            format!(
                "{name}:host={host},port={port}{}",
                rest.iter().map(|r| format!(",{r}")).collect::<String>()
            )
        }
        _ => tcti.to_string(),
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

impl TpmConn {
    /// The process-wide connection for `tcti` (opened now if there is none). Hierarchy
    /// authorization given here replaces what an earlier opener set.
    pub fn shared(tcti: &str) -> Result<Arc<TpmConn>> {
        Self::shared_with_auth(tcti, HierarchyAuth::default())
    }

    /// Like [`TpmConn::shared`], with hierarchy authorization values.
    pub fn shared_with_auth(tcti: &str, auth: HierarchyAuth) -> Result<Arc<TpmConn>> {
        Self::connect_with(tcti, auth, None)
    }

    /// The process-wide connection for `tcti`, with hierarchy authorization values and the
    /// command timeout of this connection (`TpmConn::set_command_timeout`: the last setter
    /// wins). Connecting, up to the first answer of the TPM, is bounded by `command_timeout`;
    /// no lock shared with other TPMs is held meanwhile, so a TPM that does not answer holds
    /// up only the callers of its own TCTI.
    pub fn connect(tcti: &str, auth: HierarchyAuth, command_timeout: Duration) -> Result<Arc<TpmConn>> {
        Self::connect_with(tcti, auth, Some(command_timeout))
    }

    /// [`TpmConn::connect`]; without a timeout, the connection's own bounds the connect.
    fn connect_with(tcti: &str, auth: HierarchyAuth, command_timeout: Option<Duration>) -> Result<Arc<TpmConn>> {
        let tcti = tcti.trim();
        TctiNameConf::from_str(tcti).map_err(|e| Error::invalid("tcti", format!("`{tcti}`: {e}")))?;
        let (conn, fresh) = Self::registered(tcti, &auth)?;
        if let Some(t) = command_timeout {
            conn.set_command_timeout(t);
        }
        let command_timeout = conn.command_timeout();
        if !fresh {
            // Connected already (or being connected by its first opener, queued ahead of any
            // operation of ours): only new hierarchy authorization is applied.
            if auth.owner.is_some() || auth.endorsement.is_some() {
                *conn
                    .shared
                    .auth
                    .lock()
                    .map_err(|_| Error::Internal("TPM auth poisoned".into()))? = auth.clone();
                conn.run(command_timeout, move |slot, _| match slot.as_mut() {
                    Some(s) => apply_auth(&mut s.ctx, &auth),
                    None => Ok(()),
                })??;
            }
            return Ok(conn);
        }
        // Open the context and wait for a first answer (a simulator or resource manager that
        // accepts connections and never answers blocks here).
        conn.run(command_timeout, |slot, shared| {
            if slot.is_none() {
                *slot = Some(open(shared)?);
            }
            match slot.as_mut() {
                Some(s) => s.input_buffer().map(|_| ()),
                None => Err(Error::Internal("TPM session vanished".into())),
            }
        })
        .map_err(|e| connect_error(e, tcti))??;
        Ok(conn)
    }

    /// The registered connection of `tcti`, or a new one (its worker started, not connected
    /// yet) registered now; `true` when new. The registry lock is held only here.
    fn registered(tcti: &str, auth: &HierarchyAuth) -> Result<(Arc<TpmConn>, bool)> {
        let key = registry_key(tcti);
        let mut reg = registry()
            .lock()
            .map_err(|_| Error::Internal("TPM registry poisoned".into()))?;
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(conn) = reg.get(&key).and_then(Weak::upgrade) {
            return Ok((conn, false));
        }
        let shared = Arc::new(Shared {
            tcti: tcti.to_string(),
            auth: Mutex::new(auth.clone()),
            stuck: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let for_worker = shared.clone();
        let handle = std::thread::Builder::new()
            .name("hsm-tpm".into())
            .spawn(move || worker(for_worker, rx))
            .map_err(|e| Error::Internal(format!("start the TPM worker thread: {e}")))?;
        let conn = Arc::new(TpmConn {
            shared,
            jobs: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(handle)),
            timeout_ms: AtomicU64::new(DEFAULT_COMMAND_TIMEOUT.as_millis() as u64),
        });
        reg.insert(key, Arc::downgrade(&conn));
        Ok((conn, true))
    }

    /// The TCTI string this connection uses.
    pub fn tcti(&self) -> &str {
        &self.shared.tcti
    }

    /// How long a caller waits for one TPM operation (default [`DEFAULT_COMMAND_TIMEOUT`]).
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// Set the bound of every TPM operation on this connection (shared by every user of the
    /// same TCTI in the process: the last setter wins). At least 1 ms.
    pub(crate) fn set_command_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        self.timeout_ms.store(ms, Ordering::Relaxed);
    }

    fn timeout_error(&self, timeout: Duration, earlier: bool) -> Error {
        let message = if earlier {
            format!(
                "the TPM at `{}` has not answered an earlier command within the command timeout of {} ms; failing at once until it answers",
                self.shared.tcti,
                timeout.as_millis()
            )
        } else {
            format!(
                "the TPM at `{}` did not answer within the command timeout of {} ms (command_timeout)",
                self.shared.tcti,
                timeout.as_millis()
            )
        };
        Error::Device {
            origin: hsm_core::Origin::Tpm,
            op: "TPM command".into(),
            rv: 0,
            message,
        }
    }

    /// Run `f` on the worker thread and wait for it at most `timeout`. A caller that gives up
    /// marks the connection stuck; callers then fail at once until the worker is back.
    fn run<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut Option<Session>, &Shared) -> T + Send + 'static,
    ) -> Result<T> {
        if self.shared.stuck.load(Ordering::SeqCst) {
            return Err(self.timeout_error(timeout, true));
        }
        let deadline = Instant::now() + timeout;
        let (tx, rx) = mpsc::sync_channel::<T>(1);
        let job: Job = Box::new(move |slot, shared| {
            // The caller gave up already (it waited behind a stuck command): do not run.
            if Instant::now() >= deadline {
                return;
            }
            let _ = tx.send(f(slot, shared));
        });
        self.jobs
            .lock()
            .map_err(|_| Error::Internal("TPM job queue poisoned".into()))?
            .as_ref()
            .ok_or_else(|| Error::Internal("TPM connection closed".into()))?
            .send(job)
            .map_err(|_| Error::Internal(format!("the TPM worker of `{}` has stopped", self.shared.tcti)))?;
        loop {
            let now = Instant::now();
            if now >= deadline {
                self.shared.stuck.store(true, Ordering::SeqCst);
                tracing::warn!(tcti = %self.shared.tcti, timeout_ms = timeout.as_millis() as u64, "TPM command timed out");
                return Err(self.timeout_error(timeout, false));
            }
            match rx.recv_timeout((deadline - now).min(Duration::from_millis(20))) {
                Ok(v) => return Ok(v),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.shared.stuck.load(Ordering::SeqCst) {
                        return Err(self.timeout_error(timeout, true));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    if Instant::now() >= deadline {
                        continue;
                    }
                    return Err(Error::Internal(format!(
                        "a TPM operation on `{}` ended without a result (panicked)",
                        self.shared.tcti
                    )));
                }
            }
        }
    }

    /// Run `f` on the session. When the connection turns out to be lost (TPM restarted,
    /// socket closed), the context is reopened and `f` runs once more; a second failure is
    /// returned as it is. Bounded by the command timeout.
    pub fn with<T: Send + 'static>(&self, f: impl FnMut(&mut Session) -> Result<T> + Send + 'static) -> Result<T> {
        self.with_timeout(self.command_timeout(), f)
    }

    /// [`TpmConn::with`] for operations that generate keys: [`KEYGEN_FACTOR`] times the timeout.
    pub(crate) fn with_keygen<T: Send + 'static>(
        &self,
        f: impl FnMut(&mut Session) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.with_timeout(self.command_timeout().saturating_mul(KEYGEN_FACTOR), f)
    }

    fn with_timeout<T: Send + 'static>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&mut Session) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(timeout, move |slot, shared| {
            let mut reopened = false;
            loop {
                if slot.is_none() {
                    *slot = Some(open(shared)?);
                    reopened = true;
                }
                let session = slot
                    .as_mut()
                    .ok_or_else(|| Error::Internal("TPM session vanished".into()))?;
                match f(session) {
                    Err(Error::Device { rv, .. }) if !reopened && error::is_connection_lost(rv as u32) => {
                        tracing::warn!(tcti = %shared.tcti, "TPM connection lost; reconnecting");
                        *slot = None;
                    }
                    Err(e) => {
                        if let Error::Device { rv, .. } = &e {
                            if error::is_connection_lost(*rv as u32) {
                                *slot = None;
                            }
                        }
                        return Err(e);
                    }
                    ok => return ok,
                }
            }
        })?
    }

    /// Run `f` on the raw tss-esapi context of this connection (serialized with every other
    /// user and bounded by the command timeout; no reconnection). For callers that need a
    /// command this crate does not wrap, and for benchmarks against raw tss-esapi. Flush what
    /// you load.
    pub fn with_context<T: Send + 'static>(&self, f: impl FnOnce(&mut Context) -> T + Send + 'static) -> Result<T> {
        self.run(self.command_timeout(), move |slot, shared| {
            if slot.is_none() {
                *slot = Some(open(shared)?);
            }
            let session = slot
                .as_mut()
                .ok_or_else(|| Error::Internal("TPM session vanished".into()))?;
            Ok(f(&mut session.ctx))
        })?
    }

    /// Run `f` with the ESAPI context closed (the raw command path for HMAC sequences needs
    /// the TPM connection to itself); the context is reopened on the next call. Bounded by
    /// the command timeout.
    pub(crate) fn without_context<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(self.command_timeout(), move |slot, _| {
            *slot = None;
            f()
        })?
    }
}

impl Drop for TpmConn {
    /// Close the queue and wait for the worker to close the context, unless it is stuck in a
    /// TPM command (then it ends on its own when the command returns).
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            // Never join from the worker itself (a job holding the last reference).
            if !self.shared.stuck.load(Ordering::SeqCst) && handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// A timeout while connecting says so (the TCTI and the timeout are in the message already).
fn connect_error(e: Error, tcti: &str) -> Error {
    match e {
        Error::Device {
            origin,
            op,
            rv,
            message,
        } if op == "TPM command" => Error::Device {
            origin,
            op: format!("connect to `{tcti}`"),
            rv,
            message,
        },
        e => e,
    }
}

fn open(shared: &Shared) -> Result<Session> {
    let conf =
        TctiNameConf::from_str(&shared.tcti).map_err(|e| Error::invalid("tcti", format!("`{}`: {e}", shared.tcti)))?;
    let mut ctx = Context::new(conf).map_err(|e| error::tpm(format!("open TPM at `{}`", shared.tcti), e))?;
    let auth = shared
        .auth
        .lock()
        .map_err(|_| Error::Internal("TPM auth poisoned".into()))?
        .clone();
    apply_auth(&mut ctx, &auth)?;
    Ok(Session::new(ctx))
}

fn apply_auth(ctx: &mut Context, auth: &HierarchyAuth) -> Result<()> {
    let set = |ctx: &mut Context, h: ObjectHandle, v: &Option<Zeroizing<Vec<u8>>>, name: &str| -> Result<()> {
        if let Some(v) = v {
            let a = Auth::try_from(v.to_vec()).map_err(|e| Error::invalid("auth", format!("{name}: {e}")))?;
            ctx.tr_set_auth(h, a)
                .map_err(|e| error::tpm(format!("set {name}"), e))?;
        }
        Ok(())
    };
    set(ctx, ObjectHandle::Owner, &auth.owner, "owner_auth")?;
    set(ctx, ObjectHandle::Endorsement, &auth.endorsement, "endorsement_auth")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_simulator_share_a_key() {
        let k = registry_key("swtpm:host=127.0.0.1,port=2400");
        assert_eq!(registry_key("swtpm:port=2400,host=127.0.0.1"), k);
        assert_ne!(registry_key("swtpm:host=127.0.0.1,port=2402"), k);
        assert_eq!(registry_key("swtpm"), registry_key("swtpm:port=2321,host=localhost"));
        assert_eq!(registry_key("device:/dev/tpmrm0"), "device:/dev/tpmrm0");
    }
}
