#!/usr/bin/env bash
# Debian packages of the C library and the tools, built with dpkg-deb and checked with lintian:
#
#   libhsm-abi0      the shared library (soname libhsm_abi.so.0; the package is named after it,
#                    as Debian policy 8.1 asks)
#   libhsm-abi-dev   headers, the static library, libhsm_abi.so and hsm_abi.pc
#   hsm-abi-tools    hsmctl and dps-emulator
#
#   scripts/deb.sh [--out DIR] [--no-lintian]
#
#   --out DIR       where the .deb files go (default: deb/ in the cargo target directory)
#   --no-lintian    skip the lintian check (it runs by default and fails the script on any
#                   error or warning tag; packaging/debian/PKG.lintian-overrides, if any, is
#                   installed). The info tags left: hardening-no-fortify-functions (Rust code
#                   calls no _FORTIFY_SOURCE functions), no-symbols-control-file (a shlibs file is
#                   given), binary-has-unneeded-section .comment, and spelling-error-in-binary
#                   false positives in compressed or binary data.
#
# Everything is built with the release-c profile (Cargo.toml), the library with its default
# features, as scripts/install-c.sh builds it. DEB_MAINTAINER overrides the maintainer (default:
# the author of the last commit). Install: `sudo apt-get install ./libhsm-abi0_*.deb
# ./libhsm-abi-dev_*.deb` (apt resolves the dependencies) or `sudo dpkg -i *.deb`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/cargo.sh
source "$root/scripts/lib/cargo.sh"

out=""
lintian=1
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --no-lintian) lintian=0; shift ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "deb: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture gzip md5sum; do
    command -v "$tool" >/dev/null || { echo "deb: $tool not found (apt-get install dpkg-dev)" >&2; exit 1; }
done
if [ "$lintian" = 1 ] && ! command -v lintian >/dev/null; then
    echo "deb: lintian not found (scripts/setup.sh installs it; --no-lintian skips the check)" >&2
    exit 1
fi

target_dir="$(cargo_target_dir)"
out="${out:-$target_dir/deb}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
maintainer="${DEB_MAINTAINER:-$(git -C "$root" log -1 --format='%an <%ae>')}"
# Reproducible: file times and the changelog date are those of the last commit. Exported only
# after the builds: the cc crate's build scripts rerun when it changes, which would rebuild ring
# and everything above it after every commit.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct)}"
date_r="$(LC_ALL=C date -u -R -d "@$epoch")"
debian="$root/packaging/debian"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The library: staged by install-c.sh under /usr with the multiarch library directory.
echo "deb: building libhsm_abi $version and the tools (release-c)" >&2
env -u SOURCE_DATE_EPOCH bash "$root/scripts/install-c.sh" --prefix /usr --libdir "/usr/lib/$multiarch" \
    --destdir "$work/c"
(cd "$root" && env -u SOURCE_DATE_EPOCH cargo build --locked --profile release-c -p hsmctl -p dps-emulator --bins >&2)
export SOURCE_DATE_EPOCH="$epoch"

# The copyright file: ours, then every crate linked into the binaries with its license.
crates="$(cd "$root" && cargo tree --locked -e normal --prefix none -f '{p}: {l}' \
    -p hsm-abi -p hsmctl -p dps-emulator |
    grep -v -e '^$' -e '(/' -e '(\*)' | sed 's/ v\([0-9]\)/ \1/' | sort -u | sed 's/^/ /')"
[ -n "$crates" ] || { echo "deb: cargo tree listed no crate" >&2; exit 1; }
mit="$(sed -n '/^Permission/,$p' "$root/LICENSE-MIT" | sed 's/^$/./; s/^/ /')"
python3 - "$debian/copyright.in" "$work/copyright" "$mit" "$crates" <<'EOF'
import sys
src, dst, mit, crates = sys.argv[1:]
open(dst, "w").write(open(src).read().replace("@MIT@", mit).replace("@CRATES@", crates))
EOF
sed -e "s|@VERSION@|$version|g" -e "s|@MAINTAINER@|$maintainer|g" -e "s|@DATE@|$date_r|g" \
    "$debian/changelog" | gzip -9n >"$work/changelog.gz"

# stage_doc PACKAGE: a staging tree with its documentation; the files are added by the caller.
stage_doc() {
    local dir="$work/pkg/$1"
    install -d "$dir/DEBIAN" "$dir/usr/share/doc/$1"
    install -m 0644 "$work/copyright" "$dir/usr/share/doc/$1/copyright"
    install -m 0644 "$work/changelog.gz" "$dir/usr/share/doc/$1/changelog.gz"
    if [ -f "$debian/$1.lintian-overrides" ]; then
        install -d "$dir/usr/share/lintian/overrides"
        install -m 0644 "$debian/$1.lintian-overrides" "$dir/usr/share/lintian/overrides/$1"
    fi
}

# The run-time dependencies of ELF files, as dpkg-shlibdeps computes them from the installed
# libraries' shlibs and symbols files.
shlibdeps() {
    local d="$work/shlibdeps"
    mkdir -p "$d/debian"
    printf 'Source: hsm-abi\n\nPackage: any\nArchitecture: any\n' >"$d/debian/control"
    local deps
    deps="$(cd "$d" && dpkg-shlibdeps -O "$@")" || { echo "deb: dpkg-shlibdeps failed on $*" >&2; exit 1; }
    deps="$(printf '%s\n' "$deps" | sed -n 's/^shlibs:Depends=//p')"
    [ -n "$deps" ] || { echo "deb: dpkg-shlibdeps found no dependency for $*" >&2; exit 1; }
    printf '%s\n' "$deps"
}

# build PACKAGE DEPENDS: control file, md5sums, permissions, then dpkg-deb.
build() {
    local pkg="$1" depends="$2" dir="$work/pkg/$1" size
    # Debian policy: directories 0755, files 0644, executables in bin/ 0755.
    find "$dir" -path "$dir/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
    find "$dir" -path "$dir/DEBIAN" -prune -o -type f -exec chmod 0644 {} +
    [ ! -d "$dir/usr/bin" ] || find "$dir/usr/bin" -type f -exec chmod 0755 {} +
    size="$(du -k -s --apparent-size --exclude=DEBIAN "$dir" | cut -f1)"
    sed -e "s|@VERSION@|$version|g" -e "s|@ARCH@|$arch|g" -e "s|@MAINTAINER@|$maintainer|g" \
        -e "s|@SIZE@|$size|g" -e "s|@DEPENDS@|$depends|g" "$debian/$pkg.control" >"$dir/DEBIAN/control"
    (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
        xargs -r md5sum >DEBIAN/md5sums)
    find "$dir" -exec touch -h -d "@$epoch" {} +
    dpkg-deb --root-owner-group -Zxz --build "$dir" "$out/${pkg}_${version}_${arch}.deb" >&2
}

c="$work/c/usr"
lib="usr/lib/$multiarch"

stage_doc libhsm-abi0
d="$work/pkg/libhsm-abi0"
install -d "$d/$lib"
cp -a "$c/lib/$multiarch/libhsm_abi.so.$version" "$c/lib/$multiarch/libhsm_abi.so.${version%%.*}" "$d/$lib/"
printf 'libhsm_abi %s libhsm-abi0 (>= %s)\n' "${version%%.*}" "$version" >"$d/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' >"$d/DEBIAN/triggers"
chmod 0644 "$d/DEBIAN/shlibs" "$d/DEBIAN/triggers"
deps="$(shlibdeps "$d/$lib/libhsm_abi.so.$version")"
# Packed relative relocations (hsm-abi's build.rs, on glibc >= 2.36) need glibc 2.36 to load:
# a version need without a symbol, which dpkg-shlibdeps does not turn into a dependency.
if readelf -d "$d/$lib/libhsm_abi.so.$version" | grep -q '(RELR)'; then
    libc_min="$(printf '%s\n' "$deps" | sed -n 's/.*libc6 (>= \([^)]*\)).*/\1/p')"
    if [ -z "$libc_min" ] || dpkg --compare-versions "$libc_min" lt 2.36; then
        deps="$(printf '%s\n' "$deps" | sed 's/libc6 (>= [^)]*)/libc6 (>= 2.36)/')"
        case "$deps" in *"libc6 (>= 2.36)"*) ;; *) deps="libc6 (>= 2.36), $deps" ;; esac
    fi
fi
build libhsm-abi0 "$deps"

stage_doc libhsm-abi-dev
d="$work/pkg/libhsm-abi-dev"
install -d "$d/$lib/pkgconfig" "$d/usr/include"
cp -a "$c/lib/$multiarch/libhsm_abi.so" "$c/lib/$multiarch/libhsm_abi.a" "$d/$lib/"
cp -a "$c/lib/$multiarch/pkgconfig/hsm_abi.pc" "$d/$lib/pkgconfig/"
cp -a "$c/include/hsm_abi" "$d/usr/include/"
# The static library's debug sections (std's precompiled objects carry them) and compiler
# identification comments: not for a -dev package (lintian: static-library-has-unneeded-sections).
strip --strip-debug --remove-section=.comment "$d/$lib/libhsm_abi.a"
build libhsm-abi-dev ""

stage_doc hsm-abi-tools
d="$work/pkg/hsm-abi-tools"
install -d "$d/usr/bin"
install -d "$d/usr/share/man/man1"
for bin in hsmctl dps-emulator; do
    install -m 0755 "$target_dir/release-c/$bin" "$d/usr/bin/$bin"
    gzip -9n <"$debian/$bin.1" >"$d/usr/share/man/man1/$bin.1.gz"
done
deps="$(shlibdeps "$d/usr/bin/hsmctl" "$d/usr/bin/dps-emulator")"
build hsm-abi-tools "$deps"

debs=("$out/libhsm-abi0_${version}_${arch}.deb" "$out/libhsm-abi-dev_${version}_${arch}.deb"
    "$out/hsm-abi-tools_${version}_${arch}.deb")
if [ "$lintian" = 1 ]; then
    # Errors and warnings fail; info tags are printed (the overrides say why each accepted one is).
    lintian --fail-on error,warning --info --display-info "${debs[@]}"
fi
printf 'deb: %s\n' "${debs[@]}"
