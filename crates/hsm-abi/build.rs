//! Builds the C shim through which the rustls TLS IO reaches the SDK's OptionHandler API by
//! weak references (`src/ffi/tlsio/optionhandler_shim.c`).

/// The shared library's soname: `libhsm_abi.so.MAJOR` (0 while the version is 0.x); the C ABI
/// is versioned by it, and `scripts/install-c.sh` installs the file under that name.
const SONAME: &str = "libhsm_abi.so.0";

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{SONAME}");
    }
    let shim = "src/ffi/tlsio/optionhandler_shim.c";
    println!("cargo::rerun-if-changed={shim}");
    // Set only for cbindgen (`#if !defined(XIO_H)`...): the SDK's headers define these types.
    println!("cargo::rustc-check-cfg=cfg(tlsio_sdk_xio, tlsio_sdk_tlsio, tlsio_sdk_optionhandler)");
    cc::Build::new()
        .file(shim)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("hsm_abi_tlsio_shim");
}
