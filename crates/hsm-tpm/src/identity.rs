//! The SDK's TPM ("sastoken") attestation: EK, SRK, identity-key activation, HMAC signing.

use std::sync::Arc;

use hsm_core::config::Section;
use hsm_core::{Error, Result, SasSigner, TpmIdentity};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Data, Digest, MaxBuffer, Nonce, SymmetricDefinition, SymmetricDefinitionObject};

use crate::blob::ActivationBlob;
use crate::conn::TpmConn;
use crate::handles::{EK_HANDLE, SRK_HANDLE, staging_handle};
use crate::identity_key::{
    ActivationStep, evict, identity_object, no_identity_key, replace_identity_key, staged_identity,
    tidy_staged_identity,
};
use crate::objects::{ensure_primary, flush, password, read_public};
use crate::session::{HierarchyAuth, retry};
use crate::templates::EkTemplate;
use crate::tpm_options::TpmOptions;
use crate::{error, templates};

/// Which keys [`Tpm::open`] had to create (a provisioned TPM needs none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeysCreated {
    /// Whether the endorsement key was created (none was persisted at its handle).
    pub ek: bool,
    /// Whether the storage root key was created (none was persisted at its handle).
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
