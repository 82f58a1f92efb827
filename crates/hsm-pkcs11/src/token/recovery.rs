//! What a failed operation calls for (log in again, re-open the token, nothing), and its error once
//! recovery did what it could.

use cryptoki_sys as sys;
use hsm_core::Error;

use crate::error::rv_of;

pub(super) enum Recovery {
    None,
    Relogin,
    Reopen,
}

pub(super) fn recovery(e: &Error) -> Recovery {
    match rv_of(e) {
        Some(sys::CKR_USER_NOT_LOGGED_IN | sys::CKR_KEY_HANDLE_INVALID | sys::CKR_OBJECT_HANDLE_INVALID) => {
            Recovery::Relogin
        }
        Some(
            sys::CKR_DEVICE_REMOVED
            | sys::CKR_SESSION_HANDLE_INVALID
            | sys::CKR_SESSION_CLOSED
            | sys::CKR_TOKEN_NOT_PRESENT
            | sys::CKR_TOKEN_NOT_RECOGNIZED
            | sys::CKR_DEVICE_ERROR
            | sys::CKR_GENERAL_ERROR
            | sys::CKR_CRYPTOKI_NOT_INITIALIZED,
        ) => Recovery::Reopen,
        _ => Recovery::None,
    }
}

pub(super) fn after_recovery(op: &str, e: Error) -> Error {
    wrap(op, e, "the token stopped answering and re-opening it once did not help")
}

/// [`in_op`] with `what` recovery did; not for a PIN the token refused (the token is there:
/// the message names the PIN, and guessing at a missing token would mislead).
pub(super) fn wrap(op: &str, e: Error, what: &str) -> Error {
    let pin_refused = matches!(
        &e,
        Error::Device { rv, .. } if [
            sys::CKR_PIN_INCORRECT,
            sys::CKR_PIN_LOCKED,
            sys::CKR_PIN_EXPIRED,
            sys::CKR_PIN_INVALID,
            sys::CKR_PIN_LEN_RANGE,
        ]
        .contains(rv)
    );
    in_op(op, e, (!pin_refused).then_some(what))
}

/// A device error prefixed with the operation it failed and, with `lost`, what recovery did
/// and what to check (other errors as they are).
pub(super) fn in_op(op: &str, e: Error, lost: Option<&str>) -> Error {
    match e {
        Error::Device {
            origin,
            op: inner,
            rv,
            message,
        } => Error::Device {
            origin,
            op: if inner.starts_with(op) {
                inner
            } else {
                format!("{op}: {inner}")
            },
            rv,
            message: match lost {
                Some(what) => format!("{message}; {what}: is the token present, and is it the same token?"),
                None => message,
            },
        },
        other => other,
    }
}
