//! Finding the token by its URI attributes (library, slot and token), and logging in on it once.

use std::path::Path;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use cryptoki_sys as sys;
use hsm_core::{Error, Origin, Result};

use super::{State, Token, rejected};
use crate::error::device;

impl Token {
    /// [`Token::find_slot`] for callers that hold [`Module::enter`].
    pub(super) fn locate(&self) -> Result<Slot> {
        let ctx = self.module.context();
        let no_token = |why: String| Error::Device {
            origin: Origin::Pkcs11,
            op: "find token".into(),
            rv: sys::CKR_TOKEN_NOT_PRESENT,
            message: format!(
                "no token matches `{}` in module {}: {why}",
                self.uri.token_description(),
                self.module.path().display()
            ),
        };
        // RFC 7512: a path attribute the consumer does not understand makes the URI match nothing.
        if let Some((name, _)) = self.uri.vendor_path.first() {
            return Err(no_token(format!(
                "the vendor-specific attribute `{name}` is not understood here, and RFC 7512 has such a URI \
                 match no token"
            )));
        }
        let matches = |want: &Option<String>, have: &str| want.as_ref().is_none_or(|w| w.trim_end() == have.trim_end());
        let uri = &self.uri;
        if uri.library_manufacturer.is_some() || uri.library_description.is_some() || uri.library_version.is_some() {
            let info = ctx.get_library_info().map_err(|e| device("C_GetInfo", e))?;
            let version = info.library_version();
            if !matches(&uri.library_manufacturer, info.manufacturer_id())
                || !matches(&uri.library_description, info.library_description())
                || uri
                    .library_version
                    .is_some_and(|v| v != (version.major(), version.minor()))
            {
                return Err(no_token(format!(
                    "the library is `{}` by `{}`, version {}.{}",
                    info.library_description().trim_end(),
                    info.manufacturer_id().trim_end(),
                    version.major(),
                    version.minor()
                )));
            }
        }
        let slots = ctx.get_slots_with_token().map_err(|e| device("C_GetSlotList", e))?;
        let mut found = Vec::new();
        for slot in slots {
            if uri.slot_id.is_some_and(|id| id != slot.id()) {
                continue;
            }
            if uri.slot_description.is_some() || uri.slot_manufacturer.is_some() {
                let info = ctx.get_slot_info(slot).map_err(|e| device("C_GetSlotInfo", e))?;
                if !matches(&uri.slot_description, info.slot_description())
                    || !matches(&uri.slot_manufacturer, info.manufacturer_id())
                {
                    continue;
                }
            }
            let info = match ctx.get_token_info(slot) {
                Ok(i) => i,
                Err(CkError::Pkcs11(RvError::TokenNotPresent | RvError::TokenNotRecognized, _)) => continue,
                Err(e) => return Err(device("C_GetTokenInfo", e)),
            };
            if matches(&self.uri.token, info.label())
                && matches(&self.uri.manufacturer, info.manufacturer_id())
                && matches(&self.uri.serial, info.serial_number())
                && matches(&self.uri.model, info.model())
            {
                found.push((slot, info.label().trim_end().to_string()));
            }
        }
        match found.len() {
            1 => Ok(found[0].0),
            0 => Err(no_token(format!(
                "no slot and token with these attributes{}",
                softhsm_hint(self.module.path())
            ))),
            n => Err(Error::invalid(
                "PKCS#11 URI",
                format!(
                    "{n} tokens match `{}` (labels: {}); add `token`, `serial` or `slot-id` to choose one",
                    self.uri.token_description(),
                    found.iter().map(|f| f.1.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Log in on `session` (once per token); `CKR_USER_ALREADY_LOGGED_IN` counts as success.
    pub(super) fn login_locked(&self, state: &mut State, session: &Session) -> Result<()> {
        if let Some(reason) = &state.pin_rejected {
            return Err(Error::Device {
                origin: Origin::Pkcs11,
                op: "C_Login".into(),
                rv: sys::CKR_PIN_INCORRECT,
                message: format!(
                    "{reason}; not trying that PIN again so the token does not lock (fix the PIN and restart)"
                ),
            });
        }
        let slot = self.slot_locked(state)?;
        let info = self
            .module
            .context()
            .get_token_info(slot)
            .map_err(|e| device("C_GetTokenInfo", e))?;
        if !info.login_required() {
            state.logged_in = true;
            return Ok(());
        }
        let Some(pin) = &self.pin else {
            return Err(Error::config(
                self.uri.to_token_string(),
                "pin-source",
                format!(
                    "token `{}` needs a user PIN: add `pin-source=file:/path` to the URI or `pin_file` to the configuration",
                    info.label().trim_end()
                ),
            ));
        };
        if info.user_pin_locked() {
            return Err(Error::Device {
                origin: Origin::Pkcs11,
                op: "C_Login".into(),
                rv: sys::CKR_PIN_LOCKED,
                message: format!("the user PIN of token `{}` is locked", info.label().trim_end()),
            });
        }
        // One login for the whole application: another user of this token (or another
        // `Token` object for it) may have logged in already.
        let _serial = self.module.login_lock()?;
        let session_state = session
            .get_session_info()
            .map_err(|e| device("C_GetSessionInfo", e))?
            .session_state();
        if matches!(session_state, SessionState::RoUser | SessionState::RwUser) {
            state.logged_in = true;
            return Ok(());
        }
        let auth = AuthPin::from(pin.as_str().to_string());
        match session.login(UserType::User, Some(&auth)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                state.logged_in = true;
                Ok(())
            }
            Err(CkError::Pkcs11(rv @ (RvError::PinIncorrect | RvError::PinLocked | RvError::PinExpired), _)) => {
                let what = match rv {
                    RvError::PinIncorrect => "the PIN was rejected (CKR_PIN_INCORRECT)",
                    RvError::PinLocked => "the PIN is locked (CKR_PIN_LOCKED)",
                    _ => "the PIN has expired (CKR_PIN_EXPIRED)",
                };
                let reason = format!(
                    "token `{}`: {what}; check the file named by pin-source / pin_file",
                    info.label().trim_end()
                );
                state.pin_rejected = Some(reason.clone());
                if let (Some(key), Ok(mut r)) = (&self.key, rejected().lock()) {
                    r.insert(key.clone(), reason.clone());
                }
                Err(Error::Device {
                    origin: Origin::Pkcs11,
                    op: "C_Login".into(),
                    rv: crate::error::ckr_code(rv),
                    message: reason,
                })
            }
            Err(e) => Err(device("C_Login", e)),
        }
    }
}

/// Why SoftHSM2 may show no token: without `SOFTHSM2_CONF` it reads its system-wide
/// configuration and token directory, not the one the token was made in.
fn softhsm_hint(module: &Path) -> String {
    let softhsm = module
        .file_name()
        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().contains("softhsm"));
    if softhsm && std::env::var_os("SOFTHSM2_CONF").is_none_or(|v| v.is_empty()) {
        "; SOFTHSM2_CONF is not set, so SoftHSM2 reads its system-wide configuration and token \
         directory: set SOFTHSM2_CONF to the softhsm2.conf of the token directory that holds this token"
            .into()
    } else {
        String::new()
    }
}
