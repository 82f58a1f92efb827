//! A token: found by its URI attributes, logged in once, used through a pool of sessions.
//!
//! A cryptoki `Session` is `Send` but not `Sync`: a thread takes a session out of the pool for
//! one operation and puts it back. The user is logged in once per token (PKCS#11 login state is
//! shared by all sessions of the process). Errors are recovered once per operation:
//! - `CKR_USER_NOT_LOGGED_IN`, `CKR_KEY_HANDLE_INVALID`, `CKR_OBJECT_HANDLE_INVALID`: log in
//!   again and find the objects again;
//! - `CKR_DEVICE_REMOVED`, `CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`,
//!   `CKR_TOKEN_NOT_PRESENT`, `CKR_TOKEN_NOT_RECOGNIZED`, `CKR_DEVICE_ERROR`,
//!   `CKR_GENERAL_ERROR`: drop every session, find the token again by its attributes, log in,
//!   find the objects again (a key that changed meanwhile is `CKR_KEY_CHANGED`, not used).
//!
//! When re-opening does not find the token either (or no token matched in the first place),
//! the module is re-initialized once ([`Module::reinitialize`]) and the token looked for again:
//! modules such as SoftHSM2 learn about tokens only in `C_Initialize`, so a token that went away
//! and came back is found again this way. Each operation re-initializes at most once, and a
//! module at most once per [`crate::module::DEFAULT_RESCAN_INTERVAL`] (settable); while the
//! token stays away every call fails quickly with an error naming the token. Sessions that a
//! re-initialization voided are forgotten, never closed (their handle numbers may already belong
//! to new sessions).
//!
//! Object creation ([`Token::run_rw`]: key generation, imports) holds the module to itself
//! ([`Module::exclusive`]): SoftHSM2 fails a key generation that overlaps an object search on
//! another thread. Logging in happens once per application: a token some other user of the
//! module already logged in is not logged in again.
//!
//! A wrong PIN is tried exactly once: the token remembers the rejection and refuses to log in
//! again with that PIN (a retry loop could lock the token).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::Slot;
use hsm_core::{Error, Result};
use zeroize::Zeroizing;

use crate::error::device;
use crate::module::{Entered, Module, module, resolve_module_path};
use crate::uri::Pkcs11Uri;

mod locate;
mod recovery;

use recovery::{Recovery, after_recovery, in_op, recovery, wrap};

/// A token and its session pool.
pub struct Token {
    module: Arc<Module>,
    /// Token attributes, module path and pin-source (no object, no pin-value).
    uri: Pkcs11Uri,
    pin: Option<Zeroizing<String>>,
    /// Its key in [`tokens`] (`None` for a URI with `pin-value`: a token of its own).
    key: Option<String>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("module", &self.module.path())
            .field("token", &self.uri.token_description())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// The module generation the sessions, slot and login below belong to.
    module_generation: u64,
    slot: Option<Slot>,
    /// Bumped whenever sessions or object handles become invalid.
    generation: u64,
    idle: Vec<Session>,
    logged_in: bool,
    pin_rejected: Option<String>,
    /// Mechanisms asked about (and whether the token offers them), for one generation.
    mechanisms: Option<(u64, Vec<(MechanismType, bool)>)>,
}

/// Tokens (by their key in [`tokens`]) whose PIN was rejected, with the reason: remembered after
/// the token itself is dropped, so a wrong PIN is not tried again (the token would lock).
fn rejected() -> &'static Mutex<HashMap<String, String>> {
    static REJECTED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    REJECTED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The tokens in use, shared by their users. Weak: when the last key, secret or tool using a
/// token is dropped, the token goes (its sessions closed, its PIN zeroized) and the next user
/// reads the PIN again.
fn tokens() -> &'static Mutex<HashMap<String, Weak<Token>>> {
    static TOKENS: OnceLock<Mutex<HashMap<String, Weak<Token>>>> = OnceLock::new();
    TOKENS.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Drop for Token {
    /// The pooled sessions are closed (`C_CloseSession`) only while no re-initialization can
    /// run, and only those of the module's current generation: a session of an earlier one is
    /// void, and its handle number may belong to another token's session by now. Closing one
    /// in the middle of another thread's `C_Finalize` crashed SoftHSM2 now and then. When the
    /// module is busy (a re-initialization or an exclusive user holds it, or waits for it)
    /// the sessions are forgotten rather than closed: waiting here could deadlock a thread that
    /// already holds the gate, and the module releases them at its next re-initialization.
    fn drop(&mut self) {
        let idle = match self.state.get_mut() {
            Ok(state) => std::mem::take(&mut state.idle),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().idle),
        };
        let module_generation = match self.state.get_mut() {
            Ok(state) => state.module_generation,
            Err(poisoned) => poisoned.into_inner().module_generation,
        };
        match self.module.try_enter() {
            Some(entered) if *entered == module_generation => drop(idle),
            _ => idle.into_iter().for_each(std::mem::forget),
        }
    }
}

impl Token {
    /// The token a URI names, shared by every user in the process with the same token
    /// attributes, module and pin-source, for as long as one of them holds it. `default_module` applies when the URI names none; a
    /// URI with `pin-value` gets a token object of its own.
    pub fn open(uri: &Pkcs11Uri, default_module: Option<&Path>) -> Result<Arc<Token>> {
        let module_path = resolve_module_path(uri, default_module)?;
        let module = module(&module_path)?;
        let mut token_uri = uri.token_part();
        token_uri.module_name = None;
        // The path as configured (not the resolved symlink): it goes into alias-key tokens.
        token_uri.module_path = Some(module_path);
        let make = |pin, key: Option<String>| {
            let pin_rejected = key
                .as_ref()
                .and_then(|k| rejected().lock().ok().and_then(|r| r.get(k).cloned()));
            Arc::new(Token {
                module: module.clone(),
                uri: token_uri.clone(),
                pin,
                key,
                state: Mutex::new(State {
                    pin_rejected,
                    ..State::default()
                }),
            })
        };
        if uri.pin_value.is_some() {
            return Ok(make(uri.read_pin()?, None));
        }
        let key = token_uri.to_token_string();
        let mut map = tokens()
            .lock()
            .map_err(|_| Error::Internal("PKCS#11 token registry lock poisoned".into()))?;
        if let Some(t) = map.get(&key).and_then(Weak::upgrade) {
            return Ok(t);
        }
        map.retain(|_, t| t.strong_count() > 0);
        let t = make(uri.read_pin()?, Some(key.clone()));
        map.insert(key, Arc::downgrade(&t));
        Ok(t)
    }

    /// The module the token is on.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    /// Whether the token has a PIN to log in with.
    pub(crate) fn has_pin(&self) -> bool {
        self.pin.is_some()
    }

    /// The token attributes and module as a URI (no object, no PIN).
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::Internal("PKCS#11 token state lock poisoned".into()))
    }

    /// The slot holding the token: exactly one token must match the URI's attributes. (No
    /// recovery here: [`Token::run`] finds the token again when it went away.)
    pub fn find_slot(&self) -> Result<Slot> {
        let _entered = self.module.enter()?;
        self.locate()
    }

    /// Bring the state up to the module generation `entered`: after a re-initialization every
    /// pooled session is void (forgotten, not closed: its handle number may belong to a new
    /// session by now), and the slot, login and object handles must be found again.
    fn sync(&self, state: &mut State, module_generation: u64) {
        if state.module_generation == module_generation {
            return;
        }
        for stale in state.idle.drain(..) {
            std::mem::forget(stale);
        }
        state.module_generation = module_generation;
        state.generation += 1;
        state.slot = None;
        state.logged_in = false;
        state.mechanisms = None;
    }

    /// The slot of the token (found again after a reset or re-initialization).
    fn slot_locked(&self, state: &mut State) -> Result<Slot> {
        match state.slot {
            Some(s) => Ok(s),
            None => {
                let s = self.locate()?;
                state.slot = Some(s);
                Ok(s)
            }
        }
    }

    /// A session from the pool, or a new one (finding the token and logging in as needed).
    /// The caller holds the module's gate (read or write) at `module_generation`.
    fn checkout(&self, module_generation: u64) -> Result<(Session, u64)> {
        let mut state = self.lock()?;
        self.sync(&mut state, module_generation);
        if let Some(s) = state.idle.pop() {
            return Ok((s, state.generation));
        }
        let slot = self.slot_locked(&mut state)?;
        let session = self
            .module
            .context()
            .open_ro_session(slot)
            .map_err(|e| device("C_OpenSession", e))?;
        if !state.logged_in {
            self.login_locked(&mut state, &session)?;
        }
        Ok((session, state.generation))
    }

    /// Return a session to the pool (called under the same hold of the module gate as the
    /// checkout, so the session is valid; a session of an older token generation is closed).
    fn checkin(&self, session: Session, generation: u64) {
        if let Ok(mut state) = self.lock() {
            if state.generation == generation {
                state.idle.push(session);
            }
        }
    }

    /// Log in again after the login was lost. Cached object handles of generation `seen` are
    /// stale. Whatever other threads did meanwhile (another relogin, a reset), the login is
    /// checked on `session` itself and made when it is missing.
    fn relogin(&self, session: &Session, seen: u64) -> Result<()> {
        let mut state = self.lock()?;
        if state.generation == seen {
            state.generation += 1;
        }
        state.logged_in = false;
        self.login_locked(&mut state, session)
    }

    fn reset(&self, seen: u64) -> Result<()> {
        let mut state = self.lock()?;
        if state.generation != seen {
            return Ok(());
        }
        tracing::warn!(token = %self.uri.token_description(), "PKCS#11 token went away; re-opening it");
        state.generation += 1;
        state.idle.clear();
        state.slot = None;
        state.logged_in = false;
        state.mechanisms = None;
        Ok(())
    }

    /// Re-initialize the module once per operation, where this backend may (a module it
    /// initialized), and enter it again. `entered` is released first: the re-initialization
    /// waits for every other operation on the module to finish.
    fn rescan<'m>(&'m self, op: &str, entered: Entered<'m>, rescanned: &mut bool) -> Result<Entered<'m>> {
        if *rescanned || !self.module.can_reinitialize() {
            return Ok(entered);
        }
        *rescanned = true;
        let seen = *entered;
        drop(entered);
        if !self.module.reinitialize(seen).map_err(|e| after_recovery(op, e))? {
            tracing::info!(module = %self.module.path().display(), "PKCS#11: re-initialized too recently; not again yet");
        }
        self.module.enter()
    }

    /// Forget the lost token's sessions and slot, and look for it anew ([`Token::rescan`]): a
    /// module that lists tokens only at `C_Initialize` may still show the lost token, or not
    /// yet show it back.
    fn reopen<'m>(
        &'m self,
        op: &str,
        entered: Entered<'m>,
        generation: u64,
        rescanned: &mut bool,
    ) -> Result<Entered<'m>> {
        self.reset(generation)?;
        self.rescan(op, entered, rescanned)
    }

    /// Run `f` on a pooled session. `f` gets the session and the handle generation: object
    /// handles cached under another generation are stale and must be found again. Recovers
    /// once from a lost login, once from a lost token and, when the token cannot be found
    /// again, re-initializes the module once (see the module documentation).
    pub fn run<T>(&self, op: &str, f: impl Fn(&Session, u64) -> Result<T>) -> Result<T> {
        let mut entered = self.module.enter()?;
        let mut current = self.checkout(*entered);
        let mut relogged = false;
        let mut reopened = false;
        let mut rescanned = false;
        loop {
            let (session, generation) = match current {
                Ok(s) => s,
                Err(e) => {
                    if !rescanned && self.module.can_reinitialize() && matches!(recovery(&e), Recovery::Reopen) {
                        tracing::info!(op, error = %e, "PKCS#11: token not found; looking for it again");
                        entered = self.rescan(op, entered, &mut rescanned)?;
                        current = self.checkout(*entered);
                        continue;
                    }
                    return Err(if reopened {
                        after_recovery(op, e)
                    } else {
                        wrap(op, e, "the token is not available")
                    });
                }
            };
            let err = match f(&session, generation) {
                Ok(v) => {
                    self.checkin(session, generation);
                    return Ok(v);
                }
                Err(e) => e,
            };
            match recovery(&err) {
                Recovery::Relogin if !relogged && !reopened => {
                    relogged = true;
                    tracing::info!(op, error = %err, "PKCS#11: logging in again");
                    match self.relogin(&session, generation) {
                        Ok(()) => current = Ok((session, self.lock()?.generation)),
                        // A lost token also shows up here (the login cannot read it).
                        Err(e) if matches!(recovery(&e), Recovery::Reopen) => {
                            reopened = true;
                            drop(session);
                            entered = self.reopen(op, entered, generation, &mut rescanned)?;
                            current = self.checkout(*entered);
                        }
                        Err(e) => return Err(after_recovery(op, e)),
                    }
                }
                Recovery::Reopen if !reopened => {
                    reopened = true;
                    tracing::info!(op, error = %err, "PKCS#11: re-opening the token");
                    drop(session);
                    entered = self.reopen(op, entered, generation, &mut rescanned)?;
                    current = self.checkout(*entered);
                }
                Recovery::None => {
                    self.checkin(session, generation);
                    return Err(in_op(op, err, None));
                }
                _ => return Err(after_recovery(op, err)),
            }
        }
    }

    /// Run `f` on a fresh read-write session (for the tools: key generation, imports). Other
    /// operations on the module wait meanwhile (an RSA-4096 generation can take seconds).
    pub fn run_rw<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        // Find the token (re-initializing the module if it must) before taking a session.
        self.run("find token", |_, _| Ok(()))?;
        // The module to this thread alone while objects are created (see Module::exclusive).
        let exclusive = self.module.exclusive()?;
        // A pooled session holds the login while the read-write session works (closing the
        // last session of a token logs the application out).
        let (pooled, generation) = self.checkout(*exclusive)?;
        let slot = self
            .lock()?
            .slot
            .ok_or_else(|| Error::Internal("token without a slot after checkout".into()))?;
        let session = self
            .module
            .context()
            .open_rw_session(slot)
            .map_err(|e| device("C_OpenSession (read-write)", e))?;
        if is_public_session(&session) && self.pin.is_some() {
            let mut state = self.lock()?;
            self.login_locked(&mut state, &session)?;
        }
        let out = f(&session);
        drop(session);
        self.checkin(pooled, generation);
        out
    }

    /// What the token says about `mechanism` (`C_GetMechanismInfo`: key sizes, flags).
    pub(crate) fn mechanism_info(&self, mechanism: MechanismType) -> Result<cryptoki::mechanism::MechanismInfo> {
        let _entered = self.module.enter()?;
        let slot = self.locate()?;
        self.module
            .context()
            .get_mechanism_info(slot, mechanism)
            .map_err(|e| device(format!("C_GetMechanismInfo ({mechanism})"), e))
    }

    /// Whether the token offers `mechanism` (cached).
    ///
    /// Asks `C_GetMechanismInfo` about this one mechanism rather than reading the whole
    /// `C_GetMechanismList`: cryptoki logs every vendor-defined mechanism of a list it cannot
    /// name as an error, and a token's vendor mechanisms are no error of ours.
    pub(crate) fn has_mechanism(&self, mechanism: MechanismType) -> Result<bool> {
        let entered = self.module.enter()?;
        let mut state = self.lock()?;
        self.sync(&mut state, *entered);
        let generation = state.generation;
        if let Some((g, known)) = &state.mechanisms {
            if *g == generation {
                if let Some((_, offered)) = known.iter().find(|(m, _)| *m == mechanism) {
                    return Ok(*offered);
                }
            }
        }
        let slot = self.slot_locked(&mut state)?;
        let offered = match self.module.context().get_mechanism_info(slot, mechanism) {
            Ok(_) => true,
            Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => false,
            Err(e) => return Err(device("C_GetMechanismInfo", e)),
        };
        match &mut state.mechanisms {
            Some((g, known)) if *g == generation => known.push((mechanism, offered)),
            other => *other = Some((generation, vec![(mechanism, offered)])),
        }
        Ok(offered)
    }
}

/// Whether `session` is not logged in.
pub(crate) fn is_public_session(session: &Session) -> bool {
    session
        .get_session_info()
        .map(|i| matches!(i.session_state(), SessionState::RoPublic | SessionState::RwPublic))
        .unwrap_or(false)
}
