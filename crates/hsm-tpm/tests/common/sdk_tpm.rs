//! The SDK's TPM interface of hsm-abi (`hsm_client_tpm_interface`), called as the C SDK calls it.
// The SDK's calls are FFI calls.
#![allow(unsafe_code)]

use hsm_abi::ffi::sdk::{HSM_CLIENT_GET_ENDORSEMENT_KEY, HSM_CLIENT_HANDLE, HSM_CLIENT_TPM_INTERFACE};

/// An open handle of the interface, destroyed on drop.
pub struct SdkTpm {
    table: &'static HSM_CLIENT_TPM_INTERFACE,
    handle: HSM_CLIENT_HANDLE,
}

impl SdkTpm {
    /// Configures hsm-abi with a `[tpm]` section for `tcti`, then init and create.
    pub fn open(tcti: &str) -> SdkTpm {
        let toml = std::ffi::CString::new(format!("[tpm]\nbackend = \"tpm\"\ntcti = \"{tcti}\"\n")).unwrap();
        // SAFETY: `toml` is NUL-terminated.
        assert_eq!(unsafe { hsm_abi::ffi::ext::hsm_abi_configure_toml(toml.as_ptr()) }, 0);
        assert_eq!(hsm_abi::ffi::sdk::hsm_client_tpm_init(), 0);
        // SAFETY: returns a pointer to a static table.
        let table = unsafe { &*hsm_abi::ffi::sdk::hsm_client_tpm_interface() };
        // SAFETY: create takes no argument.
        let handle = unsafe { (table.hsm_client_tpm_create.unwrap())() };
        assert!(!handle.is_null(), "hsm_client_tpm_create");
        SdkTpm { table, handle }
    }

    fn bytes(&self, f: HSM_CLIENT_GET_ENDORSEMENT_KEY) -> Vec<u8> {
        let mut p = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: open handle, writable outputs.
        assert_eq!(unsafe { (f.unwrap())(self.handle, &mut p, &mut len) }, 0);
        take(p, len)
    }

    /// `hsm_client_get_ek`.
    pub fn ek(&self) -> Vec<u8> {
        self.bytes(self.table.hsm_client_get_ek)
    }

    /// `hsm_client_get_srk`.
    pub fn srk(&self) -> Vec<u8> {
        self.bytes(self.table.hsm_client_get_srk)
    }

    /// `hsm_client_activate_identity_key`: its result code.
    pub fn activate(&self, blob: &[u8]) -> i32 {
        // SAFETY: open handle; `blob` valid for its length.
        unsafe { (self.table.hsm_client_activate_identity_key.unwrap())(self.handle, blob.as_ptr(), blob.len()) }
    }

    /// `hsm_client_sign_with_identity`, which must succeed.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut p = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: open handle; `data` valid for its length; outputs writable.
        let rc = unsafe {
            (self.table.hsm_client_sign_with_identity.unwrap())(
                self.handle,
                data.as_ptr(),
                data.len(),
                &mut p,
                &mut len,
            )
        };
        assert_eq!(rc, 0, "hsm_client_sign_with_identity");
        take(p, len)
    }
}

/// The `len` bytes at `p`, which the library malloc'd for the caller: copied, then freed.
fn take(p: *mut u8, len: usize) -> Vec<u8> {
    // SAFETY: on success `p` holds `len` bytes from malloc, ours to free.
    let v = unsafe { std::slice::from_raw_parts(p, len) }.to_vec();
    // SAFETY: freed once, with free(), as the SDK does.
    unsafe { libc::free(p.cast()) };
    v
}

impl Drop for SdkTpm {
    fn drop(&mut self) {
        // SAFETY: created once, destroyed once.
        unsafe { (self.table.hsm_client_tpm_destroy.unwrap())(self.handle) };
    }
}
