#!/usr/bin/env bash
# Install libhsm_abi like a C library: the static library, the versioned shared library (soname
# libhsm_abi.so.0), the headers and a pkg-config file.
#
#   scripts/install-c.sh [--prefix DIR] [--libdir DIR] [--destdir DIR] [--features LIST] [--debug]
#
#   --prefix DIR     where it goes (default /usr/local): DIR/lib, DIR/include/hsm_abi,
#                    DIR/lib/pkgconfig/hsm_abi.pc
#   --libdir DIR     the libraries and pkgconfig/ there instead of PREFIX/lib (absolute, under
#                    the prefix; e.g. /usr/lib/x86_64-linux-gnu for a Debian package)
#   --destdir DIR    stage under DIR (packaging); the .pc still names --prefix
#   --features LIST  cargo features of hsm-abi besides the defaults (pkcs11, dice, vendor),
#                    e.g. "tpm" (the pkg-config file then requires tss2-esys and friends)
#   --debug          the debug build instead of the release-c profile (the C library as it
#                    ships: LTO, one codegen unit, stripped; Cargo.toml [profile.release-c])
#
# Afterwards:
#   pkg-config --cflags --libs hsm_abi             the shared library
#   pkg-config --libs --static hsm_abi             static linking (-lhsm_abi and its natives)
#   pkg-config --variable=hsm_custom_lib hsm_abi   the exact CMake list for the SDK's
#                                                  -Dhsm_custom_lib= (static library first)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix=/usr/local
destdir=""
libdir_opt=""
features=""
profile=release-c
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --libdir) libdir_opt="${2:?--libdir needs a directory}"; shift 2 ;;
        --destdir) destdir="${2:?--destdir needs a directory}"; shift 2 ;;
        --features) features="${2?--features needs a list}"; shift 2 ;;
        --debug) profile=debug; shift ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "install-c: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$prefix" in
    /*) ;;
    *) echo "install-c: --prefix must be an absolute path (got '$prefix')" >&2; exit 2 ;;
esac
# The library directory: PREFIX/lib, or --libdir (under the prefix, so the .pc names it from ${prefix}).
libdir_abs="$prefix/lib"
if [ -n "$libdir_opt" ]; then
    case "$libdir_opt" in
        "$prefix"/*) libdir_abs="$libdir_opt" ;;
        *) echo "install-c: --libdir must be an absolute path under the prefix $prefix (got '$libdir_opt')" >&2; exit 2 ;;
    esac
fi

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
major="${version%%.*}"
[ -n "$version" ] || { echo "install-c: no version in Cargo.toml" >&2; exit 1; }

cargo_args=(-p hsm-abi --lib --locked)
[ "$profile" = release-c ] && cargo_args+=(--profile release-c)
[ -n "$features" ] && cargo_args+=(--features "$features")

echo "install-c: building hsm-abi $version ($profile${features:+, features: $features})" >&2
# Each library in a rustc call of its own: with hsm-abi's three crate types in one call (cargo
# build) cargo silently leaves out the profile's LTO (an rlib cannot be LTO'd); alone, the shared
# library is 2.50 MB instead of 3.03 MB (BENCHMARKS.md, "The profile's LTO never ran").
(cd "$root" && cargo rustc "${cargo_args[@]}" --crate-type cdylib >&2)
# What a C program linking the static library needs besides it, as rustc sees it (this also
# covers the native libraries of the features, e.g. tss2-* for tpm).
natives="$(cd "$root" && cargo rustc "${cargo_args[@]}" --crate-type staticlib -- --print native-static-libs 2>&1 |
    sed -n 's/.*native-static-libs: //p' | tail -n 1)"
[ -n "$natives" ] || { echo "install-c: rustc printed no native-static-libs" >&2; exit 1; }

# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"
target_dir="$(cargo_target_dir)/$profile"
for f in libhsm_abi.a libhsm_abi.so; do
    [ -f "$target_dir/$f" ] || { echo "install-c: $target_dir/$f was not built" >&2; exit 1; }
done
soname="$(readelf -d "$target_dir/libhsm_abi.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[ "$soname" = "libhsm_abi.so.$major" ] ||
    { echo "install-c: libhsm_abi.so has soname '$soname', expected libhsm_abi.so.$major" >&2; exit 1; }

libdir="$destdir$libdir_abs"
incdir="$destdir$prefix/include/hsm_abi"
pcdir="$libdir/pkgconfig"
install -d "$libdir" "$incdir" "$pcdir"
install -m 0644 "$target_dir/libhsm_abi.a" "$libdir/libhsm_abi.a"
install -m 0755 "$target_dir/libhsm_abi.so" "$libdir/libhsm_abi.so.$version"
ln -sfn "libhsm_abi.so.$version" "$libdir/libhsm_abi.so.$major"
ln -sfn "libhsm_abi.so.$major" "$libdir/libhsm_abi.so"
install -m 0644 "$root/include/hsm_client_data.h" "$root/include/hsm_abi.h" "$root/include/tlsio_rustls.h" "$incdir/"

# Native libraries: -lfoo words, de-duplicated in order; tss2-* come through Requires.private.
private=""
requires=""
for word in $natives; do
    case "$word" in
        -ltss2-*) requires="${requires:+$requires, }${word#-l}" ;;
        -l*) case " $private " in *" $word "*) ;; *) private="${private:+$private }$word" ;; esac ;;
    esac
done
# The SDK's hsm_custom_lib: a CMake list, the static library first, then the natives.
custom_lib="\${libdir}/libhsm_abi.a"
for word in $natives; do
    case "$word" in -l*) custom_lib="$custom_lib;${word#-l}" ;; esac
done

cat >"$pcdir/hsm_abi.pc" <<EOF
prefix=$prefix
libdir=\${prefix}${libdir_abs#"$prefix"}
includedir=\${prefix}/include/hsm_abi
hsm_custom_lib=$custom_lib

Name: hsm_abi
Description: Hardware-backed device identity for the Azure IoT C SDK (custom HSM, rustls TLS IO)
Version: $version
Libs: -L\${libdir} -lhsm_abi
Libs.private: $private
${requires:+Requires.private: $requires
}Cflags: -I\${includedir}
EOF
echo "install-c: installed libhsm_abi $version into $destdir$prefix (pkg-config: $pcdir/hsm_abi.pc)" >&2
