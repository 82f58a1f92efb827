//! Builds the C shim through which the rustls TLS IO reaches the SDK's OptionHandler API by
//! weak references (`src/ffi/tlsio/optionhandler_shim.c`).

/// The shared library's soname: `libhsm_abi.so.MAJOR` (0 while the version is 0.x); the C ABI
/// is versioned by it, and `scripts/install-c.sh` installs the file under that name.
const SONAME: &str = "libhsm_abi.so.0";

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,{SONAME}");
        if relr() {
            println!("cargo::rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
        }
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

/// Whether the shared library gets its relative relocations packed (RELR, `-z
/// pack-relative-relocs`): ~190 KB of its ~3.3 MB are `R_X86_64_RELATIVE` entries (vtables,
/// string tables), which RELR encodes in a few KB. The library then needs glibc >= 2.36 (it
/// records a `GLIBC_ABI_DT_RELR` version need), so this is done only when building for the
/// machine that builds (no cross-compiling) and its glibc is 2.36 or newer. `HSM_ABI_RELR=0`
/// turns it off (a library for older systems), `HSM_ABI_RELR=1` forces it.
fn relr() -> bool {
    println!("cargo::rerun-if-env-changed=HSM_ABI_RELR");
    match std::env::var("HSM_ABI_RELR").as_deref() {
        Ok("1") => return true,
        Ok("0") => return false,
        _ => {}
    }
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if host != target || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu") {
        return false;
    }
    // `getconf GNU_LIBC_VERSION` prints e.g. "glibc 2.36".
    let Ok(out) = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().trim_start_matches("glibc ").split('.');
    let major: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (major, minor) >= (2, 36)
}
