//! Mapping of cryptoki errors onto [`hsm_core::Error::Device`] with the CKR code.

use cryptoki::error::{Error as CkError, Rv, RvError};
use cryptoki_sys as sys;
use hsm_core::{Error, Origin};

/// Every standard CKR code cryptoki knows (to recover the number from its enum).
const CODES: &[sys::CK_RV] = &[
    sys::CKR_CANCEL,
    sys::CKR_HOST_MEMORY,
    sys::CKR_SLOT_ID_INVALID,
    sys::CKR_GENERAL_ERROR,
    sys::CKR_FUNCTION_FAILED,
    sys::CKR_ARGUMENTS_BAD,
    sys::CKR_NO_EVENT,
    sys::CKR_NEED_TO_CREATE_THREADS,
    sys::CKR_CANT_LOCK,
    sys::CKR_ATTRIBUTE_READ_ONLY,
    sys::CKR_ATTRIBUTE_SENSITIVE,
    sys::CKR_ATTRIBUTE_TYPE_INVALID,
    sys::CKR_ATTRIBUTE_VALUE_INVALID,
    sys::CKR_ACTION_PROHIBITED,
    sys::CKR_DATA_INVALID,
    sys::CKR_DATA_LEN_RANGE,
    sys::CKR_DEVICE_ERROR,
    sys::CKR_DEVICE_MEMORY,
    sys::CKR_DEVICE_REMOVED,
    sys::CKR_ENCRYPTED_DATA_INVALID,
    sys::CKR_ENCRYPTED_DATA_LEN_RANGE,
    sys::CKR_FUNCTION_CANCELED,
    sys::CKR_FUNCTION_NOT_PARALLEL,
    sys::CKR_FUNCTION_NOT_SUPPORTED,
    sys::CKR_CURVE_NOT_SUPPORTED,
    sys::CKR_KEY_HANDLE_INVALID,
    sys::CKR_KEY_SIZE_RANGE,
    sys::CKR_KEY_TYPE_INCONSISTENT,
    sys::CKR_KEY_NOT_NEEDED,
    sys::CKR_KEY_CHANGED,
    sys::CKR_KEY_NEEDED,
    sys::CKR_KEY_INDIGESTIBLE,
    sys::CKR_KEY_FUNCTION_NOT_PERMITTED,
    sys::CKR_KEY_NOT_WRAPPABLE,
    sys::CKR_KEY_UNEXTRACTABLE,
    sys::CKR_MECHANISM_INVALID,
    sys::CKR_MECHANISM_PARAM_INVALID,
    sys::CKR_OBJECT_HANDLE_INVALID,
    sys::CKR_OPERATION_ACTIVE,
    sys::CKR_OPERATION_NOT_INITIALIZED,
    sys::CKR_PIN_INCORRECT,
    sys::CKR_PIN_INVALID,
    sys::CKR_PIN_LEN_RANGE,
    sys::CKR_PIN_EXPIRED,
    sys::CKR_PIN_LOCKED,
    sys::CKR_SESSION_CLOSED,
    sys::CKR_SESSION_COUNT,
    sys::CKR_SESSION_HANDLE_INVALID,
    sys::CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    sys::CKR_SESSION_READ_ONLY,
    sys::CKR_SESSION_EXISTS,
    sys::CKR_SESSION_READ_ONLY_EXISTS,
    sys::CKR_SESSION_READ_WRITE_SO_EXISTS,
    sys::CKR_SIGNATURE_INVALID,
    sys::CKR_SIGNATURE_LEN_RANGE,
    sys::CKR_TEMPLATE_INCOMPLETE,
    sys::CKR_TEMPLATE_INCONSISTENT,
    sys::CKR_TOKEN_NOT_PRESENT,
    sys::CKR_TOKEN_NOT_RECOGNIZED,
    sys::CKR_TOKEN_WRITE_PROTECTED,
    sys::CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    sys::CKR_UNWRAPPING_KEY_SIZE_RANGE,
    sys::CKR_USER_ALREADY_LOGGED_IN,
    sys::CKR_USER_NOT_LOGGED_IN,
    sys::CKR_USER_PIN_NOT_INITIALIZED,
    sys::CKR_USER_TYPE_INVALID,
    sys::CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
    sys::CKR_USER_TOO_MANY_TYPES,
    sys::CKR_WRAPPED_KEY_INVALID,
    sys::CKR_WRAPPED_KEY_LEN_RANGE,
    sys::CKR_WRAPPING_KEY_HANDLE_INVALID,
    sys::CKR_WRAPPING_KEY_SIZE_RANGE,
    sys::CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
    sys::CKR_RANDOM_SEED_NOT_SUPPORTED,
    sys::CKR_RANDOM_NO_RNG,
    sys::CKR_DOMAIN_PARAMS_INVALID,
    sys::CKR_BUFFER_TOO_SMALL,
    sys::CKR_SAVED_STATE_INVALID,
    sys::CKR_INFORMATION_SENSITIVE,
    sys::CKR_STATE_UNSAVEABLE,
    sys::CKR_CRYPTOKI_NOT_INITIALIZED,
    sys::CKR_CRYPTOKI_ALREADY_INITIALIZED,
    sys::CKR_MUTEX_BAD,
    sys::CKR_MUTEX_NOT_LOCKED,
    sys::CKR_NEW_PIN_MODE,
    sys::CKR_NEXT_OTP,
    sys::CKR_EXCEEDED_MAX_ITERATIONS,
    sys::CKR_FIPS_SELF_TEST_FAILED,
    sys::CKR_LIBRARY_LOAD_FAILED,
    sys::CKR_PIN_TOO_WEAK,
    sys::CKR_PUBLIC_KEY_INVALID,
    sys::CKR_FUNCTION_REJECTED,
];

/// The CKR number of a cryptoki error code.
pub(crate) fn ckr_code(e: RvError) -> u64 {
    match e {
        RvError::VendorDefined(c) | RvError::UnknownErrorCode(c) => c,
        _ => CODES
            .iter()
            .copied()
            .find(|c| Rv::from(*c) == Rv::Error(e))
            .unwrap_or(sys::CKR_GENERAL_ERROR),
    }
}

/// A token error for operation `op`.
pub(crate) fn device(op: impl Into<String>, e: CkError) -> Error {
    let op = op.into();
    match e {
        CkError::Pkcs11(rv, function) => Error::Device {
            origin: Origin::Pkcs11,
            message: format!("{function} returned {}", ckr_name(rv)),
            op,
            rv: ckr_code(rv),
        },
        CkError::LibraryLoading(e) => Error::Device {
            origin: Origin::Pkcs11,
            op,
            rv: 0,
            message: format!("cannot load the PKCS#11 module: {e}"),
        },
        other => Error::Device {
            origin: Origin::Pkcs11,
            op,
            rv: 0,
            message: other.to_string(),
        },
    }
}

/// A short name for a return value (cryptoki's Display is a paragraph of the spec).
pub(crate) fn ckr_name(rv: RvError) -> String {
    let dbg = format!("{rv:?}");
    let mut out = String::from("CKR_");
    for (i, ch) in dbg.chars().enumerate() {
        if ch == '(' {
            break;
        }
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// The CKR code of a device error from this backend, if it is one.
pub(crate) fn rv_of(e: &Error) -> Option<u64> {
    match e {
        Error::Device {
            origin: Origin::Pkcs11,
            rv,
            ..
        } if *rv != 0 => Some(*rv),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        assert_eq!(ckr_code(RvError::PinIncorrect), sys::CKR_PIN_INCORRECT);
        assert_eq!(ckr_code(RvError::UserNotLoggedIn), sys::CKR_USER_NOT_LOGGED_IN);
        assert_eq!(ckr_code(RvError::VendorDefined(0x8000_0001)), 0x8000_0001);
        assert_eq!(ckr_name(RvError::UserNotLoggedIn), "CKR_USER_NOT_LOGGED_IN");
        for c in CODES {
            let Rv::Error(e) = Rv::from(*c) else { panic!("{c:#x}") };
            assert_eq!(ckr_code(e), *c);
        }
    }
}
