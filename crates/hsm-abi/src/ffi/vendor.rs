//! Vendor backends: the versioned table a hardware vendor implements in C (or Rust), loaded from
//! a shared object at run time or registered by a C program linked with the library.
//!
//! Memory rule (one rule for every field): **output buffers belong to the caller**. A function
//! that produces bytes takes `buf` and `len`: on entry `*len` is the capacity of `buf` (0 when
//! `buf` is NULL). If the output does not fit (or `buf` is NULL), the function stores the needed
//! size in `*len`, writes nothing to `buf` and returns `HSM_ABI_ERR_BUFFER_TOO_SMALL`. On success
//! it writes the output to `buf[0..n]`, stores `n` in `*len` and returns 0. The vendor never
//! hands memory to the library and the library never frees anything of the vendor's, so the two
//! sides may use different allocators.
//!
//! Threading rule: `open` and `close` are never called concurrently with other calls on the same
//! identity; every other function may be called from any thread, concurrently, on the same
//! identity too. A device that cannot do that serializes inside the vendor library.
//!
//! Everything the library reads back from a vendor is checked (lengths against capacities,
//! writes past the capacity, UTF-8, key descriptions, signature DER and validity), so a vendor
//! returning garbage gives an error instead of undefined behaviour in the library.
#![allow(non_camel_case_types)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_uchar, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hsm_core::config::Config;
use hsm_core::{Error, Origin, SigningKey, SymmetricIdentity, TpmIdentity, X509Identity};

use super::errors::{
    HSM_ABI_ERR_BUFFER_TOO_SMALL, HSM_ABI_ERR_INVALID_ARGUMENT, HSM_ABI_ERR_UNSUPPORTED, HSM_ABI_OK, record, to_code,
};
use super::handle::{self, HandleKind};
use super::ptr::{self, Out};
use super::signer::{HSM_ABI_KEY_INFO, key_info};
use crate::registry;

/// Version of `HSM_ABI_VENDOR_TABLE` described by this header. A vendor sets `version` to the
/// version its code implements; the library accepts 1 up to this value.
pub const HSM_ABI_VENDOR_TABLE_VERSION: u32 = 1;
/// The symbol a vendor shared object exports: a function of type `HSM_ABI_VENDOR_GET_TABLE`.
pub const HSM_ABI_VENDOR_ENTRY_POINT: &str = "hsm_abi_vendor_table";

/// Open the identity named by `identity` (a vendor-defined, NUL-terminated string that holds no
/// secret: a slot, a label, a path). On success store the vendor's handle in `*out` (any
/// non-NULL value) and return 0. Mandatory.
pub type HSM_ABI_VENDOR_OPEN = Option<unsafe extern "C" fn(identity: *const c_char, out: *mut *mut c_void) -> c_int>;
/// Release a handle from `open`; NULL is a no-op. Mandatory.
pub type HSM_ABI_VENDOR_CLOSE = Option<unsafe extern "C" fn(handle: *mut c_void)>;
/// Produce bytes into a caller buffer (see the memory rule of `HSM_ABI_VENDOR_TABLE`).
pub type HSM_ABI_VENDOR_GET_BYTES =
    Option<unsafe extern "C" fn(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int>;
/// Describe the identity's key: write every field of `*out` (the caller set `out->struct_size`
/// to its size, at least `sizeof(HSM_ABI_KEY_INFO)`; leave it as it is).
pub type HSM_ABI_VENDOR_KEY_INFO =
    Option<unsafe extern "C" fn(handle: *mut c_void, out: *mut HSM_ABI_KEY_INFO) -> c_int>;
/// Sign `msg` (the whole message, not a digest) with `scheme` (a TLS SignatureScheme code point
/// listed by `key_info`); the signature goes into a caller buffer. ECDSA signatures are DER.
pub type HSM_ABI_VENDOR_SIGN = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        scheme: u32,
        msg: *const c_uchar,
        msg_len: usize,
        sig: *mut c_uchar,
        sig_len: *mut usize,
    ) -> c_int,
>;
/// A static, NUL-terminated explanation of one of the vendor's own return codes, or NULL.
pub type HSM_ABI_VENDOR_ERROR_STRING = Option<unsafe extern "C" fn(code: c_int) -> *const c_char>;
/// Take input bytes, no output (the TPM activation blob).
pub type HSM_ABI_VENDOR_PUT_BYTES =
    Option<unsafe extern "C" fn(handle: *mut c_void, data: *const c_uchar, data_len: usize) -> c_int>;
/// Take input bytes, produce bytes into a caller buffer.
pub type HSM_ABI_VENDOR_TRANSFORM = Option<
    unsafe extern "C" fn(
        handle: *mut c_void,
        data: *const c_uchar,
        data_len: usize,
        buf: *mut c_uchar,
        len: *mut usize,
    ) -> c_int,
>;
/// HMAC-SHA256 of `data` with the identity's symmetric key into the caller's 32-byte `mac`.
pub type HSM_ABI_VENDOR_HMAC = Option<
    unsafe extern "C" fn(handle: *mut c_void, data: *const c_uchar, data_len: usize, mac: *mut c_uchar) -> c_int,
>;

/// A vendor backend (version 1). `version` and `struct_size` come first and fields are only
/// ever appended. Return codes: 0 success; `HSM_ABI_ERR_BUFFER_TOO_SMALL` (size query, see
/// below); `HSM_ABI_ERR_INVALID_ARGUMENT` for NULL or bad arguments; `HSM_ABI_ERR_UNSUPPORTED`
/// when this identity cannot do the operation; any other non-zero value is the vendor's own
/// error code (explained by `error_string` when set).
///
/// Memory: output buffers belong to the caller. `*len` is the capacity of `buf` on entry (0
/// when `buf` is NULL); when the output does not fit, store the needed size in `*len`, write
/// nothing and return `HSM_ABI_ERR_BUFFER_TOO_SMALL`; on success write the output and store its
/// length in `*len`. Text outputs are UTF-8 without a terminating NUL. The vendor never returns
/// memory for the library to free. Input pointers are only valid during the call.
///
/// Threading: `open` / `close` are not concurrent with other calls on the same handle; every
/// other function may run concurrently from several threads, on the same handle too.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HSM_ABI_VENDOR_TABLE {
    /// The `HSM_ABI_VENDOR_TABLE_VERSION` the vendor implements (1).
    pub version: u32,
    /// `sizeof(HSM_ABI_VENDOR_TABLE)` as the vendor compiled it.
    pub struct_size: u32,
    /// Mandatory. Static NUL-terminated name of the backend (letters, digits, `-`, `_`, `.`);
    /// a registered table is selected by it (`registered = "name"`). Copied by the library.
    pub name: *const c_char,
    /// Mandatory: open an identity.
    pub open: HSM_ABI_VENDOR_OPEN,
    /// Mandatory: close an identity.
    pub close: HSM_ABI_VENDOR_CLOSE,
    /// Mandatory: the PEM certificate chain, leaf first (caller buffer).
    pub get_certificate_chain: HSM_ABI_VENDOR_GET_BYTES,
    /// Mandatory: the common name of the leaf certificate, the registration id (caller buffer).
    pub get_common_name: HSM_ABI_VENDOR_GET_BYTES,
    /// Mandatory: algorithm, curve or modulus size, schemes and maximum signature size of the
    /// leaf certificate's key (fills the caller's structure).
    pub key_info: HSM_ABI_VENDOR_KEY_INFO,
    /// Mandatory: sign with the leaf certificate's key (caller buffer; a buffer of
    /// `max_signature_len` bytes always suffices).
    pub sign: HSM_ABI_VENDOR_SIGN,
    /// Optional: the key's DER SubjectPublicKeyInfo (caller buffer). NULL: the library takes it
    /// from the leaf certificate.
    pub get_public_key: HSM_ABI_VENDOR_GET_BYTES,
    /// Optional: explain the vendor's own error codes (returns static strings, never freed).
    pub error_string: HSM_ABI_VENDOR_ERROR_STRING,
    /// TPM group (all four set, or all four NULL): marshalled TPM2B_PUBLIC of the endorsement
    /// key with its 2-byte size (caller buffer).
    pub get_endorsement_key: HSM_ABI_VENDOR_GET_BYTES,
    /// TPM group: marshalled TPM2B_PUBLIC of the storage root key (caller buffer).
    pub get_storage_root_key: HSM_ABI_VENDOR_GET_BYTES,
    /// TPM group: import the identity key from the DPS activation blob (input only).
    pub activate_identity_key: HSM_ABI_VENDOR_PUT_BYTES,
    /// TPM group: HMAC-SHA256 of `data` with the activated identity key (caller buffer).
    pub sign_with_identity: HSM_ABI_VENDOR_TRANSFORM,
    /// Symmetric group (this and `hmac_sha256` set, or both NULL): the registration id of the
    /// symmetric-key identity (caller buffer).
    pub get_registration_id: HSM_ABI_VENDOR_GET_BYTES,
    /// Symmetric group, optional inside it: the raw symmetric key (caller buffer). NULL when the
    /// key never leaves the device (then the SDK's get_symm_key reports "unsupported").
    pub get_symmetric_key: HSM_ABI_VENDOR_GET_BYTES,
    /// Symmetric group: HMAC-SHA256 with the symmetric key into a 32-byte caller buffer.
    pub hmac_sha256: HSM_ABI_VENDOR_HMAC,
}

/// The entry point of a vendor shared object (exported as `hsm_abi_vendor_table`): returns a
/// pointer to a table that stays valid until the library is unloaded (a `static`).
pub type HSM_ABI_VENDOR_GET_TABLE = Option<unsafe extern "C" fn() -> *const HSM_ABI_VENDOR_TABLE>;

/// Size of the version-1 table. While version 1 is the newest, that is the whole struct; when a
/// version 2 appends fields, this becomes the offset of its first new field.
const V1_SIZE: usize = size_of::<HSM_ABI_VENDOR_TABLE>();
/// Largest output the library accepts from a vendor (a certificate chain is far smaller).
pub(crate) const MAX_OUTPUT: usize = 1 << 20;
/// Canary bytes after every caller buffer: a vendor that writes past its capacity is caught.
const CANARY_LEN: usize = 16;
const CANARY: u8 = 0xa5;

fn vendor_error(backend: &str, op: &str, rv: c_int, message: impl Into<String>) -> Error {
    Error::Device {
        origin: Origin::Vendor,
        op: format!("{backend}: {op}"),
        rv: u64::from(rv as u32),
        message: message.into(),
    }
}

/// The byte-producing fields of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BytesField {
    CertificateChain,
    CommonName,
    PublicKey,
    EndorsementKey,
    StorageRootKey,
    RegistrationId,
    SymmetricKey,
}

impl BytesField {
    pub const ALL: [BytesField; 7] = [
        BytesField::CertificateChain,
        BytesField::CommonName,
        BytesField::PublicKey,
        BytesField::EndorsementKey,
        BytesField::StorageRootKey,
        BytesField::RegistrationId,
        BytesField::SymmetricKey,
    ];

    /// The field's name in the C table.
    pub fn name(self) -> &'static str {
        match self {
            BytesField::CertificateChain => "get_certificate_chain",
            BytesField::CommonName => "get_common_name",
            BytesField::PublicKey => "get_public_key",
            BytesField::EndorsementKey => "get_endorsement_key",
            BytesField::StorageRootKey => "get_storage_root_key",
            BytesField::RegistrationId => "get_registration_id",
            BytesField::SymmetricKey => "get_symmetric_key",
        }
    }

    fn get(self, t: &HSM_ABI_VENDOR_TABLE) -> HSM_ABI_VENDOR_GET_BYTES {
        match self {
            BytesField::CertificateChain => t.get_certificate_chain,
            BytesField::CommonName => t.get_common_name,
            BytesField::PublicKey => t.get_public_key,
            BytesField::EndorsementKey => t.get_endorsement_key,
            BytesField::StorageRootKey => t.get_storage_root_key,
            BytesField::RegistrationId => t.get_registration_id,
            BytesField::SymmetricKey => t.get_symmetric_key,
        }
    }
}

/// Which optional parts a table implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub public_key: bool,
    pub error_string: bool,
    pub tpm: bool,
    pub symmetric: bool,
    pub symmetric_key_export: bool,
}

/// A validated vendor table, with the library it came from (kept loaded for the process).
pub struct VendorTable {
    raw: HSM_ABI_VENDOR_TABLE,
    name: String,
    origin: String,
}

// SAFETY: the table holds function pointers and a name pointer that is never read again after
// validation (the name is copied); the vendor's threading rule allows calls from any thread.
unsafe impl Send for VendorTable {}
// SAFETY: as above; the table is immutable after validation.
unsafe impl Sync for VendorTable {}

impl std::fmt::Debug for VendorTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorTable")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("version", &self.raw.version)
            .finish()
    }
}

/// Read and validate a table from C. `origin` names where it came from in errors.
///
/// # Safety
/// `p` is NULL or points to at least 8 readable bytes, and to `struct_size` readable bytes when
/// its `struct_size` field is within range; `name`, when non-NULL, is NUL-terminated.
unsafe fn read_table(origin: &str, p: *const HSM_ABI_VENDOR_TABLE) -> Result<VendorTable, Error> {
    let refuse = |why: String| Error::config(origin, "vendor table", why);
    if p.is_null() {
        return Err(refuse("the table pointer is NULL".into()));
    }
    // SAFETY: `version` and `struct_size` are the first 8 bytes (caller's promise).
    let (version, struct_size) = unsafe {
        (
            std::ptr::addr_of!((*p).version).read_unaligned(),
            std::ptr::addr_of!((*p).struct_size).read_unaligned(),
        )
    };
    if version == 0 || version > HSM_ABI_VENDOR_TABLE_VERSION {
        return Err(refuse(format!(
            "version {version} is not supported: this library accepts versions 1 to {HSM_ABI_VENDOR_TABLE_VERSION}"
        )));
    }
    let size = struct_size as usize;
    if size < V1_SIZE {
        return Err(refuse(format!(
            "struct_size {size} is smaller than {V1_SIZE}, the size of a version {version} table"
        )));
    }
    if size > 1 << 16 {
        return Err(refuse(format!("struct_size {size} is implausibly large")));
    }
    // Copy the prefix the vendor has (a table from an older header is shorter: its missing tail
    // stays zero, i.e. NULL fields); never read past `struct_size`.
    let mut copy = std::mem::MaybeUninit::<HSM_ABI_VENDOR_TABLE>::zeroed();
    let n = size.min(size_of::<HSM_ABI_VENDOR_TABLE>());
    // SAFETY: `p` has `struct_size` >= `n` readable bytes (caller's promise); `copy` has room for
    // `n` bytes and does not overlap the vendor's table.
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), copy.as_mut_ptr().cast::<u8>(), n) };
    // SAFETY: all-zero bytes are a valid table (0 integers, NULL pointer, `None` functions), and
    // the bytes copied over them are the vendor's table of the same C layout: function pointers
    // are NULL (`None`) or the vendor's functions.
    let raw = unsafe { copy.assume_init() };
    if raw.name.is_null() {
        return Err(refuse("mandatory field `name` is NULL".into()));
    }
    // SAFETY: non-NULL, NUL-terminated by the vendor's promise; bounded read below.
    let name = unsafe { bounded_cstr(raw.name, 128) }
        .ok_or_else(|| refuse("`name` is not a NUL-terminated string of at most 128 bytes".into()))?;
    let name = String::from_utf8(name).map_err(|_| refuse("`name` is not UTF-8".into()))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(refuse(format!(
            "`name` {name:?} must be non-empty letters, digits, '-', '_' or '.'"
        )));
    }
    let mandatory: [(&str, bool); 6] = [
        ("open", raw.open.is_some()),
        ("close", raw.close.is_some()),
        ("get_certificate_chain", raw.get_certificate_chain.is_some()),
        ("get_common_name", raw.get_common_name.is_some()),
        ("key_info", raw.key_info.is_some()),
        ("sign", raw.sign.is_some()),
    ];
    if let Some((field, _)) = mandatory.iter().find(|(_, set)| !set) {
        return Err(refuse(format!("table \"{name}\": mandatory field `{field}` is NULL")));
    }
    let tpm = [
        ("get_endorsement_key", raw.get_endorsement_key.is_some()),
        ("get_storage_root_key", raw.get_storage_root_key.is_some()),
        ("activate_identity_key", raw.activate_identity_key.is_some()),
        ("sign_with_identity", raw.sign_with_identity.is_some()),
    ];
    check_group(&name, "TPM", &tpm).map_err(refuse)?;
    let symm = [
        ("get_registration_id", raw.get_registration_id.is_some()),
        ("hmac_sha256", raw.hmac_sha256.is_some()),
    ];
    check_group(&name, "symmetric", &symm).map_err(refuse)?;
    if raw.get_symmetric_key.is_some() && raw.hmac_sha256.is_none() {
        return Err(refuse(format!(
            "table \"{name}\": `get_symmetric_key` is set but the symmetric group (get_registration_id, hmac_sha256) is not"
        )));
    }
    Ok(VendorTable {
        raw,
        name,
        origin: origin.to_string(),
    })
}

fn check_group(name: &str, group: &str, fields: &[(&str, bool)]) -> Result<(), String> {
    let set = fields.iter().filter(|(_, s)| *s).count();
    if set == 0 || set == fields.len() {
        return Ok(());
    }
    let missing: Vec<&str> = fields.iter().filter(|(_, s)| !s).map(|(f, _)| *f).collect();
    Err(format!(
        "table \"{name}\": the {group} group is incomplete: {} NULL while others are set (set all or none)",
        missing.join(", ")
    ))
}

/// Read a NUL-terminated string of at most `max` bytes.
///
/// # Safety
/// `p` is non-NULL and readable up to its NUL or `max` bytes, whichever comes first.
unsafe fn bounded_cstr(p: *const c_char, max: usize) -> Option<Vec<u8>> {
    // SAFETY: strnlen reads at most `max` bytes (caller's promise).
    let n = unsafe { libc::strnlen(p, max) };
    if n >= max {
        return None;
    }
    // SAFETY: `n` readable bytes before the NUL.
    Some(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) }.to_vec())
}

/// Tables loaded from shared objects, by path: a library is loaded once and never unloaded
/// (its handles and static state may outlive any one identity).
static LOADED: Mutex<Option<HashMap<PathBuf, Arc<VendorTable>>>> = Mutex::new(None);
/// Tables registered by the application, by name.
static REGISTERED: Mutex<Option<HashMap<String, Arc<VendorTable>>>> = Mutex::new(None);

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated thread-local string.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        return "unknown dynamic loader error".into();
    }
    // SAFETY: non-NULL NUL-terminated string valid until the next dl* call on this thread.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl VendorTable {
    /// Load a vendor shared object and read its table through `hsm_abi_vendor_table`.
    pub fn load(path: &Path) -> Result<Arc<VendorTable>, Error> {
        Self::load_entry(path, HSM_ABI_VENDOR_ENTRY_POINT)
    }

    /// Like [`VendorTable::load`] with another entry-point symbol (e.g. the library's own
    /// `hsm_abi_vendor_builtin_table`).
    pub fn load_entry(path: &Path, entry_point: &str) -> Result<Arc<VendorTable>, Error> {
        let key = path.join(format!("#{entry_point}"));
        let mut loaded = lock(&LOADED);
        if let Some(t) = loaded.as_ref().and_then(|m| m.get(&key)) {
            return Ok(t.clone());
        }
        let origin = format!("vendor library {}", path.display());
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::config(&origin, "library", "the path contains a NUL byte"))?;
        let c_entry =
            CString::new(entry_point).map_err(|_| Error::config(&origin, "entry point", "contains a NUL byte"))?;
        // SAFETY: a NUL-terminated path; loading runs the library's constructors, which is the
        // point of configuring a vendor library.
        let lib = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            return Err(Error::config(
                &origin,
                "library",
                format!("cannot load: {}", dl_error()),
            ));
        }
        // SAFETY: `lib` is a live handle; the symbol name is NUL-terminated.
        let sym = unsafe { libc::dlsym(lib, c_entry.as_ptr()) };
        if sym.is_null() {
            let e = dl_error();
            // SAFETY: `lib` came from dlopen above and nothing from it is in use.
            unsafe { libc::dlclose(lib) };
            return Err(Error::config(
                &origin,
                "entry point",
                format!("the library does not export `{entry_point}` ({e}): it is not an hsm-abi vendor backend"),
            ));
        }
        // SAFETY: the vendor contract: the entry point has type HSM_ABI_VENDOR_GET_TABLE.
        let get: unsafe extern "C" fn() -> *const HSM_ABI_VENDOR_TABLE = unsafe { std::mem::transmute(sym) };
        // SAFETY: calling the vendor's entry point, then reading the table it returned (its
        // contract: NULL or a valid table of `struct_size` bytes).
        let table = unsafe { read_table(&origin, get()) };
        match table {
            Ok(t) => {
                let t = Arc::new(t);
                loaded.get_or_insert_with(HashMap::new).insert(key, t.clone());
                Ok(t)
            }
            Err(e) => {
                // SAFETY: nothing from the library is kept.
                unsafe { libc::dlclose(lib) };
                Err(e)
            }
        }
    }

    /// A table registered with `hsm_abi_vendor_register` (or [`VendorTable::register`]).
    pub fn registered(name: &str) -> Result<Arc<VendorTable>, Error> {
        let reg = lock(&REGISTERED);
        reg.as_ref().and_then(|m| m.get(name)).cloned().ok_or_else(|| {
            let mut names: Vec<&str> = reg
                .as_ref()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            names.sort_unstable();
            Error::config(
                "vendor registry",
                name,
                format!(
                    "no vendor table registered under this name (registered: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
    }

    /// Validate and register a table; replaces one registered under the same name.
    ///
    /// # Safety
    /// `p` is NULL or a table that, with its functions, stays valid for the process lifetime.
    pub unsafe fn register(p: *const HSM_ABI_VENDOR_TABLE) -> Result<Arc<VendorTable>, Error> {
        // SAFETY: forwarded promise.
        let t = Arc::new(unsafe { read_table("hsm_abi_vendor_register", p) }?);
        lock(&REGISTERED)
            .get_or_insert_with(HashMap::new)
            .insert(t.name.clone(), t.clone());
        Ok(t)
    }

    /// The built-in backends of this library, seen through the vendor table (the identity string
    /// is the path of a configuration file). Used to run the conformance check on them.
    pub fn builtin() -> Result<Arc<VendorTable>, Error> {
        // SAFETY: a static table of this library.
        unsafe { read_table("the built-in vendor table", &BUILTIN_TABLE.0) }.map(Arc::new)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the table came from ("vendor library PATH", "hsm_abi_vendor_register").
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn version(&self) -> u32 {
        self.raw.version
    }

    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            public_key: self.raw.get_public_key.is_some(),
            error_string: self.raw.error_string.is_some(),
            tpm: self.raw.get_endorsement_key.is_some(),
            symmetric: self.raw.hmac_sha256.is_some(),
            symmetric_key_export: self.raw.get_symmetric_key.is_some(),
        }
    }

    /// Whether a bytes field is set.
    pub fn has(&self, field: BytesField) -> bool {
        field.get(&self.raw).is_some()
    }

    /// The vendor's explanation of `rc`, if it gives one.
    pub fn explain(&self, rc: c_int) -> String {
        let generic = match rc {
            HSM_ABI_ERR_INVALID_ARGUMENT => "invalid argument",
            HSM_ABI_ERR_UNSUPPORTED => "not supported by this identity",
            HSM_ABI_ERR_BUFFER_TOO_SMALL => "buffer too small",
            _ => "vendor error",
        };
        let Some(f) = self.raw.error_string else {
            return generic.to_string();
        };
        // SAFETY: the vendor's function; returns NULL or a static NUL-terminated string.
        let p = unsafe { f(rc) };
        if p.is_null() {
            return generic.to_string();
        }
        // SAFETY: non-NULL, NUL-terminated (vendor's promise), read at most 512 bytes.
        match unsafe { bounded_cstr(p, 512) } {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => format!("{generic} (error_string returned no NUL within 512 bytes)"),
        }
    }

    /// The error for a non-zero return code of field `op`.
    pub(crate) fn error(&self, op: &str, rc: c_int) -> Error {
        if rc == HSM_ABI_ERR_UNSUPPORTED {
            return Error::unsupported(format!("vendor backend \"{}\"", self.name), op.to_string());
        }
        vendor_error(&self.name, op, rc, self.explain(rc))
    }

    /// Call `open`; returns the vendor's code and, on success, the identity.
    pub fn probe_open(self: &Arc<Self>, identity: Option<&str>) -> Result<(c_int, Option<RawIdentity>), Error> {
        let c = identity
            .map(|s| CString::new(s).map_err(|_| Error::invalid("identity", "contains a NUL byte")))
            .transpose()?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        let open = self
            .raw
            .open
            .ok_or_else(|| Error::Internal("validated table without open".into()))?;
        // SAFETY: the vendor's open with a NUL-terminated string (or NULL, which it must refuse)
        // and a writable out pointer.
        let rc = unsafe { open(c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()), &mut handle) };
        if rc != HSM_ABI_OK {
            return Ok((rc, None));
        }
        if handle.is_null() {
            return Err(vendor_error(
                &self.name,
                "open",
                rc,
                "returned success with a NULL handle",
            ));
        }
        Ok((
            rc,
            Some(RawIdentity {
                table: self.clone(),
                handle,
            }),
        ))
    }

    /// Open an identity; a failure is an error naming the vendor's code.
    pub fn open(self: &Arc<Self>, identity: &str) -> Result<RawIdentity, Error> {
        match self.probe_open(Some(identity))? {
            (_, Some(id)) => Ok(id),
            (rc, None) => Err(vendor_error(
                &self.name,
                &format!("open identity {identity:?}"),
                rc,
                self.explain(rc),
            )),
        }
    }

    /// Call `open` with a NULL out pointer (it must fail, not crash).
    pub fn probe_open_null_out(&self, identity: &str) -> Result<c_int, Error> {
        let c = CString::new(identity).map_err(|_| Error::invalid("identity", "contains a NUL byte"))?;
        let open = self
            .raw
            .open
            .ok_or_else(|| Error::Internal("validated table without open".into()))?;
        // SAFETY: a conformance probe: the contract requires the vendor to refuse a NULL out.
        Ok(unsafe { open(c.as_ptr(), std::ptr::null_mut()) })
    }

    /// Call `close(NULL)` (it must be a no-op).
    pub fn probe_close_null(&self) {
        if let Some(close) = self.raw.close {
            // SAFETY: the contract makes close(NULL) a no-op.
            unsafe { close(std::ptr::null_mut()) }
        }
    }
}

/// The result of one raw call that produces bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The vendor's return code.
    pub rc: c_int,
    /// `*len` after the call.
    pub len: usize,
    /// The bytes written (the first `min(len, capacity)` bytes of the buffer) on success.
    pub data: Vec<u8>,
    /// The vendor wrote past the capacity it was given.
    pub overrun: bool,
}

/// A caller buffer with a canary after its capacity.
struct GuardedBuf {
    bytes: Vec<u8>,
    capacity: usize,
}

impl GuardedBuf {
    fn new(capacity: usize) -> Self {
        let mut bytes = vec![0u8; capacity + CANARY_LEN];
        bytes[capacity..].fill(CANARY);
        GuardedBuf { bytes, capacity }
    }

    fn ptr(&mut self) -> *mut c_uchar {
        self.bytes.as_mut_ptr()
    }

    fn overrun(&self) -> bool {
        self.bytes[self.capacity..].iter().any(|b| *b != CANARY)
    }

    fn probe(self, rc: c_int, len: usize) -> Probe {
        let overrun = self.overrun();
        let mut data = self.bytes;
        data.truncate(len.min(self.capacity));
        if rc != HSM_ABI_OK {
            data.clear();
        }
        Probe { rc, len, data, overrun }
    }
}

/// An identity opened in a vendor table; closed on drop. Calls are safe Rust: every pointer
/// passed is valid, every result checked.
pub struct RawIdentity {
    table: Arc<VendorTable>,
    handle: *mut c_void,
}

// SAFETY: the vendor threading rule: any function but open/close may be called from any thread,
// concurrently; close runs only in Drop, when no other reference exists.
unsafe impl Send for RawIdentity {}
// SAFETY: as above.
unsafe impl Sync for RawIdentity {}

impl std::fmt::Debug for RawIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawIdentity").field("table", &self.table.name).finish()
    }
}

impl Drop for RawIdentity {
    fn drop(&mut self) {
        if let Some(close) = self.table.raw.close {
            // SAFETY: a handle from open, closed once, with no other user left.
            unsafe { close(self.handle) }
        }
    }
}

impl RawIdentity {
    pub fn table(&self) -> &Arc<VendorTable> {
        &self.table
    }

    /// One raw call of a bytes field with a buffer of `capacity` bytes (`None`: `buf` NULL and
    /// `*len` 0). `Ok(None)` when the field is NULL in the table.
    pub fn probe_bytes(&self, field: BytesField, capacity: Option<usize>) -> Option<Probe> {
        let f = field.get(&self.table.raw)?;
        Some(self.guarded(capacity, |buf, len| {
            // SAFETY: the vendor's function with its handle, a buffer of `*len` writable bytes
            // (or NULL with 0) and a writable length.
            unsafe { f(self.handle, buf, len) }
        }))
    }

    /// Call a bytes field with `len` NULL (it must fail, not crash).
    pub fn probe_bytes_null_len(&self, field: BytesField) -> Option<c_int> {
        let f = field.get(&self.table.raw)?;
        // SAFETY: a conformance probe: the contract requires refusing a NULL `len`.
        Some(unsafe { f(self.handle, std::ptr::null_mut(), std::ptr::null_mut()) })
    }

    /// One raw `sign` call.
    pub fn probe_sign(&self, scheme: u32, msg: &[u8], capacity: Option<usize>) -> Probe {
        let Some(f) = self.table.raw.sign else {
            return Probe {
                rc: HSM_ABI_ERR_UNSUPPORTED,
                len: 0,
                data: Vec::new(),
                overrun: false,
            };
        };
        self.guarded(capacity, |buf, len| {
            // SAFETY: `msg` readable for its length; buffer and length as for probe_bytes.
            unsafe { f(self.handle, scheme, msg.as_ptr(), msg.len(), buf, len) }
        })
    }

    /// `sign` with bad pointers (they must be refused, not crash): a NULL message with a length
    /// of 16 (`null_msg`), or a NULL `sig_len`.
    pub fn probe_sign_bad_pointers(&self, scheme: u32, null_msg: bool) -> c_int {
        let Some(f) = self.table.raw.sign else {
            return HSM_ABI_ERR_UNSUPPORTED;
        };
        let msg = [0u8; 16];
        let mut buf = [0u8; 1024];
        let mut len = buf.len();
        // SAFETY: a conformance probe: every pointer is valid or NULL, and the contract requires
        // the vendor to refuse a NULL message with a non-zero length and a NULL length.
        unsafe {
            if null_msg {
                f(
                    self.handle,
                    scheme,
                    std::ptr::null(),
                    msg.len(),
                    buf.as_mut_ptr(),
                    &mut len,
                )
            } else {
                f(
                    self.handle,
                    scheme,
                    msg.as_ptr(),
                    msg.len(),
                    buf.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            }
        }
    }

    /// One raw `sign_with_identity` call (`None` when the TPM group is absent).
    pub fn probe_sign_with_identity(&self, data: &[u8], capacity: Option<usize>) -> Option<Probe> {
        let f = self.table.raw.sign_with_identity?;
        Some(self.guarded(capacity, |buf, len| {
            // SAFETY: as for probe_sign.
            unsafe { f(self.handle, data.as_ptr(), data.len(), buf, len) }
        }))
    }

    /// One raw `activate_identity_key` call (`None` when the TPM group is absent).
    pub fn probe_activate(&self, blob: &[u8]) -> Option<c_int> {
        let f = self.table.raw.activate_identity_key?;
        // SAFETY: `blob` readable for its length.
        Some(unsafe { f(self.handle, blob.as_ptr(), blob.len()) })
    }

    /// One raw `hmac_sha256` call (`None` when the symmetric group is absent); `null_mac` passes
    /// a NULL output (it must fail, not crash).
    pub fn probe_hmac(&self, data: &[u8], null_mac: bool) -> Option<(c_int, [u8; 32], bool)> {
        let f = self.table.raw.hmac_sha256?;
        let mut buf = GuardedBuf::new(32);
        let out = if null_mac { std::ptr::null_mut() } else { buf.ptr() };
        // SAFETY: `data` readable; `out` NULL (probe) or 32 writable bytes.
        let rc = unsafe { f(self.handle, data.as_ptr(), data.len(), out) };
        let mut mac = [0u8; 32];
        mac.copy_from_slice(&buf.bytes[..32]);
        Some((rc, mac, buf.overrun()))
    }

    /// One raw `key_info` call with the caller's `struct_size` set to `struct_size`.
    pub fn probe_key_info(&self, struct_size: u32) -> (c_int, HSM_ABI_KEY_INFO) {
        let mut info = HSM_ABI_KEY_INFO {
            struct_size,
            algorithm: 0,
            curve_or_bits: 0,
            scheme_count: 0,
            schemes: [0; super::signer::HSM_ABI_MAX_SCHEMES],
            max_signature_len: 0,
        };
        let Some(f) = self.table.raw.key_info else {
            return (HSM_ABI_ERR_UNSUPPORTED, info);
        };
        // SAFETY: a writable, initialized HSM_ABI_KEY_INFO of the size announced.
        let rc = unsafe { f(self.handle, &mut info) };
        (rc, info)
    }

    /// Call `key_info` with a NULL `out` (it must fail, not crash).
    pub fn probe_key_info_null(&self) -> c_int {
        match self.table.raw.key_info {
            // SAFETY: a conformance probe: the contract requires refusing NULL.
            Some(f) => unsafe { f(self.handle, std::ptr::null_mut()) },
            None => HSM_ABI_ERR_UNSUPPORTED,
        }
    }

    fn guarded(&self, capacity: Option<usize>, call: impl FnOnce(*mut c_uchar, *mut usize) -> c_int) -> Probe {
        match capacity {
            None => {
                let mut len = 0usize;
                let rc = call(std::ptr::null_mut(), &mut len);
                Probe {
                    rc,
                    len,
                    data: Vec::new(),
                    overrun: false,
                }
            }
            Some(cap) => {
                let mut buf = GuardedBuf::new(cap);
                let mut len = cap;
                let rc = call(buf.ptr(), &mut len);
                buf.probe(rc, len)
            }
        }
    }

    /// Check one probe made with `capacity`: success within capacity, no overrun.
    fn checked(&self, op: &str, capacity: usize, p: &Probe) -> Result<(), Error> {
        if p.overrun {
            return Err(vendor_error(
                &self.table.name,
                op,
                p.rc,
                format!("wrote past the end of a {capacity}-byte buffer"),
            ));
        }
        if p.rc == HSM_ABI_OK && p.len > capacity {
            return Err(vendor_error(
                &self.table.name,
                op,
                p.rc,
                format!("reported {} bytes written into a {capacity}-byte buffer", p.len),
            ));
        }
        Ok(())
    }

    /// The size-query protocol: ask for the size, then fetch; a few retries if it grows.
    fn fetch(&self, op: &str, mut attempt: impl FnMut(Option<usize>) -> Probe) -> Result<Vec<u8>, Error> {
        let first = attempt(None);
        let mut needed = match first.rc {
            HSM_ABI_OK if first.len == 0 => return Ok(Vec::new()),
            HSM_ABI_OK => {
                return Err(vendor_error(
                    &self.table.name,
                    op,
                    first.rc,
                    format!("returned success with a NULL buffer and a length of {}", first.len),
                ));
            }
            HSM_ABI_ERR_BUFFER_TOO_SMALL => first.len,
            rc => return Err(self.table.error(op, rc)),
        };
        for _ in 0..3 {
            if needed == 0 || needed > MAX_OUTPUT {
                return Err(vendor_error(
                    &self.table.name,
                    op,
                    HSM_ABI_ERR_BUFFER_TOO_SMALL,
                    format!("asked for a buffer of {needed} bytes (accepted: 1 to {MAX_OUTPUT})"),
                ));
            }
            let p = attempt(Some(needed));
            self.checked(op, needed, &p)?;
            match p.rc {
                HSM_ABI_OK => return Ok(p.data),
                HSM_ABI_ERR_BUFFER_TOO_SMALL if p.len > needed => needed = p.len,
                HSM_ABI_ERR_BUFFER_TOO_SMALL => {
                    return Err(vendor_error(
                        &self.table.name,
                        op,
                        p.rc,
                        format!(
                            "refused a buffer of the {needed} bytes it asked for (and now asks for {})",
                            p.len
                        ),
                    ));
                }
                rc => return Err(self.table.error(op, rc)),
            }
        }
        Err(vendor_error(
            &self.table.name,
            op,
            HSM_ABI_ERR_BUFFER_TOO_SMALL,
            "the needed size kept growing",
        ))
    }

    /// The whole output of a bytes field.
    pub fn bytes(&self, field: BytesField) -> Result<Vec<u8>, Error> {
        if !self.table.has(field) {
            return Err(Error::unsupported(
                format!("vendor backend \"{}\"", self.table.name),
                format!("{} (NULL in its table)", field.name()),
            ));
        }
        self.fetch(field.name(), |cap| {
            self.probe_bytes(field, cap).unwrap_or(Probe {
                rc: HSM_ABI_ERR_UNSUPPORTED,
                len: 0,
                data: Vec::new(),
                overrun: false,
            })
        })
    }

    /// A text field: UTF-8, no NUL, not empty.
    pub fn text(&self, field: BytesField) -> Result<String, Error> {
        let b = self.bytes(field)?;
        let bad = |why: &str| vendor_error(&self.table.name, field.name(), 0, why.to_string());
        if b.is_empty() {
            return Err(bad("returned an empty string"));
        }
        if b.contains(&0) {
            return Err(bad("returned text containing a NUL byte"));
        }
        String::from_utf8(b).map_err(|_| bad("returned text that is not UTF-8"))
    }

    /// The key description, validated.
    pub fn key_info(&self) -> Result<HSM_ABI_KEY_INFO, Error> {
        let (rc, info) = self.probe_key_info(size_of::<HSM_ABI_KEY_INFO>() as u32);
        if rc != HSM_ABI_OK {
            return Err(self.table.error("key_info", rc));
        }
        crate::vendor::validate_key_info(&self.table.name, &info)?;
        Ok(info)
    }

    /// Sign; the buffer is `max_signature_len` bytes (the size query is followed if the vendor
    /// asks for more).
    pub fn sign_raw(&self, scheme: u32, msg: &[u8], max_signature_len: usize) -> Result<Vec<u8>, Error> {
        let p = self.probe_sign(scheme, msg, Some(max_signature_len));
        self.checked("sign", max_signature_len, &p)?;
        match p.rc {
            HSM_ABI_OK => Ok(p.data),
            HSM_ABI_ERR_BUFFER_TOO_SMALL => Err(vendor_error(
                &self.table.name,
                "sign",
                p.rc,
                format!(
                    "refused a buffer of max_signature_len = {max_signature_len} bytes (asked for {})",
                    p.len
                ),
            )),
            rc => Err(self.table.error("sign", rc)),
        }
    }

    pub fn activate(&self, blob: &[u8]) -> Result<(), Error> {
        match self.probe_activate(blob) {
            None => Err(Error::unsupported(
                format!("vendor backend \"{}\"", self.table.name),
                "activate_identity_key (the TPM group is NULL in its table)",
            )),
            Some(HSM_ABI_OK) => Ok(()),
            Some(rc) => Err(self.table.error("activate_identity_key", rc)),
        }
    }

    pub fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        if self.table.raw.sign_with_identity.is_none() {
            return Err(Error::unsupported(
                format!("vendor backend \"{}\"", self.table.name),
                "sign_with_identity (the TPM group is NULL in its table)",
            ));
        }
        let out = self.fetch("sign_with_identity", |cap| {
            self.probe_sign_with_identity(data, cap).unwrap_or(Probe {
                rc: HSM_ABI_ERR_UNSUPPORTED,
                len: 0,
                data: Vec::new(),
                overrun: false,
            })
        })?;
        if out.is_empty() {
            return Err(vendor_error(
                &self.table.name,
                "sign_with_identity",
                0,
                "returned an empty signature",
            ));
        }
        Ok(out)
    }

    pub fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32], Error> {
        match self.probe_hmac(data, false) {
            None => Err(Error::unsupported(
                format!("vendor backend \"{}\"", self.table.name),
                "hmac_sha256 (the symmetric group is NULL in its table)",
            )),
            Some((_, _, true)) => Err(vendor_error(
                &self.table.name,
                "hmac_sha256",
                0,
                "wrote past the end of the 32-byte mac buffer",
            )),
            Some((HSM_ABI_OK, mac, false)) => Ok(mac),
            Some((rc, _, false)) => Err(self.table.error("hmac_sha256", rc)),
        }
    }
}

// ---- C exports ----

/// Register a vendor table from a C program linked with this library, before the SDK starts.
/// The table is validated (version, `struct_size`, mandatory fields, complete optional groups)
/// and copied; its `name` selects it in the configuration (`registered = "name"`); registering a
/// name again replaces the table for identities opened afterwards. Returns 0, or
/// `HSM_ABI_ERR_CONFIG` with the reason in `hsm_abi_last_error`.
///
/// # Safety
/// `table` is NULL or a valid table; the functions it points to stay valid for the process.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_vendor_register(table: *const HSM_ABI_VENDOR_TABLE) -> c_int {
    ffi_boundary!("hsm_abi_vendor_register", {
        // SAFETY: promise of the caller, as documented.
        let r = unsafe { VendorTable::register(table) }.map(|_| ());
        to_code("hsm_abi_vendor_register", r.map_err(Into::into))
    })
}

/// Load a vendor shared object (as `library = "..."` does) and check its table, without opening
/// an identity. Returns 0 or an error code (reason in `hsm_abi_last_error`).
///
/// # Safety
/// `path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn hsm_abi_vendor_check_library(path: *const c_char) -> c_int {
    ffi_boundary!("hsm_abi_vendor_check_library", {
        // SAFETY: promise of the caller, as documented.
        let r = unsafe { ptr::cstr("path", path) }.and_then(|p| VendorTable::load(Path::new(p)).map(|_| ()));
        to_code("hsm_abi_vendor_check_library", r.map_err(Into::into))
    })
}

// ---- the built-in backends as a vendor table ----

/// The identity behind a handle of the built-in table: the sections of one configuration file.
struct BuiltinIdentity {
    x509: Box<dyn X509Identity>,
    key: Arc<dyn SigningKey>,
    symmetric: Option<Box<dyn SymmetricIdentity>>,
    tpm: Option<Mutex<Box<dyn TpmIdentity>>>,
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

/// The backends built into this library as a vendor table (name "hsm-abi-builtin"): `open`
/// takes the path of a configuration file and opens its `[x509]` section (and `[symmetric_key]`
/// and `[tpm]` when present; without them those operations return `HSM_ABI_ERR_UNSUPPORTED`).
/// Lets the conformance check run on the project's own backends and lets a C program wrap them.
#[unsafe(no_mangle)]
pub extern "C" fn hsm_abi_vendor_builtin_table() -> *const HSM_ABI_VENDOR_TABLE {
    ffi_boundary!("hsm_abi_vendor_builtin_table", { &BUILTIN_TABLE.0 })
}

fn builtin_open_config(path: &str) -> Result<BuiltinIdentity, Error> {
    let config = Config::from_file(Path::new(path))?;
    let x509 = registry::open_x509(&config)?;
    let key = x509.signing_key()?;
    let symmetric = match config.symmetric_key {
        Some(_) => Some(registry::open_symmetric(&config)?),
        None => None,
    };
    let tpm = match config.tpm {
        Some(_) => Some(Mutex::new(registry::open_tpm(&config)?)),
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
                id.tpm("get_endorsement_key")?.endorsement_key()
            })
        }
    })
}

unsafe extern "C" fn builtin_srk(handle: *mut c_void, buf: *mut c_uchar, len: *mut usize) -> c_int {
    ffi_boundary!("hsm-abi-builtin get_storage_root_key", {
        // SAFETY: table contract.
        unsafe {
            builtin_bytes("hsm-abi-builtin get_storage_root_key", handle, buf, len, |id| {
                id.tpm("get_storage_root_key")?.storage_root_key()
            })
        }
    })
}

impl BuiltinIdentity {
    /// The [tpm] identity for `op`, locked, or a clear error when the configuration has none.
    fn tpm(&self, op: &str) -> Result<MutexGuard<'_, Box<dyn TpmIdentity>>, Error> {
        let m = self.tpm.as_ref().ok_or_else(|| unsupported_here(op, "tpm"))?;
        Ok(m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
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
            .and_then(|(id, blob)| id.tpm("activate_identity_key")?.activate_identity_key(blob));
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
