//! An identity opened in a vendor table: every call made through guarded buffers (a canary
//! after the capacity), every result checked. The `probe_*` calls are the conformance probes.

use std::ffi::{CString, c_int, c_uchar, c_void};
use std::sync::Arc;

use hsm_core::Error;

use super::loader::{BytesField, MAX_OUTPUT, VendorTable, vendor_error};
use crate::ffi::errors::{HSM_ABI_ERR_BUFFER_TOO_SMALL, HSM_ABI_ERR_UNSUPPORTED, HSM_ABI_OK};
use crate::ffi::signer_types::{HSM_ABI_KEY_INFO, HSM_ABI_MAX_SCHEMES};

/// Canary bytes after every caller buffer: a vendor that writes past its capacity is caught.
const CANARY_LEN: usize = 16;
const CANARY: u8 = 0xa5;

impl VendorTable {
    /// Call `open`; returns the vendor's code and, on success, the identity.
    pub(crate) fn probe_open(self: &Arc<Self>, identity: Option<&str>) -> Result<(c_int, Option<RawIdentity>), Error> {
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
    pub(crate) fn probe_open_null_out(&self, identity: &str) -> Result<c_int, Error> {
        let c = CString::new(identity).map_err(|_| Error::invalid("identity", "contains a NUL byte"))?;
        let open = self
            .raw
            .open
            .ok_or_else(|| Error::Internal("validated table without open".into()))?;
        // SAFETY: a conformance probe: the contract requires the vendor to refuse a NULL out.
        Ok(unsafe { open(c.as_ptr(), std::ptr::null_mut()) })
    }

    /// Call `close(NULL)` (it must be a no-op).
    pub(crate) fn probe_close_null(&self) {
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
    pub(super) table: Arc<VendorTable>,
    pub(super) handle: *mut c_void,
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
    /// The table the identity was opened through.
    pub fn table(&self) -> &Arc<VendorTable> {
        &self.table
    }

    /// One raw call of a bytes field with a buffer of `capacity` bytes (`None`: `buf` NULL and
    /// `*len` 0). `Ok(None)` when the field is NULL in the table.
    pub(crate) fn probe_bytes(&self, field: BytesField, capacity: Option<usize>) -> Option<Probe> {
        let f = super::loader::getter(field, &self.table.raw)?;
        Some(self.guarded(capacity, |buf, len| {
            // SAFETY: the vendor's function with its handle, a buffer of `*len` writable bytes
            // (or NULL with 0) and a writable length.
            unsafe { f(self.handle, buf, len) }
        }))
    }

    /// Call a bytes field with `len` NULL (it must fail, not crash).
    pub(crate) fn probe_bytes_null_len(&self, field: BytesField) -> Option<c_int> {
        let f = super::loader::getter(field, &self.table.raw)?;
        // SAFETY: a conformance probe: the contract requires refusing a NULL `len`.
        Some(unsafe { f(self.handle, std::ptr::null_mut(), std::ptr::null_mut()) })
    }

    /// One raw `sign` call.
    pub(crate) fn probe_sign(&self, scheme: u32, msg: &[u8], capacity: Option<usize>) -> Probe {
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
    pub(crate) fn probe_sign_bad_pointers(&self, scheme: u32, null_msg: bool) -> c_int {
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
    pub(crate) fn probe_sign_with_identity(&self, data: &[u8], capacity: Option<usize>) -> Option<Probe> {
        let f = self.table.raw.sign_with_identity?;
        Some(self.guarded(capacity, |buf, len| {
            // SAFETY: as for probe_sign.
            unsafe { f(self.handle, data.as_ptr(), data.len(), buf, len) }
        }))
    }

    /// One raw `activate_identity_key` call (`None` when the TPM group is absent).
    pub(crate) fn probe_activate(&self, blob: &[u8]) -> Option<c_int> {
        let f = self.table.raw.activate_identity_key?;
        // SAFETY: `blob` readable for its length.
        Some(unsafe { f(self.handle, blob.as_ptr(), blob.len()) })
    }

    /// One raw `hmac_sha256` call (`None` when the symmetric group is absent); `null_mac` passes
    /// a NULL output (it must fail, not crash).
    pub(crate) fn probe_hmac(&self, data: &[u8], null_mac: bool) -> Option<(c_int, [u8; 32], bool)> {
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
    pub(crate) fn probe_key_info(&self, struct_size: u32) -> (c_int, HSM_ABI_KEY_INFO) {
        let mut info = HSM_ABI_KEY_INFO {
            struct_size,
            algorithm: 0,
            curve_or_bits: 0,
            scheme_count: 0,
            schemes: [0; HSM_ABI_MAX_SCHEMES],
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
    pub(crate) fn probe_key_info_null(&self) -> c_int {
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

    /// Activate the TPM identity key from the DPS activation blob.
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

    /// Sign `data` with the TPM identity key (the SAS token's HMAC).
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

    /// The HMAC-SHA256 of `data` under the identity key, checked to be 32 bytes.
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
