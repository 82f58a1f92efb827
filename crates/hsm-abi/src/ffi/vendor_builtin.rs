//! The backends built into this library, seen through the vendor table (name
//! "hsm-abi-builtin"): the conformance check runs on them and a C program may wrap them.

use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::path::Path;
use std::sync::Arc;

use hsm_core::config::Config;
use hsm_core::{Error, SasSigner, SigningKey, SymmetricIdentity, TpmIdentity, X509Identity};

use super::errors::{HSM_ABI_ERR_BUFFER_TOO_SMALL, HSM_ABI_OK, record, to_code};
use super::handle::{self, HandleKind};
use super::ptr::{self, Out};
use super::signer_types::{HSM_ABI_KEY_INFO, key_info};
use super::vendor::{HSM_ABI_VENDOR_TABLE, HSM_ABI_VENDOR_TABLE_VERSION, V1_SIZE, VendorTable};
use hsm::TpmBackend;

/// The identity behind a handle of the built-in table: the sections of one configuration file.
struct BuiltinIdentity {
    x509: Arc<dyn X509Identity>,
    key: Arc<dyn SigningKey>,
    symmetric: Option<Arc<dyn SymmetricIdentity>>,
    tpm: Option<TpmBackend>,
}

impl HandleKind for BuiltinIdentity {
    const NAME: &'static str = "hsm-abi-builtin identity";
}

struct StaticTable(HSM_ABI_VENDOR_TABLE);
// SAFETY: immutable static data: a static string and function pointers.
unsafe impl Sync for StaticTable {}

static BUILTIN_TABLE: StaticTable = StaticTable(HSM_ABI_VENDOR_TABLE {
    version: HSM_ABI_VENDOR_TABLE_VERSION,
    struct_size: V1_SIZE as u32,
    name: c"hsm-abi-builtin".as_ptr(),
    open: Some(builtin_open),
    close: Some(builtin_close),
    get_certificate_chain: Some(builtin_chain),
    get_common_name: Some(builtin_common_name),
    key_info: Some(builtin_key_info),
    sign: Some(builtin_sign),
    get_public_key: Some(builtin_public_key),
    error_string: None,
    get_endorsement_key: Some(builtin_ek),
    get_storage_root_key: Some(builtin_srk),
    activate_identity_key: Some(builtin_activate),
    sign_with_identity: Some(builtin_sign_with_identity),
    get_registration_id: Some(builtin_registration_id),
    get_symmetric_key: Some(builtin_symmetric_key),
    hmac_sha256: Some(builtin_hmac),
});

impl VendorTable {
    /// The built-in backends of this library, seen through the vendor table (the identity string
    /// is the path of a configuration file). Used to run the conformance check on them.
    pub fn builtin() -> Result<Arc<VendorTable>, Error> {
        // SAFETY: a static table of this library.
        unsafe { super::vendor::loader::read_table("the built-in vendor table", &BUILTIN_TABLE.0) }.map(Arc::new)
    }
}

/// The backends built into this library as a vendor table (name "hsm-abi-builtin"): `open`
/// takes the path of a configuration file and opens its `[x509]` section (and `[symmetric_key]`
/// and `[tpm]` when present; without them those operations return `HSM_ABI_ERR_UNSUPPORTED`).
/// Lets the conformance check run on the project's own backends and lets a C program wrap them.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_vendor_builtin_table() -> *const HSM_ABI_VENDOR_TABLE {
    ffi_boundary!("hsm_abi_vendor_builtin_table", { &BUILTIN_TABLE.0 })
}

fn builtin_open_config(path: &str) -> Result<BuiltinIdentity, Error> {
    crate::install_backends();
    let config = Config::from_file(Path::new(path))?;
    let x509 = hsm::open_x509(&config)?;
    let key = x509.signing_key()?;
    let symmetric = match config.symmetric_key {
        Some(_) => Some(hsm::open_symmetric(&config)?),
        None => None,
    };
    let tpm = match config.tpm {
        Some(_) => Some(hsm::open_tpm(&config)?),
        None => None,
    };
    Ok(BuiltinIdentity {
        x509,
        key,
        symmetric,
        tpm,
    })
}

unsafe extern "C" fn builtin_open(identity: *const c_char, out: *mut *mut c_void) -> c_int {
    ffi_boundary!("hsm-abi-builtin open", {
        // SAFETY: the table's contract: NULL or NUL-terminated; NULL or writable.
        let r = unsafe { ptr::cstr("identity", identity).and_then(|i| Ok((i, Out::new("out", out)?))) }.and_then(
            |(identity, out)| {
                let id = builtin_open_config(identity)?;
                out.write(handle::into_raw(id)?);
                Ok(())
            },
        );
        to_code("hsm-abi-builtin open", r.map_err(Into::into))
    })
}

unsafe extern "C" fn builtin_close(handle: *mut c_void) {
    ffi_boundary!("hsm-abi-builtin close", {
        // SAFETY: looked up before anything is freed; not in use elsewhere (table contract).
        let r = unsafe { handle::destroy::<BuiltinIdentity>(handle) };
        to_code("hsm-abi-builtin close", r.map_err(Into::into));
    })
}

/// Run `f` on the identity behind a built-in handle and write its output by the caller-buffer
/// rule.
///
/// # Safety
/// `handle` is NULL or from builtin_open; `buf` is NULL or `*len` writable bytes; `len` is NULL
/// or an initialized writable size.
unsafe fn builtin_bytes(
    op: &'static str,
    handle: *mut c_void,
    buf: *mut c_uchar,
    len: *mut usize,
    f: impl FnOnce(&BuiltinIdentity) -> Result<Vec<u8>, Error>,
) -> c_int {
    // SAFETY: forwarded promises.
    let r = unsafe { handle::get::<BuiltinIdentity>(handle) }.and_then(|id| Ok((id, unsafe { Out::new("len", len) }?)));
    let (id, len) = match r {
        Ok(v) => v,
        Err(e) => return record(op, &e.into()),
    };
    let data = match f(id) {
        Ok(d) => d,
        Err(e) => return record(op, &e.into()),
    };
    // SAFETY: `len` is initialized by the caller (capacity).
    let capacity = unsafe { len.read() };
    if buf.is_null() || capacity < data.len() {
        len.write(data.len());
        return HSM_ABI_ERR_BUFFER_TOO_SMALL;
    }
    // SAFETY: `capacity` writable bytes at the non-NULL `buf`.
    match unsafe { ptr::slice_mut("buf", buf, capacity) } {
        Ok(out) => {
            out[..data.len()].copy_from_slice(&data);
            len.write(data.len());
            HSM_ABI_OK
        }
        Err(e) => record(op, &e.into()),
    }
}

fn unsupported_here(op: &str, section: &str) -> Error {
    Error::unsupported(
        "the built-in vendor table",
        format!("{op} (the configuration has no [{section}])"),
    )
}

unsafe extern "C" fn builtin_chain(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_certificate_chain", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_certificate_chain", handle, buf, len, |id| {
                Ok(hsm_core::pem::certificates_to_pem(&id.x509.certificate_chain()?).into_bytes())
            })
        }
    })
}

unsafe extern "C" fn builtin_common_name(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_common_name", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_common_name", handle, buf, len, |id| {
                Ok(id.x509.common_name()?.into_bytes())
            })
        }
    })
}

unsafe extern "C" fn builtin_public_key(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_public_key", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_public_key", handle, buf, len, |id| {
                id.key.public_key_spki()
            })
        }
    })
}

unsafe extern "C" fn builtin_key_info(handle: *mut c_void, out: *mut HSM_ABI_KEY_INFO) -> c_int {
    ffi_boundary!("hsm-abi-builtin key_info", {
        // SAFETY: table contract.
        let r = unsafe { handle::get::<BuiltinIdentity>(handle) }
            .and_then(|id| Ok((id, unsafe { Out::new("out", out) }?)))
            .and_then(|(id, out)| {
                // SAFETY: the caller initialized `struct_size`, the first field.
                let given = unsafe { std::ptr::addr_of!((*out.as_ptr()).struct_size).read() };
                if (given as usize) < size_of::<HSM_ABI_KEY_INFO>() {
                    return Err(Error::invalid("out", format!("struct_size {given} is too small")));
                }
                let mut info = key_info(id.key.as_ref())?;
                info.struct_size = given;
                out.write(info);
                Ok(())
            });
        to_code("hsm-abi-builtin key_info", r.map_err(Into::into))
    })
}

unsafe extern "C" fn builtin_sign(
    handle: *mut c_void,
    scheme: u32,
    msg: *const c_uchar,
    msg_len: usize,
    sig: *mut c_uchar,
    sig_len: *mut usize,
) -> c_int {
    ffi_boundary!("hsm-abi-builtin sign", {
        // SAFETY: table contract: `msg_len` readable bytes.
        let msg = match unsafe { ptr::slice("msg", msg, msg_len) } {
            Ok(m) => m,
            Err(e) => return record("hsm-abi-builtin sign", &e.into()),
        };
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin sign", handle, sig, sig_len, |id| {
                let scheme = hsm_core::SignatureScheme::try_from(scheme)?;
                if !id.key.schemes().contains(&scheme) {
                    return Err(Error::invalid(
                        "scheme",
                        format!("{scheme} is not a scheme of this key"),
                    ));
                }
                // A buffer of max_signature_len always suffices: when the caller's is smaller,
                // answer with that size (the zeros are never copied out) without signing.
                let max = key_info(id.key.as_ref())?.max_signature_len as usize;
                // Inside the unsafe block above: by the table contract `sig_len` is NULL or an
                // initialized size.
                let capacity = sig_len.as_ref().copied().unwrap_or(0);
                if sig.is_null() || capacity < max {
                    return Ok(vec![0; max]);
                }
                id.key.sign(scheme, msg)
            })
        }
    })
}

unsafe extern "C" fn builtin_ek(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_endorsement_key", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_endorsement_key", handle, buf, len, |id| {
                id.attestation("get_endorsement_key")?.endorsement_key()
            })
        }
    })
}

unsafe extern "C" fn builtin_srk(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_storage_root_key", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_storage_root_key", handle, buf, len, |id| {
                id.attestation("get_storage_root_key")?.storage_root_key()
            })
        }
    })
}

impl BuiltinIdentity {
    /// The [tpm] backend for `op`, or a clear error when the configuration has none.
    fn tpm(&self, op: &str) -> Result<&TpmBackend, Error> {
        self.tpm.as_ref().ok_or_else(|| unsupported_here(op, "tpm"))
    }

    /// The TPM attestation of the [tpm] backend for `op` (a SAS-signing key has none).
    fn attestation(&self, op: &str) -> Result<&dyn TpmIdentity, Error> {
        self.tpm(op)?.attestation(op)
    }

    /// The [symmetric_key] identity for `op`, or a clear error when the configuration has none.
    fn symmetric(&self, op: &str) -> Result<&dyn SymmetricIdentity, Error> {
        self.symmetric
            .as_deref()
            .ok_or_else(|| unsupported_here(op, "symmetric_key"))
    }
}

unsafe extern "C" fn builtin_activate(handle: *mut c_void, data: *const c_uchar, data_len: usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin activate_identity_key", {
        // SAFETY: table contract.
        let r = unsafe { handle::get::<BuiltinIdentity>(handle) }
            .and_then(|id| Ok((id, unsafe { ptr::slice("data", data, data_len) }?)))
            .and_then(|(id, blob)| id.attestation("activate_identity_key")?.activate_identity_key(blob));
        to_code("hsm-abi-builtin activate_identity_key", r.map_err(Into::into))
    })
}

unsafe extern "C" fn builtin_sign_with_identity(
    handle: *mut c_void,
    data: *const c_uchar,
    data_len: usize,
    buf: *mut c_uchar,
    len: *mut usize,
) -> c_int {
    ffi_boundary!("hsm-abi-builtin sign_with_identity", {
        // SAFETY: table contract.
        let data = match unsafe { ptr::slice("data", data, data_len) } {
            Ok(d) => d,
            Err(e) => return record("hsm-abi-builtin sign_with_identity", &e.into()),
        };
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin sign_with_identity", handle, buf, len, |id| {
                id.tpm("sign_with_identity")?.sign_with_identity(data)
            })
        }
    })
}

unsafe extern "C" fn builtin_registration_id(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_registration_id", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_registration_id", handle, buf, len, |id| {
                Ok(id.symmetric("get_registration_id")?.registration_id()?.into_bytes())
            })
        }
    })
}

unsafe extern "C" fn builtin_symmetric_key(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_symmetric_key", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_symmetric_key", handle, buf, len, |id| {
                Ok(id.symmetric("get_symmetric_key")?.symmetric_key()?.to_vec())
            })
        }
    })
}

unsafe extern "C" fn builtin_hmac(
    handle: *mut c_void,
    data: *const c_uchar,
    data_len: usize,
    mac: *mut c_uchar,
) -> c_int {
    ffi_boundary!("hsm-abi-builtin hmac_sha256", {
        // SAFETY: table contract.
        let r = unsafe { handle::get::<BuiltinIdentity>(handle) }
            .and_then(|id| Ok((id, unsafe { ptr::slice("data", data, data_len) }?)))
            .and_then(|(id, data)| {
                // SAFETY: table contract: 32 writable bytes at `mac`.
                let out = unsafe { ptr::slice_mut("mac", mac, 32) }?;
                out.copy_from_slice(&id.symmetric("hmac_sha256")?.hmac_sha256(data)?);
                Ok(())
            });
        to_code("hsm-abi-builtin hmac_sha256", r.map_err(Into::into))
    })
}
