//! The C side of vendor backends as the facade `hsm` sees it: [`RawIdentity`] (an identity opened
//! in a C table, every call guarded) implements [`hsm::vendor::RawVendorIdentity`], and
//! [`install`] gives `hsm` the loader of tables (shared objects and tables registered from C).
//! Every entry point of this library that opens identities installs it; a Rust program that
//! opens vendor identities through `hsm` calls [`install`] once.
//!
//! The safe identities, key tokens and checks are `hsm::vendor` (re-exported here); the C table
//! types, loader and guarded calls are `crate::ffi::vendor`; the conformance run is
//! [`conformance`].

pub mod conformance;

use std::sync::Arc;

use hsm_core::Result;

use crate::ffi::signer_types::{HSM_ABI_KEY_ALGORITHM_EC, HSM_ABI_KEY_ALGORITHM_RSA, HSM_ABI_KEY_INFO};
pub use crate::ffi::vendor::{HSM_ABI_VENDOR_ENTRY_POINT, Probe, RawIdentity, VendorTable};
pub use hsm::vendor::*;

/// The table `source` names: loaded from a shared object, or registered from C.
pub fn table(source: &Source) -> Result<Arc<VendorTable>> {
    match source {
        Source::Library(p) => VendorTable::load(p),
        Source::Registered(n) => VendorTable::registered(n),
    }
}

struct Loader;

impl VendorLoader for Loader {
    fn open(&self, source: &Source, identity: &str) -> Result<Arc<dyn RawVendorIdentity>> {
        Ok(Arc::new(table(source)?.open(identity)?))
    }
}

static LOADER: Loader = Loader;

/// Let `hsm` open vendor identities through this library's loader (idempotent).
pub fn install() {
    hsm::vendor::install_loader(&LOADER);
}

/// A key description from C in the facade's terms (not yet validated).
pub(crate) fn key_info_of(info: &HSM_ABI_KEY_INFO) -> KeyInfo {
    let count = (info.scheme_count as usize).min(info.schemes.len());
    KeyInfo {
        family: match info.algorithm {
            HSM_ABI_KEY_ALGORITHM_EC => KeyFamily::Ec,
            HSM_ABI_KEY_ALGORITHM_RSA => KeyFamily::Rsa,
            other => KeyFamily::Other(other),
        },
        algorithm: info.algorithm,
        curve_or_bits: info.curve_or_bits,
        // A count beyond the array is kept visible to the check (it names scheme_count).
        schemes: if info.scheme_count as usize > info.schemes.len() {
            vec![0; info.scheme_count as usize]
        } else {
            info.schemes[..count].to_vec()
        },
        max_signature_len: info.max_signature_len,
    }
}

impl RawIdentity {
    /// The key description, validated (as the conformance run reports it).
    pub(crate) fn key_info_checked(&self) -> Result<HSM_ABI_KEY_INFO> {
        let (rc, info) = self.probe_key_info(size_of::<HSM_ABI_KEY_INFO>() as u32);
        if rc != crate::ffi::errors::HSM_ABI_OK {
            return Err(self.table().error("key_info", rc));
        }
        validate_key_info(self.table().name(), &key_info_of(&info))?;
        Ok(info)
    }
}

impl RawVendorIdentity for RawIdentity {
    fn backend(&self) -> &str {
        self.table().name()
    }

    fn capabilities(&self) -> Capabilities {
        self.table().capabilities()
    }

    fn has(&self, field: BytesField) -> bool {
        self.table().has(field)
    }

    fn key_info(&self) -> Result<KeyInfo> {
        let (rc, info) = self.probe_key_info(size_of::<HSM_ABI_KEY_INFO>() as u32);
        if rc != crate::ffi::errors::HSM_ABI_OK {
            return Err(self.table().error("key_info", rc));
        }
        Ok(key_info_of(&info))
    }

    fn bytes(&self, field: BytesField) -> Result<Vec<u8>> {
        RawIdentity::bytes(self, field)
    }

    fn text(&self, field: BytesField) -> Result<String> {
        RawIdentity::text(self, field)
    }

    fn sign_raw(&self, scheme: u32, msg: &[u8], max_signature_len: usize) -> Result<Vec<u8>> {
        RawIdentity::sign_raw(self, scheme, msg, max_signature_len)
    }

    fn activate(&self, blob: &[u8]) -> Result<()> {
        RawIdentity::activate(self, blob)
    }

    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>> {
        RawIdentity::sign_with_identity(self, data)
    }

    fn hmac_sha256(&self, data: &[u8]) -> Result<[u8; 32]> {
        RawIdentity::hmac_sha256(self, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_the_entry_point() {
        let h = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../include/hsm_abi.h"));
        let define = format!("#define HSM_ABI_VENDOR_ENTRY_POINT \"{HSM_ABI_VENDOR_ENTRY_POINT}\"");
        assert!(h.contains(&define), "include/hsm_abi.h lacks {define}");
    }

    #[test]
    fn key_info_from_c() {
        let mut info = HSM_ABI_KEY_INFO {
            struct_size: size_of::<HSM_ABI_KEY_INFO>() as u32,
            algorithm: HSM_ABI_KEY_ALGORITHM_EC,
            curve_or_bits: 256,
            scheme_count: 1,
            schemes: [0x0403, 0, 0, 0, 0, 0, 0, 0],
            max_signature_len: 72,
        };
        assert!(validate_key_info("t", &key_info_of(&info)).is_ok());
        info.scheme_count = 9;
        let e = validate_key_info("t", &key_info_of(&info)).unwrap_err().to_string();
        assert!(e.contains("scheme_count 9"), "{e}");
        info.scheme_count = 1;
        info.algorithm = HSM_ABI_KEY_ALGORITHM_RSA;
        info.curve_or_bits = 1024;
        let e = validate_key_info("t", &key_info_of(&info)).unwrap_err().to_string();
        // The C code, as the vendor gave it (the C tests look for this text).
        assert!(e.contains("unsupported key: algorithm 2, curve_or_bits 1024"), "{e}");
        info.algorithm = 7;
        assert!(validate_key_info("t", &key_info_of(&info)).is_err());
    }
}
