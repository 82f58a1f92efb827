//! The SDK's TPM ("sastoken") attestation: EK, SRK, identity-key activation, HMAC signing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hsm_core::config::Section;
use hsm_core::{Error, Result, SasSigner, TpmIdentity};
use serde::Deserialize;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PersistentTpmHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Data, Digest, MaxBuffer, Nonce, Public, SymmetricDefinition, SymmetricDefinitionObject};
use zeroize::Zeroizing;

use crate::blob::ActivationBlob;
use crate::conn::{HierarchyAuth, Session, TpmConn, retry};
use crate::templates::EkTemplate;
use crate::{error, templates};

/// Persistent handle of the endorsement key.
pub const EK_HANDLE: u32 = 0x8101_0001;
/// Persistent handle of the storage root key.
pub(crate) const SRK_HANDLE: u32 = 0x8100_0001;
/// Default persistent handle of the DPS identity (HMAC) key.
pub const IDENTITY_HANDLE: u32 = 0x8100_0100;

#[derive(Deserialize)]
#[serde(untagged)]
enum HandleValue {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    tcti: Option<String>,
    ek_template: Option<EkTemplate>,
    owner_auth: Option<Zeroizing<String>>,
    owner_auth_file: Option<PathBuf>,
    endorsement_auth: Option<Zeroizing<String>>,
    endorsement_auth_file: Option<PathBuf>,
    identity_handle: Option<HandleValue>,
    command_timeout: Option<TimeoutValue>,
}

/// `command_timeout`: seconds, an integer or a fraction.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum TimeoutValue {
    Int(i64),
    Float(f64),
}

impl TimeoutValue {
    /// The timeout, between 1 ms and one hour.
    pub(crate) fn duration(&self) -> std::result::Result<Duration, String> {
        let secs = match *self {
            TimeoutValue::Int(i) => i as f64,
            TimeoutValue::Float(f) => f,
        };
        if secs.is_finite() && (0.001..=3600.0).contains(&secs) {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(format!("{secs} s: expected seconds between 0.001 and 3600"))
        }
    }
}

/// Parse a persistent handle: an integer or a `0x...` string, within 0x81000000..=0x81ffffff.
pub(crate) fn parse_handle(what: &'static str, text: &str) -> Result<u32> {
    hsm_core::token::persistent_handle(what, text)
}

/// Parse a persistent handle (`0x81000200` or decimal) and check its range.
pub fn parse_persistent_handle(text: &str) -> Result<u32> {
    parse_handle("handle", text)
}

/// Parse an authorization value: `hex:0a1b...` for bytes, `str:...` or plain text for UTF-8.
fn parse_auth(what: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>> {
    let v = if let Some(hex) = text.strip_prefix("hex:") {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.trim().as_bytes())
            .map_err(|e| Error::invalid(what, format!("bad hex: {e}")))?
    } else {
        text.strip_prefix("str:").unwrap_or(text).as_bytes().to_vec()
    };
    if v.len() > 64 {
        return Err(Error::invalid(what, "longer than 64 bytes"));
    }
    Ok(Zeroizing::new(v))
}

/// Options of a [`Tpm`], from configuration or built in code.
#[derive(Clone)]
pub struct TpmOptions {
    /// TCTI configuration string, e.g. `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`.
    pub tcti: String,
    pub ek_template: EkTemplate,
    pub owner_auth: Option<Zeroizing<Vec<u8>>>,
    pub endorsement_auth: Option<Zeroizing<Vec<u8>>>,
    pub identity_handle: u32,
    /// Bound of every TPM operation (`TpmConn::set_command_timeout`; key generation gets
    /// twelve times as much).
    pub command_timeout: Duration,
}

impl std::fmt::Debug for TpmOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmOptions")
            .field("tcti", &self.tcti)
            .field("ek_template", &self.ek_template)
            .field("owner_auth", &self.owner_auth.as_ref().map(|_| "<set>"))
            .field("endorsement_auth", &self.endorsement_auth.as_ref().map(|_| "<set>"))
            .field("identity_handle", &format_args!("0x{:08x}", self.identity_handle))
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl TpmOptions {
    /// Defaults for `tcti`: SDK EK template, empty hierarchy auth, identity key at 0x81000100.
    pub fn new(tcti: impl Into<String>) -> Self {
        TpmOptions {
            tcti: tcti.into(),
            ek_template: EkTemplate::Sdk,
            owner_auth: None,
            endorsement_auth: None,
            identity_handle: IDENTITY_HANDLE,
            command_timeout: crate::conn::DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Read the `[tpm]` section (keys: `tcti`, `ek_template`, `owner_auth`/`owner_auth_file`,
    /// `endorsement_auth`/`endorsement_auth_file`, `identity_handle`, `command_timeout`).
    pub fn from_section(section: &Section) -> Result<Self> {
        let p: Params = section.parse()?;
        let auth = |key: &'static str,
                    value: Option<Zeroizing<String>>,
                    file_key: &'static str,
                    file: Option<PathBuf>|
         -> Result<Option<Zeroizing<Vec<u8>>>> {
            match (value, file) {
                (Some(_), Some(_)) => Err(section.error(key, format!("give {key} or {file_key}, not both"))),
                (Some(v), None) => parse_auth(key, &v)
                    .map(Some)
                    .map_err(|e| section.error(key, e.to_string())),
                (None, Some(path)) => {
                    let path = section.path(&path);
                    let text = Zeroizing::new(
                        hsm_core::fs::read_bounded_string("read authorization file", &path, hsm_core::fs::SECRET_MAX)
                            .map_err(|e| section.error(file_key, e.to_string()))?,
                    );
                    parse_auth(file_key, text.trim_end_matches(['\n', '\r']))
                        .map(Some)
                        .map_err(|e| section.error(file_key, e.to_string()))
                }
                (None, None) => Ok(None),
            }
        };
        let identity_handle = match &p.identity_handle {
            None => IDENTITY_HANDLE,
            Some(HandleValue::Int(i)) => u32::try_from(*i)
                .map_err(|_| section.error("identity_handle", format!("{i} is out of range")))
                .and_then(|v| {
                    parse_handle("identity_handle", &v.to_string())
                        .map_err(|e| section.error("identity_handle", e.to_string()))
                })?,
            Some(HandleValue::Str(s)) => {
                parse_handle("identity_handle", s).map_err(|e| section.error("identity_handle", e.to_string()))?
            }
        };
        let command_timeout = match &p.command_timeout {
            None => crate::conn::DEFAULT_COMMAND_TIMEOUT,
            Some(t) => t.duration().map_err(|e| section.error("command_timeout", e))?,
        };
        if [EK_HANDLE, SRK_HANDLE].contains(&identity_handle) {
            return Err(section.error("identity_handle", "must differ from the EK and SRK handles"));
        }
        let tcti = p.tcti.unwrap_or_else(crate::conn::default_tcti);
        if tcti.trim().is_empty() {
            return Err(section.error("tcti", "must not be empty"));
        }
        Ok(TpmOptions {
            tcti,
            ek_template: p.ek_template.unwrap_or_default(),
            owner_auth: auth("owner_auth", p.owner_auth, "owner_auth_file", p.owner_auth_file)?,
            endorsement_auth: auth(
                "endorsement_auth",
                p.endorsement_auth,
                "endorsement_auth_file",
                p.endorsement_auth_file,
            )?,
            identity_handle,
            command_timeout,
        })
    }
}

/// Which keys [`Tpm::open`] had to create (a provisioned TPM needs none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeysCreated {
    pub ek: bool,
    pub srk: bool,
}

/// A TPM identity in the SDK's sense: EK, SRK and the DPS identity key.
pub struct Tpm {
    conn: Arc<TpmConn>,
    ek_template: EkTemplate,
    identity_handle: u32,
    ek: Vec<u8>,
    srk: Vec<u8>,
    created: KeysCreated,
    fail_after: Option<ActivationStep>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("tcti", &self.conn.tcti())
            .field("identity_handle", &format_args!("0x{:08x}", self.identity_handle))
            .finish_non_exhaustive()
    }
}

fn password<T>(s: &mut Session, f: impl FnOnce(&mut tss_esapi::Context) -> T) -> T {
    s.ctx.execute_with_session(Some(AuthSession::Password), f)
}

fn persistent_handle(h: u32) -> Result<Persistent> {
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

impl Tpm {
    /// Open from the `[tpm]` configuration section.
    pub fn from_section(section: &Section) -> Result<Self> {
        Self::open(TpmOptions::from_section(section)?)
    }

    /// Connect, and make sure the EK and the SRK exist at their persistent handles.
    pub fn open(opts: TpmOptions) -> Result<Self> {
        let conn = TpmConn::connect(
            &opts.tcti,
            HierarchyAuth {
                owner: opts.owner_auth.clone(),
                endorsement: opts.endorsement_auth.clone(),
            },
            opts.command_timeout,
        )?;
        let ek_public = templates::ek_template(opts.ek_template)?;
        let srk_public = templates::srk_template()?;
        let identity_handle = opts.identity_handle;
        let ((ek, ek_created), (srk, srk_created)) = conn.with_keygen(move |s| {
            let ek = ensure_primary(
                s,
                EK_HANDLE,
                Hierarchy::Endorsement,
                ek_public.clone(),
                "endorsement key",
            )?;
            let srk = ensure_primary(s, SRK_HANDLE, Hierarchy::Owner, srk_public.clone(), "storage root key")?;
            tidy_staged_identity(s, identity_handle)?;
            Ok((ek, srk))
        })?;
        Ok(Tpm {
            conn,
            ek_template: opts.ek_template,
            identity_handle: opts.identity_handle,
            ek,
            srk,
            created: KeysCreated {
                ek: ek_created,
                srk: srk_created,
            },
            fail_after: None,
        })
    }

    /// The shared connection (for keys on the same TPM).
    pub fn connection(&self) -> &Arc<TpmConn> {
        &self.conn
    }

    /// Which keys opening had to create.
    pub fn keys_created(&self) -> KeysCreated {
        self.created
    }

    /// The EK template used when the EK had to be created.
    pub fn ek_template(&self) -> EkTemplate {
        self.ek_template
    }

    /// The persistent handle of the identity key.
    pub fn identity_handle(&self) -> u32 {
        self.identity_handle
    }

    /// The registration id derived from the EK.
    pub fn registration_id(&self) -> String {
        crate::registration::registration_id(&self.ek)
    }

    /// Whether an identity key is persisted.
    pub fn has_identity_key(&self) -> Result<bool> {
        let h = self.identity_handle;
        self.conn.with(move |s| Ok(identity_object(s, h)?.is_some()))
    }

    /// Evict the identity key, if any.
    pub fn remove_identity_key(&self) -> Result<bool> {
        let h = self.identity_handle;
        self.conn.with(move |s| {
            let mut any = false;
            if staged_identity(s, h)?.is_some() {
                evict(s, staging_handle(h), "the staged identity key")?;
                any = true;
            }
            if s.persistent(h)?.is_some() {
                evict(s, h, "the identity key")?;
                any = true;
            }
            Ok(any)
        })
    }

    /// Make the next activation fail after `step` (tests of the key replacement order).
    #[cfg(feature = "testing")]
    pub fn fail_activation_after(&mut self, step: Option<ActivationStep>) {
        self.fail_after = step;
    }

    /// HMAC-SHA256 with the identity key.
    pub fn hmac(&self, data: &[u8]) -> Result<[u8; 32]> {
        let h = self.identity_handle;
        let len = data.len();
        let owned = data.to_vec();
        let short = self.conn.with(move |s| {
            let limit = s.input_buffer()?;
            if len > limit {
                return Ok(None);
            }
            let (_, key) = identity_object(s, h)?.ok_or_else(|| no_identity_key(h))?;
            let buffer =
                MaxBuffer::try_from(owned.clone()).map_err(|e| Error::invalid("data", format!("{len} bytes: {e}")))?;
            let digest = retry(|| password(s, |ctx| ctx.hmac(key, buffer.clone(), HashingAlgorithm::Sha256)))
                .map_err(|e| error::tpm(format!("TPM2_HMAC with the identity key 0x{h:08x}"), e))?;
            Ok(Some((digest, limit)))
        })?;
        let digest = match short {
            Some((d, _)) => d.value().to_vec(),
            None => self.hmac_sequence(data)?,
        };
        <[u8; 32]>::try_from(digest.as_slice())
            .map_err(|_| error::device("HMAC-SHA256", format!("the TPM returned {} bytes", digest.len())))
    }

    fn hmac_sequence(&self, data: &[u8]) -> Result<Vec<u8>> {
        let h = self.identity_handle;
        let (handle, limit) = self.conn.with(move |s| {
            let (handle, _) = identity_object(s, h)?.ok_or_else(|| no_identity_key(h))?;
            Ok((handle, s.input_buffer()?))
        })?;
        let tcti = self.conn.tcti().to_string();
        let data = data.to_vec();
        self.conn
            .without_context(move || crate::hmac_sequence::hmac_sha256_sequence(&tcti, handle, &data, limit))
    }

    fn activate(&self, blob: &ActivationBlob) -> Result<()> {
        let public = blob.identity_public()?;
        let (id_object, credential_secret, duplicate, import_secret) = blob.tpm_parts()?;
        let h = self.identity_handle;
        let fail_after = self.fail_after;
        self.conn.with(move |s| {
            let ek = s
                .persistent(EK_HANDLE)?
                .ok_or_else(|| error::device("activate", "the EK vanished from 0x81010001"))?;
            let srk = s
                .persistent(SRK_HANDLE)?
                .ok_or_else(|| error::device("activate", "the SRK vanished from 0x81000001"))?;
            let session = retry(|| {
                s.ctx.execute_without_session(|ctx| {
                    ctx.start_auth_session(
                        None,
                        None,
                        None,
                        SessionType::Policy,
                        SymmetricDefinition::Null,
                        HashingAlgorithm::Sha256,
                    )
                })
            })
            .map_err(|e| error::tpm("start the EK policy session", e))?
            .ok_or_else(|| error::device("start the EK policy session", "no session returned"))?;
            let inner = (|| {
                let policy =
                    PolicySession::try_from(session).map_err(|e| Error::Internal(format!("policy session: {e}")))?;
                retry(|| {
                    password(s, |ctx| {
                        ctx.policy_secret(
                            policy,
                            AuthHandle::Endorsement,
                            Nonce::default(),
                            Digest::default(),
                            Nonce::default(),
                            None,
                        )
                    })
                })
                .map_err(|e| error::tpm("PolicySecret(TPM_RH_ENDORSEMENT)", e))?;
                s.ctx
                    .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                        ctx.activate_credential(
                            KeyHandle::from(srk),
                            KeyHandle::from(ek),
                            id_object.clone(),
                            credential_secret.clone(),
                        )
                    })
                    .map_err(|e| error::tpm("ActivateCredential (the blob was not made for this EK and SRK?)", e))
            })();
            flush(s, ObjectHandle::from(tss_esapi::handles::SessionHandle::from(session)));
            let inner = inner?;
            let encryption_key = Data::try_from(inner.value().to_vec())
                .map_err(|e| error::device("ActivateCredential", format!("credential too long: {e}")))?;
            let private = retry(|| {
                password(s, |ctx| {
                    ctx.import(
                        srk,
                        Some(encryption_key.clone()),
                        public.clone(),
                        duplicate.clone(),
                        import_secret.clone(),
                        SymmetricDefinitionObject::AES_128_CFB,
                    )
                })
            })
            .map_err(|e| error::tpm("Import the identity key under the SRK", e))?;
            let loaded = retry(|| password(s, |ctx| ctx.load(KeyHandle::from(srk), private.clone(), public.clone())))
                .map_err(|e| error::tpm("Load the identity key", e))?;
            let loaded = ObjectHandle::from(loaded);
            let replaced = replace_identity_key(s, loaded, h, fail_after);
            flush(s, loaded);
            replaced
        })
    }
}

/// The persistent handle a new identity key is staged at during activation: the first of
/// `identity + 1`, `identity - 1`, `identity + 2` that is a persistent handle and not the EK's or
/// SRK's.
pub fn staging_handle(identity: u32) -> u32 {
    [
        identity.wrapping_add(1),
        identity.wrapping_sub(1),
        identity.wrapping_add(2),
    ]
    .into_iter()
    .find(|c| (0x8100_0000..=0x81ff_ffff).contains(c) && ![EK_HANDLE, SRK_HANDLE].contains(c))
    .unwrap_or(identity)
}

/// A step of `replace_identity_key` after which a test can make activation fail
/// ([`Tpm::fail_activation_after`], feature `testing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationStep {
    /// The new key is persisted at the staging handle.
    Staged,
    /// The old key at the identity handle is evicted.
    OldEvicted,
    /// The new key is persisted at the identity handle (the staging copy is still there).
    Persisted,
}

fn evict(s: &mut Session, handle: u32, what: &str) -> Result<()> {
    if let Some(obj) = s.persistent(handle)? {
        let p = persistent_handle(handle)?;
        retry(|| password(s, |ctx| ctx.evict_control(Provision::Owner, obj, p)))
            .map_err(|e| error::tpm(format!("evict {what} at 0x{handle:08x}"), e))?;
        s.forget(handle);
    }
    Ok(())
}

fn persist(s: &mut Session, loaded: ObjectHandle, handle: u32, what: &str) -> Result<()> {
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
fn replace_identity_key(
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
fn staged_identity(s: &mut Session, h: u32) -> Result<Option<ObjectHandle>> {
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
fn identity_object(s: &mut Session, h: u32) -> Result<Option<(u32, ObjectHandle)>> {
    if let Some(o) = staged_identity(s, h)? {
        return Ok(Some((staging_handle(h), o)));
    }
    Ok(s.persistent(h)?.map(|o| (h, o)))
}

/// At open: a staged identity key that equals the one at `h` (an activation stopped after
/// persisting it at `h`) is evicted; one that is the only or the newer key stays (it signs)
/// until the next activation puts a key at `h` again.
fn tidy_staged_identity(s: &mut Session, h: u32) -> Result<()> {
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

fn no_identity_key(h: u32) -> Error {
    Error::Device {
        origin: hsm_core::Origin::Tpm,
        op: "sign with the identity key".into(),
        rv: 0,
        message: format!("no identity key at 0x{h:08x}: activate one first (activate_identity_key)"),
    }
}

// Device access is serialized by the connection: an activation is one job of its worker, so a
// signature runs before or after it, never in between.
impl SasSigner for Tpm {
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.hmac(data).map(|d| d.to_vec())
    }
}

impl TpmIdentity for Tpm {
    fn endorsement_key(&self) -> Result<Vec<u8>> {
        Ok(self.ek.clone())
    }

    fn storage_root_key(&self) -> Result<Vec<u8>> {
        Ok(self.srk.clone())
    }

    fn activate_identity_key(&self, blob: &[u8]) -> Result<()> {
        let parsed = ActivationBlob::parse(blob)?;
        self.activate(&parsed)
    }
}

/// What `hsmctl tpm ek` prints: the persisted EK and the EK each template gives on this TPM.
#[derive(Debug, Clone)]
pub struct EkReport {
    /// The EK at 0x81010001, if any (`TPM2B_PUBLIC`).
    pub persisted: Option<Vec<u8>>,
    /// For each template, the EK it yields on this TPM (`TPM2B_PUBLIC`).
    pub candidates: Vec<(EkTemplate, Vec<u8>)>,
}

impl EkReport {
    /// The template the persisted EK was created from, if it is one of ours.
    pub fn matching_template(&self) -> Option<EkTemplate> {
        let p = self.persisted.as_ref()?;
        self.candidates.iter().find(|(_, c)| c == p).map(|(t, _)| *t)
    }
}

/// Recreate the EK from each template (transiently; nothing is persisted) and compare with
/// the persisted one. Needs the endorsement hierarchy's auth when it has one.
pub fn ek_report(conn: &TpmConn) -> Result<EkReport> {
    let mut templates_ = Vec::new();
    for t in EkTemplate::ALL {
        templates_.push((t, templates::ek_template(t)?));
    }
    conn.with_keygen(move |s| {
        let persisted = match s.persistent(EK_HANDLE)? {
            Some(h) => Some(templates::tpm2b_public(&read_public(s, h, "the persisted EK")?)?),
            None => None,
        };
        let mut candidates = Vec::new();
        for (t, public) in &templates_ {
            let created = retry(|| {
                password(s, |ctx| {
                    ctx.create_primary(Hierarchy::Endorsement, public.clone(), None, None, None, None)
                })
            })
            .map_err(|e| error::tpm(format!("create the EK from the {} template", t.name()), e))?;
            flush(s, ObjectHandle::from(created.key_handle));
            candidates.push((*t, templates::tpm2b_public(&created.out_public)?));
        }
        Ok(EkReport { persisted, candidates })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_and_auth_values() {
        assert_eq!(parse_handle("h", "0x81000200").unwrap(), 0x8100_0200);
        assert_eq!(parse_handle("h", "2164260864").unwrap(), 0x8100_0000);
        assert!(parse_handle("h", "0x80000001").is_err());
        assert!(parse_handle("h", "zz").is_err());
        assert_eq!(*parse_auth("a", "hex:0aff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(*parse_auth("a", "str:hex:").unwrap(), b"hex:".to_vec());
        assert_eq!(*parse_auth("a", "pw").unwrap(), b"pw".to_vec());
        assert!(parse_auth("a", "hex:0").is_err());
    }
}
