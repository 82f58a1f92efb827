//! The issued-identity store: a directory with `state.toml` naming the current generation
//! (key token + chain file), a pending one (a key whose certificate is being requested) and a
//! retired one (the last identity known to work, kept until the current one was used once).
//!
//! Every change of the state is one write of a temp file, fsync, rename over `state.toml` and
//! fsync of the directory: a crash leaves either the old or the new state, and each state
//! names only keys and chains that exist. Keys and chains not named by the state are
//! leftovers of a crash and are removed by the next operation that would reuse their names.
//!
//! For tests, `HSM_ISSUED_CRASH_AT=<step>` aborts the process (no unwinding, no destructors,
//! like a kill -9) at one of the [`STEPS`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hsm_core::{Error, OpenSigner, Result, SigningKey, pem};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::chain::verify_chain;
use crate::files::{remove_file, write_new};
use crate::keys::KeySource;

/// The state file in the store directory.
pub(crate) const STATE_FILE: &str = "state.toml";
/// The environment variable naming the step at which to abort (tests).
pub const CRASH_ENV: &str = "HSM_ISSUED_CRASH_AT";
/// The steps at which [`CRASH_ENV`] can abort, in the order a renewal passes them.
pub const STEPS: &[&str] = &[
    "key-generated",
    "pending-saved",
    "chain-written",
    "certificate-stored",
    "switched",
    "replaced-removed",
    "retired-removed",
];

fn crash_point(step: &str) {
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == step) {
        tracing::warn!("{CRASH_ENV}={step}: aborting");
        std::process::abort();
    }
}

/// One generation: its key token and, once issued, its chain file (relative to the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// The generation's number (increasing; it names its key and chain).
    pub generation: u64,
    /// The key token of the generation's key.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The chain file, once the certificate was issued.
    pub chain: Option<String>,
}

/// The content of `state.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The generation in use.
    pub current: Option<Generation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The generation whose certificate is being requested.
    pub pending: Option<Generation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The last identity known to work, kept until the current one was used once.
    pub retired: Option<Generation>,
}

impl State {
    fn last_generation(&self) -> u64 {
        [&self.current, &self.pending, &self.retired]
            .iter()
            .filter_map(|g| g.as_ref().map(|g| g.generation))
            .max()
            .unwrap_or(0)
    }
}

/// Replace `path` atomically: temp file, fsync, rename, fsync of the directory.
fn replace_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal(format!("{} has no directory", path.display())))?;
    let tmp = path.with_extension("tmp");
    remove_file(&tmp)?;
    write_new(&tmp, data, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// An issued-identity store: the directory, the registration id and where keys are made.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    registration_id: String,
    keys: KeySource,
    /// Opens the key of a generation from its token (`hsm::open_signer`).
    open_signer: OpenSigner,
    _hold: Option<crate::keys::Hold>,
}

impl Store {
    /// Open (creating the directory, mode 0700, when missing) the store at `dir`; new keys are
    /// made by `keys`, and every key the state names is opened with `open_signer` (the
    /// registry's `hsm::open_signer`, which resolves every kind of key token).
    pub fn open(dir: &Path, registration_id: &str, keys: KeySource, open_signer: OpenSigner) -> Result<Self> {
        if registration_id.is_empty() {
            return Err(Error::invalid("registration id", "must not be empty"));
        }
        if !dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("create issued-identity store", dir, e))?;
        }
        let dir = std::path::absolute(dir).map_err(|e| Error::io("resolve store directory", dir, e))?;
        Ok(Store {
            dir,
            registration_id: registration_id.to_string(),
            _hold: keys.hold()?,
            keys,
            open_signer,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registration id the store's identities are issued to.
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }

    /// The state on disk (empty when nothing was ever requested).
    pub fn state(&self) -> Result<State> {
        let path = self.dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(State::default());
        }
        let text = hsm_core::fs::read_bounded_string("read issued-identity state", &path, hsm_core::fs::CONFIG_MAX)?;
        toml::from_str(&text).map_err(|e| {
            Error::parse(
                format!("issued-identity state {}", path.display()),
                hsm_core::redact::toml_error(&text, &e),
            )
        })
    }

    fn save(&self, state: &State) -> Result<()> {
        let text = toml::to_string(state).map_err(|e| Error::Internal(format!("serialize state: {e}")))?;
        replace_file(&self.dir.join(STATE_FILE), text.as_bytes(), 0o600)
    }

    fn chain_path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The chain of a generation, leaf first.
    pub fn read_chain(&self, g: &Generation) -> Result<Vec<CertificateDer<'static>>> {
        let name = g
            .chain
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("generation {} has no chain yet", g.generation)))?;
        let path = self.chain_path(name);
        pem::parse_certificates(
            &format!("certificate chain {}", path.display()),
            &pem::read_file("read certificate chain", &path)?,
        )
    }

    /// Start a request: a new key (a new generation) recorded as pending; returns the DER CSR
    /// with CN = the registration id. A pending key of an earlier unfinished request is
    /// dropped first (a new request always has a new key); the current identity is untouched.
    pub fn begin(&self) -> Result<Vec<u8>> {
        let mut state = self.state()?;
        // Generation numbers are never reused: a leftover of a crash has a number of its own.
        let generation = state.last_generation() + 1;
        if let Some(old) = state.pending.take() {
            self.save(&state)?;
            self.remove_generation(&old)?;
        }
        self.sweep(&state)?;
        let key = self.keys.generate(&self.dir, &self.registration_id, generation)?;
        crash_point("key-generated");
        let signer = (self.open_signer)(&key)?;
        state.pending = Some(Generation {
            generation,
            key,
            chain: None,
        });
        self.save(&state)?;
        crash_point("pending-saved");
        crate::csr::csr_der(signer.as_ref(), &self.registration_id)
    }

    /// Install the chain the service issued for the pending key: verified (leaf public key is
    /// the pending key's, CN is the registration id, each certificate signed by the next),
    /// stored (chain file; PKCS#11: the leaf as a token object with the key's id), then made
    /// current in one rename. The identity it replaces stays as the retired one (the last known
    /// to work) until [`Store::confirm`]. A chain that fails verification changes nothing.
    pub fn install(&self, chain: &[CertificateDer<'_>]) -> Result<Generation> {
        let mut state = self.state()?;
        let pending = state.pending.clone().ok_or_else(no_pending)?;
        let signer = (self.open_signer)(&pending.key)?;
        verify_chain(chain, signer.as_ref(), &self.registration_id)?;
        let chain_name = self.chain_name(pending.generation);
        let path = self.chain_path(&chain_name);
        remove_file(&path)?;
        write_new(&path, pem::certificates_to_pem(chain).as_bytes(), 0o644)?;
        crash_point("chain-written");
        if let Some(leaf) = chain.first() {
            self.keys.store_certificate(&pending.key, leaf.as_ref())?;
        }
        crash_point("certificate-stored");
        let new = Generation {
            chain: Some(chain_name),
            ..pending
        };
        // The retired identity is the last one known to work: an unconfirmed current one
        // is replaced, a confirmed one becomes the retired one.
        let replaced = match state.retired {
            Some(_) => state.current.take(),
            None => {
                state.retired = state.current.take();
                None
            }
        };
        state.current = Some(new.clone());
        state.pending = None;
        self.save(&state)?;
        crash_point("switched");
        if let Some(old) = replaced {
            self.remove_generation(&old)?;
        }
        crash_point("replaced-removed");
        Ok(new)
    }

    /// The current identity was used successfully (a TLS connection with it): the retired
    /// one is deleted (key, chain, token objects).
    pub fn confirm(&self) -> Result<()> {
        let mut state = self.state()?;
        if state.current.is_none() {
            return Err(Error::NotConfigured("no certificate has been issued yet".into()));
        }
        // The current chain is unusable and the retired identity was served instead
        // ([`Store::current`]): that one was used and works: it becomes current again.
        if let (Some(current), Some(retired)) = (state.current.clone(), state.retired.clone()) {
            if self.open_current(&current).is_err() && self.open_retired(&retired).is_ok() {
                tracing::warn!(
                    "issued identity {}: generation {} is current again; the unusable generation {} is removed",
                    self.dir.display(),
                    retired.generation,
                    current.generation
                );
                state.current = Some(retired);
                state.retired = None;
                self.save(&state)?;
                self.remove_generation(&current)?;
                return self.sweep(&state);
            }
        }
        if let Some(old) = state.retired.clone() {
            self.remove_generation(&old)?;
            crash_point("retired-removed");
            state.retired = None;
            self.save(&state)?;
        }
        self.sweep(&state)
    }

    /// The current identity does not work (the hub refused it): go back to the retired one
    /// and delete the current one. Without a retired identity nothing changes.
    pub fn roll_back(&self) -> Result<bool> {
        let mut state = self.state()?;
        let Some(retired) = state.retired.take() else {
            return Ok(false);
        };
        // Only back to an identity that still opens (a crash during `confirm` may have
        // deleted its key already).
        self.read_chain(&retired)?;
        (self.open_signer)(&retired.key)?;
        let failed = state.current.replace(retired);
        self.save(&state)?;
        if let Some(failed) = failed {
            self.remove_generation(&failed)?;
        }
        Ok(true)
    }

    fn remove_generation(&self, g: &Generation) -> Result<()> {
        crate::keys::remove_key(&g.key)?;
        if let Some(chain) = &g.chain {
            remove_file(&self.chain_path(chain))?;
        }
        // A chain written before a crash, not yet named by the state.
        remove_file(&self.chain_path(&self.chain_name(g.generation)))
    }

    /// Remove what a crash left behind: keys and chain files of generations the state does
    /// not name (never the current, pending or retired one).
    fn sweep(&self, state: &State) -> Result<()> {
        let named: Vec<u64> = [&state.current, &state.pending, &state.retired]
            .iter()
            .filter_map(|g| g.as_ref().map(|g| g.generation))
            .collect();
        let last = state.last_generation();
        let mut found = self.keys.generations(&self.dir, &self.registration_id, last)?;
        let prefix = format!("{}-", KeySource::name(&self.registration_id, 0).trim_end_matches("-0"));
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list the store", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list the store", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            found.extend(
                name.strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(".chain.pem"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|n| *n <= last),
            );
        }
        found.sort_unstable();
        found.dedup();
        for generation in found.into_iter().filter(|g| !named.contains(g)) {
            tracing::info!(generation, "issued identity: removing a leftover generation");
            self.keys.remove(&self.dir, &self.registration_id, generation)?;
            remove_file(&self.chain_path(&self.chain_name(generation)))?;
        }
        Ok(())
    }

    fn chain_name(&self, generation: u64) -> String {
        format!("{}.chain.pem", KeySource::name(&self.registration_id, generation))
    }

    /// The current generation, its chain and its signer. When the current chain cannot be
    /// read (a corrupted or missing file) and the retired generation, kept until the current
    /// one is confirmed, is still valid, that one is served instead, with a warning; the next
    /// [`Store::confirm`] makes it current again.
    pub fn current(&self) -> Result<(Generation, Vec<CertificateDer<'static>>, Arc<dyn SigningKey>)> {
        let state = self.state()?;
        let g = state.current.ok_or_else(|| {
            Error::NotConfigured(format!(
                "no certificate has been issued into {} yet (hsmctl certificate request)",
                self.dir.display()
            ))
        })?;
        let broken = match self.open_current(&g) {
            Ok((chain, signer)) => return Ok((g, chain, signer)),
            Err(e) => e,
        };
        let Some(retired) = state.retired else {
            return Err(broken);
        };
        match self.open_retired(&retired) {
            Ok((chain, signer)) => {
                tracing::warn!(
                    "issued identity {}: the current certificate chain (generation {}) is unusable: {broken}; \
                     using the previous generation {}, still valid, until the next renewal",
                    self.dir.display(),
                    g.generation,
                    retired.generation
                );
                Ok((retired, chain, signer))
            }
            Err(e) => {
                tracing::warn!(
                    generation = retired.generation,
                    "the previous issued identity is not usable either: {e}"
                );
                Err(broken)
            }
        }
    }

    /// The chain and the signer of the current generation, the leaf for the key.
    fn open_current(&self, g: &Generation) -> Result<(Vec<CertificateDer<'static>>, Arc<dyn SigningKey>)> {
        let chain = self.read_chain(g)?;
        let signer = (self.open_signer)(&g.key)?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::parse("issued certificate chain", "the chain is empty"))?;
        if hsm_core::pem::public_key_spki(leaf)? != signer.public_key_spki()? {
            return Err(Error::parse(
                "issued certificate chain",
                format!("the leaf of generation {} is for another key", g.generation),
            ));
        }
        Ok((chain, signer))
    }

    /// The retired generation as a fallback: fully verified, valid now.
    fn open_retired(&self, g: &Generation) -> Result<(Vec<CertificateDer<'static>>, Arc<dyn SigningKey>)> {
        let chain = self.read_chain(g)?;
        let signer = (self.open_signer)(&g.key)?;
        verify_chain(&chain, signer.as_ref(), &self.registration_id)?;
        Ok((chain, signer))
    }
}

fn no_pending() -> Error {
    Error::NotConfigured("no certificate request is pending (hsmctl certificate request makes one)".into())
}
