//! The rustls TLS IO for the Azure IoT C SDK: `tlsio_rustls_get_interface_description()`
//! returns the SDK's eight-function `IO_INTERFACE_DESCRIPTION` (azure-c-shared-utility
//! `xio.h`), created from a `TLSIO_CONFIG` (`tlsio.h`). The state machine is
//! [`tlsio_bridge::io::TlsIo`]; this module only crosses the C boundary: it reads the SDK's
//! arguments, turns each event into one callback call, and resolves key options to signers
//! with `hsm::open_signer`, so an alias-key token (`pkcs11:`, `tpm:`, `dice:`,
//! `file:`) signs in its backend and the private key never enters the TLS layer.
//!
//! Callbacks run on the caller's thread from inside `open`, `close`, `send` and `dowork`; a
//! callback may call back into the IO (send, close, dowork, even destroy: destruction is then
//! deferred until the outermost call returns).
//!
//! The C types are generated into `include/tlsio_rustls.h` by `scripts/gen-headers.sh` from
//! this file and its `tlsio_types` module alone; each group is skipped when the SDK's own header
//! (`xio.h`, `tlsio.h`, `optionhandler.h`) was included first.
//!
//! This file holds the SDK's table and its one export; the handle's state and event delivery
//! are in `tlsio/state.rs`, the connection functions in `tlsio/calls.rs`, the options in
//! `tlsio/options.rs` (over the C shim in `tlsio/shim.rs`), the underlying IO in
//! `tlsio/underlying.rs`.
#![allow(non_camel_case_types, non_snake_case)]

mod calls;
mod options;
mod shim;
mod state;
// Beside this file, not under `tlsio/`: cbindgen reads this file alone and looks for its
// submodules in this directory (it ignores `#[path]`), and the C types must reach the header.
#[path = "tlsio_types.rs"]
mod tlsio_types;
mod underlying;

use calls::{
    tlsio_rustls_close, tlsio_rustls_create, tlsio_rustls_destroy, tlsio_rustls_dowork, tlsio_rustls_open,
    tlsio_rustls_send,
};
use options::{tlsio_rustls_retrieveoptions, tlsio_rustls_setoption};
use tlsio_types::IO_INTERFACE_DESCRIPTION;

static INTERFACE: IO_INTERFACE_DESCRIPTION = IO_INTERFACE_DESCRIPTION {
    concrete_io_retrieveoptions: Some(tlsio_rustls_retrieveoptions),
    concrete_io_create: Some(tlsio_rustls_create),
    concrete_io_destroy: Some(tlsio_rustls_destroy),
    concrete_io_open: Some(tlsio_rustls_open),
    concrete_io_close: Some(tlsio_rustls_close),
    concrete_io_send: Some(tlsio_rustls_send),
    concrete_io_dowork: Some(tlsio_rustls_dowork),
    concrete_io_setoption: Some(tlsio_rustls_setoption),
};

/// The rustls TLS IO: what `platform_get_default_tlsio()` returns to make the SDK use it.
/// Static; never NULL; never free it.
///
/// Options (`setoption`): `TrustedCerts` (PEM; without it the system trust store is used),
/// `x509certificate` + `x509privatekey` or `x509EccCertificate` + `x509EccAliasKey` (a PEM
/// chain, and an alias-key token such as a `pkcs11:` URI, or a PEM key for compatibility),
/// `tls_version` (`int*`: 12 = TLS 1.2 and 1.3, 13 = TLS 1.3 only), `underlying_io_options`,
/// `x509PrivatekeyType` (0 only), `tls_renegotiation` (ignored). Other names go to the
/// underlying IO when there is one, else fail with `HSM_ABI_ERR_UNSUPPORTED`.
#[unsafe(no_mangle)]
pub extern "C" fn tlsio_rustls_get_interface_description() -> *const IO_INTERFACE_DESCRIPTION {
    ffi_boundary!("tlsio_rustls_get_interface_description", {
        std::ptr::from_ref(&INTERFACE)
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::c_int;

    use super::tlsio_rustls_get_interface_description;
    use super::tlsio_types::TLSIO_CONFIG;
    use crate::ffi::errors;

    #[test]
    fn table_is_complete_and_create_checks_its_arguments() {
        let t = tlsio_rustls_get_interface_description();
        // SAFETY: a static table.
        let t = unsafe { &*t };
        assert!(t.concrete_io_retrieveoptions.is_some() && t.concrete_io_setoption.is_some());
        let create = t.concrete_io_create.unwrap();
        // SAFETY: NULL is allowed and reported.
        assert!(unsafe { create(std::ptr::null_mut()) }.is_null());
        assert!(errors::last_error().contains("TLSIO_CONFIG"));
        let mut cfg = TLSIO_CONFIG {
            hostname: c"localhost".as_ptr(),
            port: 70000,
            underlying_io_interface: std::ptr::null(),
            underlying_io_parameters: std::ptr::null_mut(),
        };
        // SAFETY: a valid config with a bad port.
        assert!(unsafe { create((&raw mut cfg).cast()) }.is_null());
        assert!(errors::last_error().contains("70000"));
        cfg.port = 443;
        // SAFETY: a valid config.
        let h = unsafe { create((&raw mut cfg).cast()) };
        assert!(!h.is_null());
        let set = t.concrete_io_setoption.unwrap();
        // SAFETY: live handle, valid option values.
        unsafe {
            assert_eq!(
                set(h, c"no_such_option".as_ptr(), c"x".as_ptr().cast()),
                errors::HSM_ABI_ERR_UNSUPPORTED
            );
            assert_eq!(
                set(h, c"x509privatekey".as_ptr(), c"not a token".as_ptr().cast()),
                errors::HSM_ABI_ERR_PARSE
            );
            let v: c_int = 13;
            assert_eq!(set(h, c"tls_version".as_ptr(), (&raw const v).cast()), 0);
            // Without the SDK linked, retrieveoptions reports and returns NULL.
            assert!(t.concrete_io_retrieveoptions.unwrap()(h).is_null());
            assert!(errors::last_error().contains("OptionHandler"));
            // Send before open fails; close of a closed IO does nothing.
            assert_ne!(
                t.concrete_io_send.unwrap()(h, c"x".as_ptr().cast(), 1, None, std::ptr::null_mut()),
                0
            );
            assert_eq!(t.concrete_io_close.unwrap()(h, None, std::ptr::null_mut()), 0);
            t.concrete_io_destroy.unwrap()(h);
            t.concrete_io_destroy.unwrap()(std::ptr::null_mut());
        }
    }
}
