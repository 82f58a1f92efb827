//! Reading, validating, loading and registering vendor tables.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hsm_core::{Error, Origin};

use super::table_v1::*;
use crate::ffi::errors::{HSM_ABI_ERR_BUFFER_TOO_SMALL, HSM_ABI_ERR_INVALID_ARGUMENT, HSM_ABI_ERR_UNSUPPORTED};
pub use hsm::vendor::{BytesField, Capabilities};

/// Size of the version-1 table. While version 1 is the newest, that is the whole struct; when a
/// version 2 appends fields, this becomes the offset of its first new field.
pub(crate) const V1_SIZE: usize = size_of::<HSM_ABI_VENDOR_TABLE>();
/// Largest output the library accepts from a vendor (a certificate chain is far smaller).
pub(crate) const MAX_OUTPUT: usize = 1 << 20;

pub(super) fn vendor_error(backend: &str, op: &str, rv: c_int, message: impl Into<String>) -> Error {
    Error::Device {
        origin: Origin::Vendor,
        op: format!("{backend}: {op}"),
        rv: u64::from(rv as u32),
        message: message.into(),
    }
}

/// The C field behind a [`BytesField`].
pub(super) fn getter(field: BytesField, t: &HSM_ABI_VENDOR_TABLE) -> HSM_ABI_VENDOR_GET_BYTES {
    match field {
        BytesField::CertificateChain => t.get_certificate_chain,
        BytesField::CommonName => t.get_common_name,
        BytesField::PublicKey => t.get_public_key,
        BytesField::EndorsementKey => t.get_endorsement_key,
        BytesField::StorageRootKey => t.get_storage_root_key,
        BytesField::RegistrationId => t.get_registration_id,
        BytesField::SymmetricKey => t.get_symmetric_key,
    }
}

/// A validated vendor table, with the library it came from (kept loaded for the process).
pub struct VendorTable {
    pub(super) raw: HSM_ABI_VENDOR_TABLE,
    pub(super) name: String,
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
pub(crate) unsafe fn read_table(origin: &str, p: *const HSM_ABI_VENDOR_TABLE) -> Result<VendorTable, Error> {
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
    pub(crate) fn load_entry(path: &Path, entry_point: &str) -> Result<Arc<VendorTable>, Error> {
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

    /// The table's name (its `name` field).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the table came from ("vendor library PATH", "hsm_abi_vendor_register").
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The table version the library filled in.
    pub fn version(&self) -> u32 {
        self.raw.version
    }

    /// The optional groups the table fills (a NULL entry is a group the library does not offer).
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
        getter(field, &self.raw).is_some()
    }

    /// The vendor's explanation of `rc`, if it gives one.
    pub(crate) fn explain(&self, rc: c_int) -> String {
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
}
