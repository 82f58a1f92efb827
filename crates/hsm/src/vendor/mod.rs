//! Vendor backends as ordinary backends: a vendor table (a shared object configured by path, or
//! a table registered from C with `hsm_abi_vendor_register`) seen through the hsm-core traits.
//!
//! ```toml
//! [x509]
//! backend = "vendor"
//! library = "libvendor.so"      # or: registered = "name"
//! identity = "slot-0"           # passed to the vendor's open; no secrets here
//! ```
//!
//! The same keys work in `[symmetric_key]` and `[tpm]` when the table has those groups.
//! Everything a vendor can get wrong is contained: NULL fields are "unsupported" errors, lengths
//! and writes are checked against the buffers given, text must be UTF-8, key descriptions must
//! match the certificate, and every signature is verified against the public key before it is
//! used, so a vendor returning garbage gives an error naming the vendor and the field.
//!
//! `get_key` of a vendor x509 identity is an alias-key token `vendor:library=PATH;identity=ID`
//! (or `vendor:registered=NAME;identity=ID`), percent-encoded, resolved by
//! [`crate::registry::open_signer`].
//!
//! The tables themselves (C structs, `dlopen`, guarded calls) are in `hsm-abi`, the only crate
//! with `unsafe`: it implements [`RawVendorIdentity`] and installs a [`VendorLoader`]. This
//! module is what needs no C: sections, key tokens, key and signature checks, the identities.

mod identities;
mod key;
mod table;

use std::sync::Arc;

use hsm_core::{Result, SigningKey};

pub use identities::VendorX509;
pub(crate) use identities::{VendorSymmetric, VendorTpm};
pub use key::{VendorKey, certificate_chain, validate_key_info, verify_signature};
use table::open_raw;
pub use table::{
    BytesField, Capabilities, KeyFamily, KeyInfo, RawVendorIdentity, Source, VendorLoader, VendorToken, install_loader,
    key_token,
};

/// Resolve a decoded `vendor:` token to a signer.
pub fn open_signer(token: &VendorToken) -> Result<Arc<dyn SigningKey>> {
    Ok(Arc::new(VendorKey::new(open_raw(&token.source, &token.identity)?)?))
}
